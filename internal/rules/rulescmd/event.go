package rulescmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/zohook/zohook/internal/rules"
)

// readEvent decodes EVENT.json: either a rules.Event (snake_case keys) or
// the body Zoho POSTs to a notification channel (module, ids, operation,
// channel_id, token...), which goes through zohook's receiver like a real
// callback; the first of its events is used. note says what was assumed,
// for the output.
func readEvent(data []byte, now time.Time) (ev *rules.Event, note string, err error) {
	var probe map[string]any
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, "", fmt.Errorf("event: %w", err)
	}
	if _, isNotification := probe["ids"]; isNotification {
		if _, hasSource := probe["source"]; !hasSource {
			return fromNotification(data, now)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	ev = &rules.Event{}
	if err := dec.Decode(ev); err != nil {
		return nil, "", fmt.Errorf("event: %w (keys: id, source, connection, module, operation, record_id, changed_fields, values, channel_id, hook, received_at, payload)", err)
	}
	if ev.Source == "" {
		return nil, "", fmt.Errorf("event: missing source (crm.notify, crm.workflow or books.webhook)")
	}
	if ev.ID == "" {
		ev.ID = "test-event"
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	return ev, "", nil
}

// fromNotification turns a CRM notification callback body into the events
// the receiver stores (Zoho's insert/edit become create/update there), and
// returns the first.
func fromNotification(body []byte, now time.Time) (*rules.Event, string, error) {
	evs, err := callbackEvents(callback{URL: "/zoho/crm/notify", Body: string(body)}, now)
	if err != nil {
		return nil, "", fmt.Errorf("event: notification body: %w", err)
	}
	if len(evs) == 0 {
		return nil, "", fmt.Errorf("event: the notification names no record")
	}
	ev := evs[0]
	note := fmt.Sprintf("read a Zoho CRM notification: %s %s of record %s", ev.Module, ev.Operation, ev.RecordID)
	if len(evs) > 1 {
		note += fmt.Sprintf(" (the first of %d ids)", len(evs))
	}
	return ev, note, nil
}
