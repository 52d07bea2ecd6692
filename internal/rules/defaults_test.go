package rules_test

import (
	"reflect"
	"testing"

	"github.com/zohook/zohook/internal/rules"
)

// zohook's writes fire no Zoho automation unless the rule says so; what
// the rule gives wins; the caller's map is never changed.
func TestWireDefaults(t *testing.T) {
	for _, tc := range []struct {
		action string
		in     map[string]any
		want   map[string]any
	}{
		{"crm.create_record", map[string]any{"module": "Leads"}, map[string]any{"module": "Leads", "trigger": []any{}}},
		{"crm.update_record", map[string]any{"module": "Deals"}, map[string]any{"module": "Deals", "trigger": []any{}}},
		{"crm.update_record", map[string]any{"trigger": "all"}, map[string]any{"trigger": "all"}},
		{"crm.create_record", map[string]any{"trigger": []any{"workflow"}}, map[string]any{"trigger": []any{"workflow"}}},
		{"crm.remove_record", map[string]any{"id": "1"}, map[string]any{"id": "1", "wf_trigger": false}},
		{"crm.remove_record", map[string]any{"id": "1", "wf_trigger": true}, map[string]any{"id": "1", "wf_trigger": true}},
		{"crm.remove_record", nil, map[string]any{"wf_trigger": false}},
		{"books.create_record", map[string]any{"entity": "invoices"}, map[string]any{"entity": "invoices"}},
		{"crm.raw_request", map[string]any{"method": "PUT"}, map[string]any{"method": "PUT"}},
	} {
		before := len(tc.in)
		got := rules.WireDefaults(tc.action, tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %v: got %v, want %v", tc.action, tc.in, got, tc.want)
		}
		if len(tc.in) != before {
			t.Errorf("%s: the caller's inputs were changed: %v", tc.action, tc.in)
		}
	}
}
