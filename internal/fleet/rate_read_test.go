package fleet_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/fleet"
)

// ReadRates shows what the limiters took from the shared bucket, and
// Available refills it as the limiter would: the console's "budget left".
func TestReadRatesShowsTheBudgetLeft(t *testing.T) {
	env := eventstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got, err := fleet.ReadRates(ctx, env.JS, ""); err != nil || len(got) != 0 {
		t.Fatalf("before any limiter: %v, %v; want none", got, err)
	}
	p := newProcess(t, env)
	books, err := fleet.NewRateLimiter(ctx, p.js, "books-default", 60, time.Minute, fleet.WithBurst(10))
	if err != nil {
		t.Fatal(err)
	}
	crm, err := fleet.NewRateLimiter(ctx, p.js, "crm-default", 1000, time.Hour, fleet.WithBurst(5))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := books.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := crm.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := fleet.ReadRates(ctx, env.JS, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "books-default" || got[1].Name != "crm-default" {
		t.Fatalf("readings %+v; want books-default and crm-default", got)
	}
	b := got[0]
	if b.Granted != 4 {
		t.Errorf("books granted %d; want 4", b.Granted)
	}
	// 10 - 4 taken, plus what refilled (1/s) since the last take.
	if left := b.Available(b.At, 60, time.Minute, 10); math.Abs(left-6) > 0.5 {
		t.Errorf("books left at the reading %.2f; want about 6", left)
	}
	if left := b.Available(b.At.Add(3*time.Second), 60, time.Minute, 10); math.Abs(left-9) > 0.5 {
		t.Errorf("books left 3 s later %.2f; want about 9 (1 token a second)", left)
	}
	if left := b.Available(b.At.Add(time.Hour), 60, time.Minute, 10); left != 10 {
		t.Errorf("books left an hour later %.2f; want the burst, 10", left)
	}
	if c := got[1]; c.Granted != 1 || math.Abs(c.Available(c.At, 1000, time.Hour, 5)-4) > 0.5 {
		t.Errorf("crm reading %+v; want 1 granted, about 4 left", c)
	}
	if fleet.DefaultBurst(50000, 24*time.Hour) != 35 || fleet.DefaultBurst(90, time.Minute) != 90 {
		t.Errorf("DefaultBurst: %d, %d; want 35 and 90", fleet.DefaultBurst(50000, 24*time.Hour), fleet.DefaultBurst(90, time.Minute))
	}
}
