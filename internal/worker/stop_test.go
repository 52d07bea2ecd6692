package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

// Runners stopped again and again while events keep arriving: Run must not
// return while a consume callback may still start work (under -race this
// could report wg.Add racing wg.Wait; the window is too narrow to hit on
// demand), and every event is handled.
func TestStopWhileEventsArrive(t *testing.T) {
	env := eventstest.Start(t)
	const total = 300
	go func() {
		pub := events.NewPublisher(env.JS, env.Stream)
		for i := range total {
			e := envelope(fmt.Sprintf("ev-%03d", i), fmt.Sprintf("9%03d", i%40))
			if _, err := pub.Publish(context.Background(), []*events.Envelope{e}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var mu sync.Mutex
	handled := map[string]int{}
	var inFlight atomic.Int32
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		mu.Lock()
		handled[m.Envelope.ID]++
		mu.Unlock()
		return nil
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	cfg := worker.Config{JS: env.JS, Stream: env.Stream, Handler: h, Concurrency: 4,
		Consumer:      events.ConsumerConfig{AckWait: time.Second, PinnedTTL: time.Second},
		ShutdownGrace: 5 * time.Second}
	for round := 0; round < 3 && count() < total; round++ {
		stop := startRunner(t, cfg)
		before := count()
		eventually(t, "progress", func() bool { return count() > before || count() == total },
			func() string { return fmt.Sprint(count(), " handled") })
		stop()
		if n := inFlight.Load(); n != 0 {
			t.Fatalf("Run returned with %d handlers still running", n)
		}
	}
	startRunner(t, cfg)
	eventually(t, "all events handled", func() bool { return count() == total },
		func() string { return fmt.Sprint(count(), " handled") })
}
