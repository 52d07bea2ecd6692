package worker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

func totals(t *testing.T, env *eventstest.Env) (pending uint64, ackPending, missing int, pinned int) {
	t.Helper()
	bl, err := worker.Backlog(context.Background(), env.JS, env.Stream, events.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(bl) != env.Stream.Partitions {
		t.Fatalf("%d partitions reported, want %d", len(bl), env.Stream.Partitions)
	}
	for _, b := range bl {
		pending += b.Pending
		ackPending += b.AckPending
		if b.Missing {
			missing++
		}
		if b.Pinned != "" {
			pinned++
		}
	}
	return
}

// The backlog an operator sees: nothing before any worker ran; stored
// events pending; delivered ones held by a busy worker as ack-pending with
// the partition pinned to it; nothing once they are done; dead letters
// counted.
func TestBacklogAndDeadLetterCount(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	if _, _, missing, _ := totals(t, env); missing != env.Stream.Partitions {
		t.Fatalf("%d consumers missing before any worker, want all %d", missing, env.Stream.Partitions)
	}
	if _, err := events.EnsureConsumers(ctx, env.JS, env.Stream, events.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	publish(t, env, 6, 2) // 12 events, 6 records
	if pending, ack, missing, _ := totals(t, env); pending != 12 || ack != 0 || missing != 0 {
		t.Fatalf("before consuming: pending %d, ack-pending %d, missing %d; want 12, 0, 0", pending, ack, missing)
	}

	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, events.NewPublisher(env.JS, env.Stream))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		<-release
		if m.Envelope.ID == "ev-900000000000000-000" {
			return worker.Permanent(errors.New("refused"))
		}
		return nil
	})
	stop := run(t, env, h, dlq, 5)
	defer stop()
	rec := newRecorder()
	waitFor(t, "events held by the busy worker", func() bool {
		pending, ack, _, pinned := totals(t, env)
		return ack > 0 && pending+uint64(ack) == 12 && pinned > 0
	}, rec)
	close(release)
	waitFor(t, "backlog drained", func() bool {
		pending, ack, _, _ := totals(t, env)
		return pending == 0 && ack == 0
	}, rec)
	n, err := dlq.Count(ctx)
	if err != nil || n != 1 {
		t.Fatalf("dead letters %d (%v), want 1", n, err)
	}
}
