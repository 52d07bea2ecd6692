package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

type rateLimited struct{ error }

func (rateLimited) RateLimited() bool { return true }

// A rate limit (or a refused token refresh, which the engine reports the
// same way) that outlasts the in-process patience spends deliveries, but
// never dead-letters the event: nothing is wrong with it, Zoho only said
// "later" (for the daily quota, until tomorrow).
func TestRateLimitNeverExhaustsDeliveries(t *testing.T) {
	env := eventstest.Start(t)
	publish(t, env, 1, 1)
	rec := newRecorder()
	rec.fail = func(m *worker.Message, _ int) error {
		if m.Delivered <= 4 {
			return rateLimited{errors.New("zoho: 429 daily quota")}
		}
		return nil
	}
	r, err := worker.NewRunner(worker.Config{
		JS: env.JS, Stream: env.Stream, Handler: rec, DeadLetter: rec, Concurrency: 2,
		Consumer:  events.ConsumerConfig{MaxDeliver: 2, AckWait: 3 * time.Second},
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		RateLimitPatience: 30 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the event settled", func() bool { return rec.total() == 1 }, rec)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.dead) != 0 {
		t.Fatalf("dead-lettered after rate limits: %v", rec.dead)
	}
}
