package ruleevent_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules/ruleevent"
)

// Every field of rules.Event is filled from an envelope that has them all:
// a field added to rules.Event and forgotten here fails this test.
func TestFromEnvelopeFillsEveryField(t *testing.T) {
	at := time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC)
	env := &events.Envelope{ID: "e1", Source: events.SourceCRMWorkflow, Connection: "eu", Module: "Deals", Operation: "lost",
		RecordID: "42", ChangedFields: []string{"Stage"}, Values: map[string]any{"Stage": "Closed Lost"}, ChannelID: "1000",
		Hook: "deal-lost", ServerTime: 1, ReceivedAt: at, Raw: []byte(`{"id":"42","reason":"Price"}`)}
	ev := ruleevent.FromEnvelope(env)
	v := reflect.ValueOf(*ev)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("rules.Event.%s is not filled from the envelope", v.Type().Field(i).Name)
		}
	}
	if ev.Source != "crm.workflow" || ev.Payload["reason"] != "Price" || !ev.ReceivedAt.Equal(at) || ev.Values["Stage"] != "Closed Lost" {
		t.Errorf("converted: %+v", ev)
	}
	// A raw body that is not an object leaves payload null, never fails.
	env.Raw = []byte(`"text"`)
	if ev := ruleevent.FromEnvelope(env); ev.Payload != nil {
		t.Errorf("payload of a non-object body: %#v", ev.Payload)
	}
}
