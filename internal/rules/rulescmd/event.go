package rulescmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/rules"
)

// readEvent decodes EVENT.json: either a rules.Event (snake_case keys) or
// the body Zoho POSTs to a notification channel (module, ids, operation,
// channel_id, token...), of which the first id becomes the event. note says
// what was assumed, for the output.
func readEvent(data []byte, now time.Time) (ev *rules.Event, note string, err error) {
	var probe map[string]any
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, "", fmt.Errorf("event: %w", err)
	}
	if _, isNotification := probe["ids"]; isNotification {
		if _, hasSource := probe["source"]; !hasSource {
			return fromNotification(probe, now)
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

// fromNotification turns a CRM notification callback body into an event.
// Zoho's words insert/edit become create/update, as the receiver does.
func fromNotification(body map[string]any, now time.Time) (*rules.Event, string, error) {
	ids, _ := body["ids"].([]any)
	if len(ids) == 0 {
		return nil, "", fmt.Errorf("event: notification body without ids")
	}
	id := fmt.Sprint(ids[0])
	module, _ := body["module"].(string)
	op, _ := body["operation"].(string)
	switch strings.ToLower(op) {
	case "insert", "create":
		op = "create"
	case "update", "edit":
		op = "update"
	case "delete":
		op = "delete"
	default:
		return nil, "", fmt.Errorf("event: notification operation %q is not insert, update or delete", op)
	}
	if module == "" {
		return nil, "", fmt.Errorf("event: notification body without module")
	}
	channel := fmt.Sprint(body["channel_id"])
	ev := &rules.Event{
		ID: "test-" + channel + "-" + id, Source: rules.SourceCRMNotify, Connection: "default", Module: module,
		Operation: op, RecordID: id, ChannelID: channel, ReceivedAt: now, Payload: body,
		ChangedFields: affectedFields(body["affected_fields"], id),
	}
	if ms, ok := body["server_time"].(float64); ok && ms > 0 {
		ev.ReceivedAt = time.UnixMilli(int64(ms)).UTC()
	}
	note := fmt.Sprintf("read a Zoho CRM notification: %s %s of record %s", module, op, id)
	if len(ids) > 1 {
		note += fmt.Sprintf(" (the first of %d ids)", len(ids))
	}
	return ev, note, nil
}

// affectedFields reads the shapes reported for affected_fields: a list of
// names, or a list of {record_id: [names]} (API.md §5.7, UNCONFIRMED).
func affectedFields(v any, id string) []string {
	list, _ := v.([]any)
	var out []string
	for _, it := range list {
		switch x := it.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if fs, ok := x[id].([]any); ok {
				for _, f := range fs {
					if s, ok := f.(string); ok {
						out = append(out, s)
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
