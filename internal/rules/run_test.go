package rules_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/rules"
)

// scripted is a test Executor: it records calls and answers from per-key
// outputs and errors, the way the worker's Zoho executor would.
type scripted struct {
	mu      sync.Mutex
	outputs map[string]map[string]any
	errs    map[string]error
	calls   []rules.Call
}

var _ rules.Executor = (*scripted)(nil)

func (s *scripted) Execute(_ context.Context, c rules.Call) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	if err := s.errs[c.Key]; err != nil {
		return nil, err
	}
	return s.outputs[c.Key], nil
}

func mustParse(t testing.TB, src string, opts ...rules.Option) *rules.Set {
	t.Helper()
	set, err := rules.Parse("t.yaml", []byte(src), opts...)
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return set
}

var fixed = time.Date(2026, 3, 30, 22, 15, 0, 0, time.UTC)

func TestTemplateTyping(t *testing.T) {
	set := mustParse(t, `version: 1
vars: {n: 7, tags: [a, b], obj: {k: v}}
rules:
  - name: r
    on: {source: crm.workflow}
    steps:
      - id: s
        action: crm.raw_request
        with:
          method: POST
          path: x
          json:
            number: "${event.values.amount}"
            number_expr: "${event.values.amount * 2}"
            list: "${vars.tags}"
            map: "${vars.obj}"
            interp: "amount=${event.values.amount} tags=${vars.tags} obj=${vars.obj} nil=${event.values.none}"
            int_interp: "${vars.n}${vars.n}"
            escaped: "$${event.id} and \\${event.id}"
            lone_dollar: "costs $5 {not a template}"
            braces: '${ {"a": 1}.a + len([1,2]) }'
            nested: {deep: ["${event.record_id}", 1, true, null]}
            date: '${today()} ${addDays("2026-12-30", 3)} ${formatDate(now(), "2006-01-02 15:04")}'
            bool: "${event.values.amount > 10}"
`, rules.WithClock(func() time.Time { return fixed }))
	ev := &rules.Event{Source: "crm.workflow", RecordID: "42", Values: map[string]any{"amount": 12.5}}
	ex := &scripted{}
	if _, err := set.Rules()[0].Run(context.Background(), rules.Input{Event: ev}, ex); err != nil {
		t.Fatal(err)
	}
	got := ex.calls[0].Inputs["json"].(map[string]any)
	want := map[string]any{
		"number":      12.5,
		"number_expr": 25.0,
		"list":        []any{"a", "b"},
		"map":         map[string]any{"k": "v"},
		"interp":      `amount=12.5 tags=["a","b"] obj={"k":"v"} nil=`,
		"int_interp":  "77",
		"escaped":     "${event.id} and ${event.id}",
		"lone_dollar": "costs $5 {not a template}",
		"braces":      3,
		"nested":      map[string]any{"deep": []any{"42", int64(1), true, nil}},
		"date":        "2026-03-30 2027-01-02 2026-03-30 22:15",
		"bool":        true,
	}
	for k, w := range want {
		if g := got[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
}

const chain = `version: 1
vars: {item: "982"}
rules:
  - name: deal
    on: {source: crm.notify, module: Deals, operation: update}
    record: {fields: [Stage, Amount, Account_Name]}
    when: record.Stage == "Closed Won"
    steps:
      - id: contact
        action: books.get_records
        with: {entity: contacts, search: {contact_name: "${record.Account_Name.name}"}}
      - id: new_contact
        when: len(steps.contact.contacts) == 0
        action: books.create_record
        with: {entity: contacts, data: {contact_name: "${record.Account_Name.name}"}}
      - id: invoice
        action: books.create_record
        with:
          entity: invoices
          data:
            customer_id: "${first(steps.contact.contacts)?.contact_id ?? steps.new_contact?.contact?.contact_id}"
            line_items: [{item_id: "${vars.item}", rate: "${record.Amount}", quantity: 1}]
      - action: crm.update_record
        with: {module: Deals, id: "${event.record_id}", data: {Invoice_Number: "${steps.invoice.invoice.invoice_number}"}}
`

func TestStepOutputsAndConditions(t *testing.T) {
	set := mustParse(t, chain)
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", RecordID: "42"}
	rec := map[string]any{"Stage": "Closed Won", "Amount": 100.0, "Account_Name": map[string]any{"name": "Acme"}}
	r := set.Match(ev)[0]

	t.Run("contact exists: create skipped", func(t *testing.T) {
		ex := &scripted{outputs: map[string]map[string]any{
			"deal/contact": {"contacts": []any{map[string]any{"contact_id": "c1"}}},
			"deal/invoice": {"invoice": map[string]any{"invoice_number": "INV-7"}},
		}}
		res, err := r.Run(context.Background(), rules.Input{Event: ev, Record: rec}, ex)
		if err != nil {
			t.Fatal(err)
		}
		outcomes := []string{}
		for _, s := range res.Steps {
			outcomes = append(outcomes, s.Key+"="+s.Outcome)
		}
		if got := strings.Join(outcomes, " "); got != "deal/contact=ran deal/new_contact=skipped deal/invoice=ran deal/#3=ran" {
			t.Errorf("outcomes: %s", got)
		}
		if len(ex.calls) != 3 {
			t.Fatalf("calls: %v", ex.calls)
		}
		inv := ex.calls[1].Inputs["data"].(map[string]any)
		if inv["customer_id"] != "c1" || inv["line_items"].([]any)[0].(map[string]any)["rate"] != 100.0 {
			t.Errorf("invoice inputs: %#v", inv)
		}
		last := ex.calls[2]
		if last.Key != "deal/#3" || last.Index != 3 || last.StepID != "" || last.Action != "crm.update_record" ||
			last.Inputs["data"].(map[string]any)["Invoice_Number"] != "INV-7" || last.Inputs["id"] != "42" {
			t.Errorf("write back call: %+v", last)
		}
	})
	t.Run("no contact: created and used", func(t *testing.T) {
		ex := &scripted{outputs: map[string]map[string]any{
			"deal/contact":     {"contacts": []any{}},
			"deal/new_contact": {"contact": map[string]any{"contact_id": "c2"}},
			"deal/invoice":     {"invoice": map[string]any{"invoice_number": "INV-8"}},
		}}
		if _, err := r.Run(context.Background(), rules.Input{Event: ev, Record: rec}, ex); err != nil {
			t.Fatal(err)
		}
		if len(ex.calls) != 4 || ex.calls[2].Inputs["data"].(map[string]any)["customer_id"] != "c2" {
			t.Errorf("calls: %+v", ex.calls)
		}
	})
	t.Run("condition false", func(t *testing.T) {
		ex := &scripted{}
		res, err := r.Run(context.Background(), rules.Input{Event: ev, Record: map[string]any{"Stage": "Lost"}}, ex)
		if err != nil || !res.ConditionFalse || len(ex.calls) != 0 {
			t.Errorf("res=%+v err=%v calls=%d", res, err, len(ex.calls))
		}
	})
	t.Run("evaluation error is permanent", func(t *testing.T) {
		ex := &scripted{outputs: map[string]map[string]any{"deal/contact": {"contacts": 5}}}
		_, err := r.Run(context.Background(), rules.Input{Event: ev, Record: rec}, ex)
		var se *rules.StepError
		if !errors.As(err, &se) || !errors.Is(err, rules.ErrEvaluation) || se.Step != "new_contact" || se.Rule != "deal" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("condition evaluation error", func(t *testing.T) {
		_, err := r.Run(context.Background(), rules.Input{Event: ev, Record: map[string]any{"Stage": 1}}, &scripted{})
		if err != nil {
			t.Fatalf("comparing a number with a string is false, not an error: %v", err)
		}
		set := mustParse(t, "version: 1\nrules:\n  - name: x\n    on: {source: crm.notify}\n    record: all\n    when: record.Amount > 10\n    steps: [{action: crm.coql, with: {query: select id from Deals}}]\n")
		_, err = set.Rules()[0].Run(context.Background(), rules.Input{Event: ev, Record: map[string]any{"Amount": "x"}}, &scripted{})
		var se *rules.StepError
		if !errors.As(err, &se) || se.Step != "when" || !errors.Is(err, rules.ErrEvaluation) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestOnFailure(t *testing.T) {
	src := `version: 1
rules:
  - name: r
    on: {source: crm.notify}
    steps:
      - {id: a, action: crm.coql, with: {query: select id from Deals}, on_failure: %s}
      - {id: b, action: crm.coql, with: {query: select id from Leads}}
`
	boom := errors.New("zoho said no")
	for _, tc := range []struct {
		policy   string
		wantErr  bool
		stopped  bool
		outcomes string
		calls    int
	}{
		{"retry", true, false, "failed", 1},
		{"skip", false, false, "failed-skipped ran", 2},
		{"stop", false, true, "stopped", 1},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			set := mustParse(t, fmt.Sprintf(src, tc.policy))
			ex := &scripted{errs: map[string]error{"r/a": boom}}
			res, err := set.Rules()[0].Run(context.Background(), rules.Input{Event: &rules.Event{Source: "crm.notify"}}, ex)
			if tc.wantErr {
				var se *rules.StepError
				if !errors.As(err, &se) || !errors.Is(err, boom) || errors.Is(err, rules.ErrEvaluation) || se.Action != "crm.coql" {
					t.Fatalf("err = %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var outs []string
			for _, s := range res.Steps {
				outs = append(outs, s.Outcome)
			}
			if strings.Join(outs, " ") != tc.outcomes || res.Stopped != tc.stopped || len(ex.calls) != tc.calls {
				t.Errorf("outcomes=%v stopped=%v calls=%d", outs, res.Stopped, len(ex.calls))
			}
			if res.Steps[0].Error != "zoho said no" {
				t.Errorf("step error %q", res.Steps[0].Error)
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	set := mustParse(t, chain)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := set.Rules()[0].Run(ctx, rules.Input{Event: &rules.Event{}, Record: map[string]any{"Stage": "Closed Won"}}, &scripted{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestDryRunPlaceholders(t *testing.T) {
	set := mustParse(t, chain)
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", RecordID: "42"}
	rec := map[string]any{"Stage": "Closed Won", "Amount": 100.0, "Account_Name": map[string]any{"name": "Acme"}}
	dry := &rules.DryRun{}
	res, err := set.Rules()[0].Run(context.Background(), rules.Input{Event: ev, Record: rec}, dry)
	if err != nil {
		t.Fatal(err)
	}
	calls := dry.Calls()
	if len(calls) != 4 {
		t.Fatalf("dry run made %d calls", len(calls))
	}
	if got := calls[3].Inputs["data"].(map[string]any)["Invoice_Number"]; got != "<steps.invoice.invoice.invoice_number>" {
		t.Errorf("placeholder = %v", got)
	}
	if res.Steps[1].Note == "" {
		t.Errorf("the dry run should say it assumed new_contact's condition")
	}
	// A known output replaces the placeholder.
	dry = &rules.DryRun{Outputs: map[string]map[string]any{"deal/invoice": {"invoice": map[string]any{"invoice_number": "INV-1"}}}}
	if _, err := set.Rules()[0].Run(context.Background(), rules.Input{Event: ev, Record: rec}, dry); err != nil {
		t.Fatal(err)
	}
	if got := dry.Calls()[3].Inputs["data"].(map[string]any)["Invoice_Number"]; got != "INV-1" {
		t.Errorf("with known output = %v", got)
	}
}

func TestInputsAreFresh(t *testing.T) {
	// An executor that edits its inputs must not change the rule.
	set := mustParse(t, "version: 1\nrules:\n  - name: r\n    on: {source: crm.notify}\n    steps: [{action: crm.update_record, with: {module: Deals, id: \"1\", data: {a: 1}}}]\n")
	ex := &scripted{}
	for i := 0; i < 2; i++ {
		if _, err := set.Rules()[0].Run(context.Background(), rules.Input{Event: &rules.Event{}}, ex); err != nil {
			t.Fatal(err)
		}
		data := ex.calls[i].Inputs["data"].(map[string]any)
		if data["a"] != int64(1) {
			t.Fatalf("run %d saw %v", i, data)
		}
		data["a"] = "changed"
	}
}
