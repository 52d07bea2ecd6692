package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

// A worker whose handler slots are all busy does not take its whole
// backlog into memory: deliveries that would start a lane wait for room
// (at most max(16, 2×concurrency) lanes waiting for a slot), so JetStream
// keeps the rest. Before, every delivery up to each partition's
// MaxAckPending became a goroutine waiting for a slot.
func TestBusyWorkerLeavesTheBacklogInTheStream(t *testing.T) {
	env := eventstest.Start(t)
	const records = 300
	publish(t, env, records, 1)

	gate := make(chan struct{})
	var entered atomic.Int32
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		entered.Add(1)
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	rec := newRecorder()
	stop := run(t, env, h, rec, 5) // concurrency 4
	defer stop()
	defer close(gate)

	eventually(t, "every handler slot busy", func() bool { return entered.Load() == 4 }, func() string { return "" })
	ackPending := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := env.JS.Stream(ctx, env.Stream.Name)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for p := range env.Stream.WithDefaults().Partitions {
			c, err := s.Consumer(ctx, events.ConsumerConfig{}.WithDefaults().ConsumerName(p))
			if err != nil {
				t.Fatal(err)
			}
			n += c.CachedInfo().NumAckPending
		}
		return n
	}
	// Delivered and held: 4 running, 16 waiting for a slot, and what the
	// 16 partitions' consume loops prefetched (4 each, the concurrency).
	const bound = 4 + 16 + 16*4
	time.Sleep(2 * time.Second) // well within the 5 s a held-back delivery waits
	if n := ackPending(); n > bound {
		t.Fatalf("%d of %d events delivered to a worker with 4 busy slots; want at most %d (the rest stay in the stream)", n, records, bound)
	} else if n < 4 {
		t.Fatalf("only %d events delivered", n)
	}
	if entered.Load() != 4 {
		t.Fatalf("%d handlers entered, want 4", entered.Load())
	}
}
