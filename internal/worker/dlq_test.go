package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

func TestDeadLetterThenReplayAfterFix(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	pub := events.NewPublisher(env.JS, env.Stream)
	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	broken.Store(true)
	var handled atomic.Int32
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		if broken.Load() {
			return worker.Permanent(&worker.Failure{Rule: "deal-won", Step: "invoice", Action: "books.create_record",
				Err: errors.New("zoho books 400 code 1001: customer_id invalid")})
		}
		handled.Add(1)
		return nil
	})
	stop := run(t, env, h, dlq, 5)
	defer stop()
	publish(t, env, 1, 1)

	var dl *worker.DeadLetter
	waitFor(t, "dead letter", func() bool {
		for d, err := range dlq.List(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			dl = d
		}
		return dl != nil
	}, newRecorder())
	if dl.Rule != "deal-won" || dl.Step != "invoice" || dl.Action != "books.create_record" || !dl.Permanent ||
		!strings.Contains(dl.Error, "customer_id invalid") || dl.Attempts != 1 || dl.Event.RecordID == "" || dl.StreamSeq == 0 {
		t.Fatalf("dead letter %+v", dl)
	}
	got, err := dlq.Get(ctx, dl.Event.ID)
	if err != nil || got.Event.ID != dl.Event.ID {
		t.Fatalf("get: %v %+v", err, got)
	}
	if _, err := dlq.Get(ctx, "nope"); !errors.Is(err, worker.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}

	broken.Store(false) // "the fake is fixed"
	if err := dlq.Replay(ctx, dl.Event.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replayed event handled", func() bool { return handled.Load() == 1 }, newRecorder())
	n := 0
	for _, err := range dlq.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 0 {
		t.Fatalf("%d dead letters left after replay", n)
	}
}

func TestReplayHistory(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	publish(t, env, 3, 2)
	pub := events.NewPublisher(env.JS, env.Stream)
	n, err := worker.ReplayHistory(ctx, env.JS, env.Stream, pub, time.Now().Add(-time.Hour), "")
	if err != nil || n != 6 {
		t.Fatalf("replayed %d, %v", n, err)
	}
	if got := env.Messages(t); got != 12 {
		t.Fatalf("stream has %d messages", got)
	}
	all := env.Envelopes(t)
	ids := map[string]int{}
	for _, e := range all[6:] {
		if e.Replay == 0 {
			t.Fatalf("replayed envelope without replay number: %+v", e)
		}
		ids[e.ID]++
	}
	if len(ids) != 6 {
		t.Fatalf("replayed ids %v", ids)
	}
}

func TestJournal(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	j, err := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := j.Get(ctx, "ev1"); err != nil || r != nil {
		t.Fatalf("fresh get: %v %v", r, err)
	}
	e, err := j.Load(ctx, "ev1")
	if err != nil {
		t.Fatal(err)
	}
	e.SetRecord(map[string]any{"Stage": "Closed Won"})
	// A read's output rides with the next write.
	if err := e.Done(ctx, "deal-won/contact", "books.get_records", 1, map[string]any{"contacts": []any{}}, nil, false); err != nil {
		t.Fatal(err)
	}
	if r, _ := j.Get(ctx, "ev1"); r != nil {
		t.Fatalf("a read was written on its own: %+v", r)
	}
	if err := e.Start(ctx, "deal-won/invoice", "books.create_record", 1); err != nil {
		t.Fatal(err)
	}
	r, _ := j.Get(ctx, "ev1")
	if r.Steps["deal-won/invoice"].State != worker.StepStarted || r.Steps["deal-won/contact"].State != worker.StepDone || r.Record["Stage"] != "Closed Won" {
		t.Fatalf("entry %+v", r)
	}
	out := map[string]any{"invoice": map[string]any{"invoice_number": "INV-00001"}}
	if err := e.Done(ctx, "deal-won/invoice", "books.create_record", 1, out, nil, true); err != nil {
		t.Fatal(err)
	}
	r, _ = j.Get(ctx, "ev1")
	if s := r.Steps["deal-won/invoice"]; s.State != worker.StepDone || s.Output["invoice"].(map[string]any)["invoice_number"] != "INV-00001" {
		t.Fatalf("record %+v", s)
	}
	// Keys with characters KV does not allow still work.
	odd, err := j.Load(ctx, "ev/with spaces")
	if err != nil {
		t.Fatal(err)
	}
	if err := odd.Start(ctx, "rule with spaces/#2", "crm.update_record", 1); err != nil {
		t.Fatal(err)
	}
	if r, _ := j.Get(ctx, "ev/with spaces"); r == nil || r.Steps["rule with spaces/#2"].State != worker.StepStarted {
		t.Fatalf("encoded key: %+v", r)
	}
}

// Two handler runs of one event that read the journal before either wrote
// (a stall longer than the ack wait): only one can claim a step; the other
// gets ErrClaimed and must not send it.
func TestJournalClaimIsCompareAndSet(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	j, err := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := j.Load(ctx, "ev2")
	b, _ := j.Load(ctx, "ev2")
	if err := a.Start(ctx, "r/contact", "books.create_record", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, "r/contact", "books.create_record", 1); !errors.Is(err, worker.ErrClaimed) {
		t.Fatalf("second claim: want ErrClaimed, got %v", err)
	}
	// The same for an entry that existed before both read it.
	c, _ := j.Load(ctx, "ev2")
	d, _ := j.Load(ctx, "ev2")
	if err := c.Done(ctx, "r/contact", "books.create_record", 1, map[string]any{"ok": true}, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Failed(ctx, worker.Attempt{Outcome: "retried"}); !errors.Is(err, worker.ErrClaimed) {
		t.Fatalf("stale write: want ErrClaimed, got %v", err)
	}
}

// An output too large for one entry is stored under a key of its own and
// read back on use.
func TestJournalSpillsLargeOutputs(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	j, err := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := j.Load(ctx, "ev3")
	rows := make([]any, 6000)
	for i := range rows {
		rows[i] = map[string]any{"id": fmt.Sprint(i), "Email": fmt.Sprintf("person%d@example.com", i), "Full_Name": "A Person With A Long Name"}
	}
	if err := e.Done(ctx, "r/find", "crm.coql", 1, map[string]any{"data": rows}, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, "r/update", "crm.update_record", 1); err != nil {
		t.Fatal(err)
	}
	again, _ := j.Load(ctx, "ev3")
	s, err := again.Step(ctx, "r/find")
	if err != nil {
		t.Fatal(err)
	}
	if s.OutputKey == "" || len(s.Output["data"].([]any)) != 6000 {
		t.Fatalf("spilled output: key %q, %d rows (want 6000)", s.OutputKey, len(s.Output["data"].([]any)))
	}
}
