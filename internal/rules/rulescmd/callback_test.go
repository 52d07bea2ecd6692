package rulescmd

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/config"
)

// A callback runs through the receiver and comes back as the worker's
// engine sees it (engine.ToRulesEvent of the stored envelope): these pin
// every field toRulesEvent fills, for each source.
func TestCallbackEventsAsTheEngineSeesThem(t *testing.T) {
	now := time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		cb   callback
		want map[string]any // field -> value
	}{
		{"crm notification", callback{URL: "/zoho/crm/notify", Body: map[string]any{
			"module": "Deals", "ids": []any{"42"}, "operation": "edit", "channel_id": "1000", "token": "tok-secret-1",
			"server_time": 1774861200000, "affected_fields": []any{map[string]any{"42": []any{"Stage", "Amount"}}}}},
			map[string]any{"Source": "crm.notify", "Connection": "default", "Module": "Deals", "Operation": "update", "RecordID": "42",
				"ChangedFields": []string{"Stage", "Amount"}, "ChannelID": "1000"}},
		{"crm workflow webhook", callback{URL: "/zoho/crm/workflow/deal-lost?operation=lost", Hook: &config.Hook{Module: "Deals", Connection: "eu"},
			Body: map[string]any{"id": "77", "amount": 1500, "reason": "Price"}},
			map[string]any{"Source": "crm.workflow", "Connection": "eu", "Module": "Deals", "Operation": "lost", "RecordID": "77",
				"Hook": "deal-lost", "Values": map[string]any{"id": "77", "amount": 1500.0, "reason": "Price"}}},
		{"books webhook, form", callback{URL: "/zoho/books/invoice-paid", Hook: &config.Hook{Operation: "paid"}, ContentType: "application/x-www-form-urlencoded",
			Body: `JSONString={"invoice":{"invoice_id":"9","total":12.5}}`},
			map[string]any{"Source": "books.webhook", "Connection": "default", "Module": "invoice", "Operation": "paid", "RecordID": "9",
				"Hook": "invoice-paid", "Values": map[string]any{"invoice_id": "9", "total": 12.5}}},
	} {
		evs, err := callbackEvents(tc.cb, now)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", tc.name, evs, err)
		}
		ev := reflect.ValueOf(*evs[0])
		for field, want := range tc.want {
			if got := ev.FieldByName(field).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %#v, want %#v", tc.name, field, got, want)
			}
		}
		if evs[0].ID == "" || !evs[0].ReceivedAt.Equal(now) || evs[0].Payload == nil {
			t.Errorf("%s: id %q, received_at %v, payload %v", tc.name, evs[0].ID, evs[0].ReceivedAt, evs[0].Payload)
		}
		if _, ok := evs[0].Payload["token"]; ok {
			t.Errorf("%s: the channel token reached the event", tc.name)
		}
	}

	// What the receiver refuses, a test sees refused, with the answer.
	_, err := callbackEvents(callback{URL: "/zoho/crm/workflow/x", Body: map[string]any{"id": "1"}}, now)
	if err == nil || !strings.Contains(err.Error(), "the receiver answers 400") {
		t.Errorf("a workflow hook without module: %v", err)
	}
	if _, err := callbackEvents(callback{URL: "/hooks/x", Body: map[string]any{}}, now); err == nil {
		t.Error("a URL outside the receiver's paths is accepted")
	}
}
