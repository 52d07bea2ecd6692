package app

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules/rulescmd"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/worker"
)

const (
	whatIfRunning   = "../rules/rulescmd/testdata/whatif/running.yaml"
	whatIfCandidate = "../rules/rulescmd/testdata/whatif/candidate.yaml"
)

// natsState is what a read-only command must leave as it found it.
type natsState struct {
	streams            []string
	work, history, jnl jetstream.StreamState
}

func readNATSState(t *testing.T, js jetstream.JetStream, s events.StreamConfig) natsState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st natsState
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		st.streams = append(st.streams, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(st.streams)
	for name, dst := range map[string]*jetstream.StreamState{s.Name: &st.work, s.HistoryName: &st.history, "KV_" + worker.DefaultJournalBucket: &st.jnl} {
		str, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		*dst = info.State
		dst.Consumers = 0 // the ordered consumer may linger until NATS drops it
	}
	return st
}

// `worker rules test -history` on a real history stream holding a known
// mix of events (one outside the window, a replay, a message that is not
// an event) with journaled record snapshots for some: every rule's counts
// exactly, the window and the subject filter respected, and NATS left as
// it was (no journal write, nothing published).
func TestWhatIfHistory(t *testing.T) {
	env := startLayout(t)
	ctx := context.Background()
	pub := events.NewPublisher(env.JS, env.Stream)
	history := func() uint64 {
		s, err := env.JS.Stream(ctx, env.Stream.HistoryName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	publish := func(envs ...*events.Envelope) {
		t.Helper()
		if _, err := pub.Publish(ctx, envs); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	ev := func(id, source, module, op string, values map[string]any) *events.Envelope {
		return &events.Envelope{ID: id, Source: events.Source(source), Connection: "default", Module: module, Operation: op,
			RecordID: "r-" + id, Values: values, ReceivedAt: now}
	}
	deal := func(id, op string, values map[string]any) *events.Envelope {
		return ev(id, "crm.notify", "Deals", op, values)
	}

	// An event older than the window: a Closed Won deal both files match.
	publish(deal("old", "update", map[string]any{"Stage": "Closed Won", "Amount": 9000}))
	waitUntil(t, "the history has the old event", func() bool { return history() == 1 })
	time.Sleep(4 * time.Second)

	d1 := deal("d1", "update", nil)
	publish(d1, deal("d2", "update", nil), deal("d3", "update", nil),
		deal("d4", "update", map[string]any{"Stage": "Closed Won", "Amount": 2000}), deal("d5", "update", nil), deal("d7", "update", nil),
		ev("l1", "crm.notify", "Leads", "create", nil), ev("l2", "crm.notify", "Leads", "update", nil),
		ev("i1", "books.webhook", "invoice", "paid", map[string]any{"invoice_id": "r-i1"}), deal("d6", "delete", nil))
	replay := *d1
	replay.Replay = 1
	publish(&replay)
	if _, err := env.JS.Publish(ctx, "zoho.crm.notify.default.deals.update.0.garbage", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the history has every event", func() bool { return history() == 13 })

	// The journal: record snapshots of d1, d2, d3, a partial one of d7, and
	// an entry without snapshot for d5 (a step wrote, no record loaded).
	journal, err := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for id, rec := range map[string]map[string]any{
		"d1": {"id": "r-d1", "Stage": "Closed Won", "Amount": 5000},
		"d2": {"id": "r-d2", "Stage": "Closed Won", "Amount": 500},
		"d3": {"id": "r-d3", "Stage": "Negotiation", "Amount": 20000},
		"d7": {"id": "r-d7", "Stage": "Closed Won"},
	} {
		e, err := journal.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		e.SetRecord(rec)
		if err := e.Done(ctx, "deal-won/#0", "crm.update_record", 1, map[string]any{"id": "r-" + id}, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	e, err := journal.Load(ctx, "d5")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Done(ctx, "deal-won/#0", "crm.update_record", 1, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	before := readNATSState(t, env.JS, env.Stream)

	getenv := func(k string) string {
		switch k {
		case "ZOHOOK_NATS_URL":
			return env.Embedded.ClientURL()
		case "ZOHOOK_RULES": // -rules is a configuration flag: read from the environment
			return whatIfRunning
		case "ZOHOOK_SUBJECT", "ZOHOOK_HISTORY", "ZOHOOK_JSON": // action flags: never
			return "zoho.books.>"
		}
		return ""
	}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out bytes.Buffer
		errb := &testutil.SyncBuffer{}
		if !isWhatIf(append([]string{"test"}, args...)) {
			t.Fatalf("%v is not routed to the history comparison", args)
		}
		code := whatIfCommand(ctx, args, &out, errb, getenv)
		return code, out.String(), errb.String()
	}
	report := func(args ...string) *rulescmd.WhatIfReport {
		t.Helper()
		code, out, errs := run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
		var rep rulescmd.WhatIfReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return &rep
	}

	// The window excludes the old event; flags may follow the file.
	rep := report(whatIfCandidate, "-history", "2500ms", "-json")
	e1 := rep.Events
	if e1.Read != 12 || e1.Evaluated != 10 || e1.Repeated != 1 || e1.Undecodable != 1 || e1.Changed != 6 {
		t.Errorf("events: %+v", e1)
	}
	if want := map[string]int{"event": 5, "journal": 3, "partial": 1, "none": 1}; !mapsEqual(e1.Record, want) {
		t.Errorf("records: %v, want %v", e1.Record, want)
	}
	if rep.Running.File != whatIfRunning || rep.Candidate.File != whatIfCandidate || rep.Window == nil ||
		rep.Window.Subject != "zoho.>" || rep.Window.Stream != env.Stream.HistoryName || rep.Window.Until.Sub(rep.Window.Since) != 2500*time.Millisecond {
		t.Errorf("report header: running %+v candidate %+v window %+v", rep.Running, rep.Candidate, rep.Window)
	}
	type tally struct {
		running, candidate            rulescmd.WhatIfTally
		nowMatch, noLonger, unchanged int
		condTrue, condFalse, condErrs int
		noSnap                        int
		examples                      string // of now match and no longer match, sorted (stream order is not publish order)
	}
	T := func(trig, match, errs int) rulescmd.WhatIfTally {
		return rulescmd.WhatIfTally{Triggered: trig, Matched: match, ConditionErrors: errs}
	}
	want := map[string]tally{
		"deal-won":     {T(6, 4, 0), T(6, 2, 1), 0, 2, 8, 0, 2, 1, 2, "d2 d7"},
		"lead-created": {T(1, 1, 0), T(2, 2, 0), 1, 0, 9, 0, 0, 0, 0, "l2"},
		"deal-deleted": {T(0, 0, 0), T(1, 1, 0), 1, 0, 9, 0, 0, 0, 0, "d6"},
		"big-deal":     {T(0, 0, 0), T(6, 1, 2), 1, 0, 9, 0, 0, 2, 2, "d3"},
		"invoice-paid": {T(1, 1, 0), T(0, 0, 0), 0, 1, 9, 0, 0, 0, 0, "i1"},
	}
	var names []string
	for _, x := range rep.Rules {
		names = append(names, x.Rule)
		var ex []string
		for _, c := range []rulescmd.WhatIfChange{x.NowMatch, x.NoLongerMatch} {
			for _, e := range c.Examples {
				ex = append(ex, e.ID)
			}
		}
		slices.Sort(ex)
		got := tally{x.Running, x.Candidate, x.NowMatch.Count, x.NoLongerMatch.Count, x.Unchanged.Count,
			x.ConditionNowTrue.Count, x.ConditionNowFalse.Count, x.ConditionErrors.Count, x.WithoutSnapshot, strings.Join(ex, " ")}
		if got != want[x.Rule] {
			t.Errorf("rule %s:\n got %+v\nwant %+v", x.Rule, got, want[x.Rule])
		}
	}
	if strings.Join(names, " ") != "deal-won lead-created deal-deleted big-deal invoice-paid" {
		t.Errorf("rules: %v", names)
	}
	for _, x := range rep.Rules {
		if x.Rule == "big-deal" {
			records := map[string]string{}
			for _, e := range x.ConditionErrors.Examples {
				records[e.ID] = e.Record
			}
			if len(records) != 2 || records["d5"] != "none" || records["d7"] != "partial" {
				t.Errorf("big-deal condition errors: %+v", x.ConditionErrors.Examples)
			}
		}
	}

	// A wider window takes the old event in: one more, matched by both.
	if rep := report("-history", "1h", "-json", whatIfCandidate); rep.Events.Evaluated != 11 || rep.Rules[0].Unchanged.Matching != 3 {
		t.Errorf("-history 1h: %+v, deal-won %+v", rep.Events, rep.Rules[0].Unchanged)
	}

	// -subject narrows the events (module tokens are lower case); the
	// text report marks the event without a record snapshot.
	code, out, errs := run("-history", "1h", "-subject", "zoho.crm.notify.*.leads.>", whatIfCandidate)
	if code != 0 || !strings.Contains(out, "events: 2 evaluated;") || !strings.Contains(out, "subject zoho.crm.notify.*.leads.>") ||
		!strings.Contains(out, "rule lead-created\n  matched 1 → 2, trigger fit 1 → 2\n  now match: 1\n      l2  not triggered: operation \"update\" is not create → matched\n") {
		t.Errorf("-subject: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run("-history", "1h", "-subject", "zoho.crm.notify.*.deals.update.>", whatIfCandidate)
	if code != 0 || !strings.Contains(out, "events: 7 evaluated, 1 replay(s) of an event already counted, 1 message(s) that are not events skipped") ||
		!strings.Contains(out, "d5  absent → condition error: ") || !strings.Contains(out, "[no record snapshot]") {
		t.Errorf("-subject deals: exit %d\n%s\n%s", code, out, errs)
	}

	if after := readNATSState(t, env.JS, env.Stream); !statesEqual(before, after) {
		t.Errorf("the command changed NATS:\nbefore %+v\nafter  %+v", before, after)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func statesEqual(a, b natsState) bool {
	same := func(x, y jetstream.StreamState) bool {
		return x.Msgs == y.Msgs && x.Bytes == y.Bytes && x.FirstSeq == y.FirstSeq && x.LastSeq == y.LastSeq
	}
	return slices.Equal(a.streams, b.streams) && same(a.work, b.work) && same(a.history, b.history) && same(a.jnl, b.jnl)
}

// Usage errors are found before NATS is asked anything; the command is
// routed only when -history is given.
func TestWhatIfUsage(t *testing.T) {
	ctx := context.Background()
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout (code 0) or stderr
	}{
		{[]string{"-h"}, 0, "usage: worker rules test -history DURATION"},
		{[]string{"-history", "24h"}, 2, "give the candidate rules file"},
		{[]string{"-history", "24h", "a.yaml", "b.yaml"}, 2, `unexpected argument "b.yaml"`},
		{[]string{"-history", "0", whatIfCandidate}, 2, "-history needs a positive duration"},
		{[]string{"-history", "soon", whatIfCandidate}, 2, "invalid value"},
		{[]string{"-history", "1h", "-subject", "deals.>", whatIfCandidate}, 2, "not an event subject"},
		{[]string{"-history", "1h", "-subject", "zoho.>.x", whatIfCandidate}, 2, "> must be the last token"},
		{[]string{"-history", "1h", "-rules", whatIfRunning, "missing.yaml"}, 1, "candidate rules: "},
		{[]string{"-history", "1h", whatIfCandidate}, 1, "running rules: "}, // rules.yaml is not in internal/app
	} {
		var out, errb bytes.Buffer
		code := whatIfCommand(ctx, tc.args, &out, &errb, getenv)
		got := errb.String()
		if tc.code == 0 {
			got = out.String()
		}
		if code != tc.code || !strings.Contains(got, tc.out) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout %s\nstderr %s", tc.args, code, tc.code, tc.out, out.String(), errb.String())
		}
	}
	for args, want := range map[string]bool{
		"test -history 24h new.yaml":  true,
		"test new.yaml --history=24h": true,
		"test -json -history=1h x":    true,
		"test rules.test.yaml":        false,
		"test --event e.json":         false,
		"check -history":              false,
		"test -- -history":            false,
	} {
		if got := isWhatIf(strings.Fields(args)); got != want {
			t.Errorf("isWhatIf(%s) = %v", args, got)
		}
	}
}
