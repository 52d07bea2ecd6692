package rulescmd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/rules/rulescmd"
)

const (
	whatIfRunning   = "testdata/whatif/running.yaml"
	whatIfCandidate = "testdata/whatif/candidate.yaml"
)

// whatIfTally is what a test expects of one rule: the counts of the
// report, examples aside.
type whatIfTally struct {
	in                                         string
	running, candidate                         rulescmd.WhatIfTally
	nowMatch, noLonger, unchanged, unchangedOK int
	condTrue, condFalse, condErrors, noSnap    int
}

func tallyOf(x *rulescmd.WhatIfRule) whatIfTally {
	return whatIfTally{x.In, x.Running, x.Candidate, x.NowMatch.Count, x.NoLongerMatch.Count, x.Unchanged.Count, x.Unchanged.Matching,
		x.ConditionNowTrue.Count, x.ConditionNowFalse.Count, x.ConditionErrors.Count, x.WithoutSnapshot}
}

func ids(c rulescmd.WhatIfChange) []string {
	var out []string
	for _, ex := range c.Examples {
		out = append(out, ex.ID)
	}
	return out
}

// The comparison on a known mix of events, without NATS: every rule's
// counts exactly, where each record came from, and the examples.
func TestWhatIfCounts(t *testing.T) {
	w, err := rulescmd.NewWhatIf(whatIfRunning, whatIfCandidate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC)
	deal := func(id, op string, values map[string]any) *rules.Event {
		return &rules.Event{ID: id, Source: "crm.notify", Module: "Deals", Operation: op, RecordID: "r-" + id, Values: values, ReceivedAt: at}
	}
	snap := func(stage string, amount any) map[string]any {
		m := map[string]any{"id": "x", "Stage": stage}
		if amount != nil {
			m["Amount"] = amount
		}
		return m
	}
	type add struct {
		ev   *rules.Event
		snap map[string]any
		need bool // NeedsRecord must say so
	}
	for _, a := range []add{
		{deal("d1", "update", nil), snap("Closed Won", 5000.0), true},                               // deal-won in both
		{deal("d2", "update", nil), snap("Closed Won", 500.0), true},                                // deal-won: condition now false
		{deal("d3", "update", nil), snap("Negotiation", 20000.0), true},                             // big-deal matches
		{deal("d4", "update", map[string]any{"Stage": "Closed Won", "Amount": 2000.0}), nil, false}, // the values cover the fields
		{deal("d5", "update", nil), nil, true},                                                      // no snapshot: record is null
		{deal("d7", "update", nil), snap("Closed Won", nil), true},                                  // a snapshot without Amount
		{&rules.Event{ID: "l1", Source: "crm.notify", Module: "Leads", Operation: "create", ReceivedAt: at}, nil, false},
		{&rules.Event{ID: "l2", Source: "crm.notify", Module: "Leads", Operation: "update", ReceivedAt: at}, nil, false},
		{&rules.Event{ID: "i1", Source: "books.webhook", Module: "invoice", Operation: "paid", ReceivedAt: at}, nil, false},
		{deal("d6", "delete", nil), nil, false}, // a delete never loads its record
	} {
		if got := w.NeedsRecord(a.ev); got != a.need {
			t.Errorf("%s: NeedsRecord = %v, want %v", a.ev.ID, got, a.need)
		}
		if !w.Add(a.ev, a.snap, a.snap != nil) {
			t.Fatalf("%s counted as a repeat", a.ev.ID)
		}
	}
	if w.Add(deal("d1", "update", nil), nil, false) {
		t.Error("a replay of d1 was counted twice")
	}
	w.Undecodable()
	rep := w.Report()

	ev := rep.Events
	if ev.Read != 12 || ev.Evaluated != 10 || ev.Repeated != 1 || ev.Undecodable != 1 || ev.Changed != 6 {
		t.Errorf("events: %+v", ev)
	}
	if want := map[string]int{"event": 5, "journal": 3, "partial": 1, "none": 1}; !equalCounts(ev.Record, want) {
		t.Errorf("records: %v, want %v", ev.Record, want)
	}
	if strings.Join(ev.NoSnapshot, ",") != "d5" {
		t.Errorf("no snapshot: %v", ev.NoSnapshot)
	}

	T := func(trig, match, errs int) rulescmd.WhatIfTally {
		return rulescmd.WhatIfTally{Triggered: trig, Matched: match, ConditionErrors: errs}
	}
	want := map[string]whatIfTally{
		// d1, d4 match in both; d2 (500) and d7 (no Amount: the comparison
		// fails) no longer match, their condition is now false, d7's an error.
		"deal-won": {in: "both", running: T(6, 4, 0), candidate: T(6, 2, 1), noLonger: 2, unchanged: 8, unchangedOK: 2,
			condFalse: 2, condErrors: 1, noSnap: 2},
		"lead-created": {in: "both", running: T(1, 1, 0), candidate: T(2, 2, 0), nowMatch: 1, unchanged: 9, unchangedOK: 1},
		"invoice-paid": {in: "running", running: T(1, 1, 0), noLonger: 1, unchanged: 9},
		"deal-deleted": {in: "candidate", candidate: T(1, 1, 0), nowMatch: 1, unchanged: 9},
		// d3 matches; null > 10000 fails on d5 and d7.
		"big-deal": {in: "candidate", candidate: T(6, 1, 2), nowMatch: 1, unchanged: 9, condErrors: 2, noSnap: 2},
	}
	var order []string
	for _, x := range rep.Rules {
		order = append(order, x.Rule)
		if got := tallyOf(x); got != want[x.Rule] {
			t.Errorf("rule %s:\n got %+v\nwant %+v", x.Rule, got, want[x.Rule])
		}
	}
	if got := strings.Join(order, " "); got != "deal-won lead-created deal-deleted big-deal invoice-paid" {
		t.Errorf("rule order: %s", got)
	}

	byName := map[string]*rulescmd.WhatIfRule{}
	for _, x := range rep.Rules {
		byName[x.Rule] = x
	}
	dw := byName["deal-won"]
	if got := strings.Join(ids(dw.NoLongerMatch), ","); got != "d2,d7" {
		t.Errorf("deal-won no longer match: %s", got)
	}
	ex := dw.NoLongerMatch.Examples
	if ex[0].Record != "journal" || ex[0].Running != "matched" || ex[0].Candidate != "condition false" {
		t.Errorf("d2 example: %+v", ex[0])
	}
	if ex[1].Record != "partial" || !strings.HasPrefix(ex[1].Candidate, "condition error: ") {
		t.Errorf("d7 example: %+v", ex[1])
	}
	lc := byName["lead-created"].NowMatch.Examples
	if len(lc) != 1 || lc[0].ID != "l2" || lc[0].Running != `not triggered: operation "update" is not create` || lc[0].Candidate != "matched" {
		t.Errorf("lead-created now match: %+v", lc)
	}
	bd := byName["big-deal"]
	if got := strings.Join(ids(bd.ConditionErrors), ","); got != "d5,d7" || bd.ConditionErrors.Examples[0].Record != "none" ||
		bd.ConditionErrors.Examples[0].Running != "absent" {
		t.Errorf("big-deal condition errors: %+v", bd.ConditionErrors)
	}

	// The text report says the same, and marks the event without snapshot.
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"rule deal-won\n  matched 4 → 2, trigger fit 6 → 6\n  now match: 0\n  no longer match: 2\n      d2  matched → condition false\n",
		"rule invoice-paid (removed by the candidate)\n",
		"rule big-deal (added by the candidate)\n",
		"  condition errors (the worker would dead-letter these): 2\n      d5  absent → condition error: ",
		"[no record snapshot]\n",
		"[record snapshot lacks fields]\n",
		"1 without a record snapshot (evaluated with the event's values only; e.g. d5)",
		"events: 10 evaluated, 1 replay(s) of an event already counted, 1 message(s) that are not events skipped; 6 where a rule now matches or no longer does",
	} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report lacks %q:\n%s", s, text.String())
		}
	}
	// The JSON report is the documented shape.
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Running struct{ File, Version string }
		Events  struct{ Evaluated int }
		Rules   []struct {
			Rule     string
			NowMatch struct {
				Count    int
				Examples []struct{ ID, Record, Running, Candidate string }
			} `json:"now_match"`
		}
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Running.File != whatIfRunning || doc.Events.Evaluated != 10 || len(doc.Rules) != 5 || doc.Rules[3].Rule != "big-deal" ||
		doc.Rules[3].NowMatch.Count != 1 || doc.Rules[3].NowMatch.Examples[0].ID != "d3" || doc.Rules[3].NowMatch.Examples[0].Record != "journal" {
		t.Errorf("json report:\n%s", js.String())
	}
}

func equalCounts(got, want map[string]int) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if want[k] != v {
			return false
		}
	}
	return true
}

// now() and today() in a condition read the event's received_at, and a
// file that does not load is an error naming which file it is.
func TestWhatIfClockAndLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cand := whatIfWrite(t, dir, "cand.yaml", `version: 1
rules:
  - name: old-news
    on: { source: crm.notify }
    when: event.received_at < addDays(now(), -1) || today() == "2026-03-30"
    steps:
      - action: crm.get_record
        with: { module: Deals, id: "1" }
`)
	w, err := rulescmd.NewWhatIf(whatIfRunning, cand)
	if err != nil {
		t.Fatal(err)
	}
	w.Add(&rules.Event{ID: "then", Source: "crm.notify", Module: "Deals", Operation: "create", ReceivedAt: time.Date(2026, 3, 30, 23, 0, 0, 0, time.UTC)}, nil, false)
	w.Add(&rules.Event{ID: "other", Source: "crm.notify", Module: "Deals", Operation: "create", ReceivedAt: time.Date(2026, 3, 31, 1, 0, 0, 0, time.UTC)}, nil, false)
	x := w.Report().Rules[0] // the candidate's first rule
	if x.Rule != "old-news" || x.Candidate.Matched != 1 || x.NowMatch.Count != 1 || x.NowMatch.Examples[0].ID != "then" {
		t.Errorf("old-news: %+v", x)
	}

	bad := whatIfWrite(t, dir, "bad.yaml", "version: 1\nrules:\n  - name: x\n    on: { source: crm.notify }\n    when: evnt.id == 1\n    steps: [{ action: crm.get_record, with: { module: Deals, id: '1' } }]\n")
	_, err = rulescmd.NewWhatIf(whatIfRunning, bad)
	var le *rules.LoadError
	if err == nil || !strings.HasPrefix(err.Error(), "candidate rules: ") || !errors.As(err, &le) {
		t.Errorf("a broken candidate: %v", err)
	}
	if _, err = rulescmd.NewWhatIf(dir+"/missing.yaml", whatIfCandidate); err == nil || !strings.HasPrefix(err.Error(), "running rules: ") {
		t.Errorf("a missing running file: %v", err)
	}
}

func whatIfWrite(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
