package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

func totals(t *testing.T, env *eventstest.Env) (pending uint64, ackPending, missing, pinned int) {
	pending, ackPending, missing, pinned, _ = totalsAged(t, env)
	return
}

// totalsAged also counts the partitions reporting an oldest waiting event.
func totalsAged(t *testing.T, env *eventstest.Env) (pending uint64, ackPending, missing, pinned, aged int) {
	t.Helper()
	return totalsChecked(t, env, true)
}

// totalsChecked reads the backlog; strict checks that each partition's
// oldest waiting event agrees with its counts, which holds only while
// nothing is acknowledged between the two reads (an acknowledged event
// leaves the work stream at once).
func totalsChecked(t *testing.T, env *eventstest.Env, strict bool) (pending uint64, ackPending, missing, pinned, aged int) {
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
		if strict && b.Pending+uint64(b.AckPending) > 0 && b.OldestWaiting.IsZero() {
			t.Fatalf("partition %d has %d pending, %d ack pending but no oldest waiting event", b.Partition, b.Pending, b.AckPending)
		}
		if !b.OldestWaiting.IsZero() {
			if strict && b.Pending+uint64(b.AckPending) == 0 || time.Since(b.OldestWaiting) < 0 || time.Since(b.OldestWaiting) > time.Minute {
				t.Fatalf("partition %d: oldest waiting %s with %d pending, %d ack pending", b.Partition, b.OldestWaiting, b.Pending, b.AckPending)
			}
			aged++
		}
	}
	return
}

// The backlog an operator sees: the consumers exist before any worker ran
// (the layout's owner made them); stored events pending; delivered ones held by a busy worker as ack-pending with
// the partition pinned to it; nothing once they are done; dead letters
// counted.
func TestBacklogAndDeadLetterCount(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	if _, _, missing, _ := totals(t, env); missing != 0 {
		t.Fatalf("%d consumers missing, want none", missing)
	}
	publish(t, env, 6, 2) // 12 events, 6 records
	if pending, ack, missing, _, aged := totalsAged(t, env); pending != 12 || ack != 0 || missing != 0 || aged == 0 {
		t.Fatalf("before consuming: pending %d, ack-pending %d, missing %d, partitions with an oldest event %d; want 12, 0, 0, >0",
			pending, ack, missing, aged)
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
		pending, ack, _, _, aged := totalsChecked(t, env, false)
		return pending == 0 && ack == 0 && aged == 0
	}, rec)
	n, err := dlq.Count(ctx)
	if err != nil || n != 1 {
		t.Fatalf("dead letters %d (%v), want 1", n, err)
	}
}
