package worker_test

import (
	"context"
	"errors"
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
	if r, err := j.Get(ctx, "ev1", "deal-won/invoice"); err != nil || r != nil {
		t.Fatalf("fresh get: %v %v", r, err)
	}
	if err := j.Start(ctx, "ev1", "deal-won/invoice", "books.create_record", 1); err != nil {
		t.Fatal(err)
	}
	r, _ := j.Get(ctx, "ev1", "deal-won/invoice")
	if r.State != worker.StepStarted {
		t.Fatalf("state %q", r.State)
	}
	out := map[string]any{"invoice": map[string]any{"invoice_number": "INV-00001"}}
	if err := j.Done(ctx, "ev1", "deal-won/invoice", "books.create_record", 1, out); err != nil {
		t.Fatal(err)
	}
	r, _ = j.Get(ctx, "ev1", "deal-won/invoice")
	if r.State != worker.StepDone || r.Output["invoice"].(map[string]any)["invoice_number"] != "INV-00001" {
		t.Fatalf("record %+v", r)
	}
	// Keys with characters KV does not allow still work.
	if err := j.Done(ctx, "ev1", "rule with spaces/#2", "crm.coql", 1, nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := j.Get(ctx, "ev1", "rule with spaces/#2"); r == nil || r.State != worker.StepDone {
		t.Fatalf("encoded key: %+v", r)
	}
}
