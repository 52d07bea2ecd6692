package rules_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/rules"
)

const matchRules = `version: 1
rules:
  - name: deals-update
    on: {source: crm.notify, module: Deals, operation: update, changed: [Stage, Amount]}
    record: {fields: [Stage]}
    when: record.Stage == "Won"
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
  - name: deals-any
    on: {source: crm.notify, modules: [deals]}
    record: all
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
  - name: any-create
    on: {source: [crm.notify, crm.workflow], operations: [create]}
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
  - name: eu-only
    on: {source: crm.notify, connection: eu, module: Deals}
    record: {fields: [Amount]}
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
  - name: strict-changed
    on: {source: crm.notify, module: Deals, changed: [Stage], changed_unknown: skip}
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
  - name: off
    disabled: true
    on: {source: crm.notify}
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
  - name: paid
    on: {source: books.webhook, module: invoice, operation: paid}
    steps: [{action: crm.coql, with: {query: select id from Deals}}]
`

func names(rs []*rules.Rule) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return strings.Join(out, ",")
}

func TestMatch(t *testing.T) {
	set := mustParse(t, matchRules)
	for _, tc := range []struct {
		name string
		ev   rules.Event
		want string
	}{
		{"update with stage", rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", ChangedFields: []string{"Stage"}}, "deals-update,deals-any,strict-changed"},
		{"update other field", rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", ChangedFields: []string{"Phone"}}, "deals-any"},
		{"changed from values", rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", Values: map[string]any{"Amount": 1}}, "deals-update,deals-any"},
		{"no changed fields sent", rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update"}, "deals-update,deals-any"},
		{"create", rules.Event{Source: "crm.notify", Module: "Leads", Operation: "create"}, "any-create"},
		{"create deal", rules.Event{Source: "crm.notify", Module: "DEALS", Operation: "create"}, "deals-any,any-create"},
		{"connection", rules.Event{Source: "crm.notify", Connection: "eu", Module: "Deals", Operation: "delete"}, "deals-any,eu-only"},
		{"books", rules.Event{Source: "books.webhook", Module: "invoice", Operation: "paid"}, "paid"},
		{"books other op", rules.Event{Source: "books.webhook", Module: "invoice", Operation: "void"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(set.Match(&tc.ev)); got != tc.want {
				t.Errorf("Match = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRecordNeeds(t *testing.T) {
	set := mustParse(t, matchRules)
	byName := func(ns ...string) []*rules.Rule {
		var out []*rules.Rule
		for _, n := range ns {
			out = append(out, set.Rule(n))
		}
		return out
	}
	load, fields := set.RecordNeeds(byName("deals-update", "eu-only"))
	if !load || !reflect.DeepEqual(fields, []string{"Amount", "Stage"}) {
		t.Errorf("fields: %v %v", load, fields)
	}
	if load, fields := set.RecordNeeds(byName("deals-update", "deals-any")); !load || fields != nil {
		t.Errorf("all: %v %v", load, fields)
	}
	if load, _ := set.RecordNeeds(byName("any-create", "paid")); load {
		t.Errorf("no rule needs the record")
	}
}

func TestExplain(t *testing.T) {
	set := mustParse(t, matchRules)
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", ChangedFields: []string{"Stage"}}
	got := map[string]rules.Explanation{}
	for _, x := range set.Explain(ev, map[string]any{"Stage": "Lost"}) {
		got[x.Rule] = x
	}
	want := map[string]string{
		"deals-update":   `condition: when "record.Stage == \"Won\"" is false`,
		"deals-any":      "",
		"any-create":     `operation: operation "update" is not create`,
		"eu-only":        `connection: connection "default" is not eu`,
		"strict-changed": "",
		"off":            "disabled: the rule is disabled",
		"paid":           `source: source "crm.notify" is not books.webhook`,
	}
	for name, w := range want {
		x := got[name]
		s := ""
		if !x.Matched {
			s = x.Stage + ": " + x.Reason
		}
		if s != w {
			t.Errorf("%s: %q, want %q", name, s, w)
		}
	}
	x := set.Explain(&rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", ChangedFields: []string{"Phone"}}, nil)
	if x[0].Stage != "changed" || !strings.Contains(x[0].Reason, "[Phone]") {
		t.Errorf("changed: %+v", x[0])
	}
	x = set.Explain(&rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update"}, map[string]any{"Stage": "Won"})
	if !x[0].Matched || x[4].Stage != "changed" {
		t.Errorf("unknown changed: %+v / %+v", x[0], x[4])
	}
}
