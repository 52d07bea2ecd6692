package rules_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/rules"
)

// manyRules builds n rules over 97 modules; at most 3 share the benchmark
// event's module.
func manyRules(n int) string {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; i < n; i++ {
		mod := fmt.Sprintf("Mod%d", i%97)
		if i == 0 || i == n/2 || i == n-1 {
			mod = "Deals"
		}
		fmt.Fprintf(&b, "  - name: r%d\n    on: {source: crm.notify, module: %s, operation: update}\n    steps: [{action: crm.coql, with: {query: select id from Deals}}]\n", i, mod)
	}
	return b.String()
}

func BenchmarkMatch(b *testing.B) {
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", RecordID: "1"}
	for _, n := range []int{1, 10, 100, 1000} {
		set := mustParse(b, manyRules(n))
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(set.Match(ev)) == 0 {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkMatchRatio times matching with 10 and with 1,000 rules in the
// same run and reports the ratio (the index should keep it near 1).
func BenchmarkMatchRatio(b *testing.B) {
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", RecordID: "1"}
	small, large := mustParse(b, manyRules(10)), mustParse(b, manyRules(1000))
	var dSmall, dLarge time.Duration
	for b.Loop() {
		t0 := time.Now()
		for range 100 {
			large.Match(ev)
		}
		t1 := time.Now()
		for range 100 {
			small.Match(ev)
		}
		dLarge += t1.Sub(t0)
		dSmall += time.Since(t1)
	}
	b.ReportMetric(float64(dLarge)/float64(dSmall), "ratio_1000/10")
}

func BenchmarkCondition(b *testing.B) {
	set := mustParse(b, chain)
	r := set.Rules()[0]
	ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update"}
	rec := map[string]any{"Stage": "Closed Won", "Amount": 100.0}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := r.Condition(ev, rec); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkTemplate runs a one-step rule whose inputs hold a typical mix:
// an exact template, an interpolation, and constants.
func BenchmarkTemplate(b *testing.B) {
	set := mustParse(b, `version: 1
vars: {item: "982"}
rules:
  - name: t
    on: {source: crm.notify}
    record: all
    steps:
      - action: books.create_record
        with:
          entity: invoices
          data:
            reference_number: "CRM-DEAL-${event.record_id}"
            line_items: [{item_id: "${vars.item}", rate: "${record.Amount}", quantity: 1}]
`)
	r := set.Rules()[0]
	in := rules.Input{Event: &rules.Event{RecordID: "42"}, Record: map[string]any{"Amount": 100.0}}
	ex := nopExec{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Run(ctx, in, ex); err != nil {
			b.Fatal(err)
		}
	}
}

type nopExec struct{}

func (nopExec) Execute(context.Context, rules.Call) (map[string]any, error) { return nil, nil }

func BenchmarkParseExample(b *testing.B) {
	data := []byte(manyRules(100))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.Parse("b.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
