package fleet_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/fleet"
)

func newLease(t *testing.T, p *process, holder string, ttl time.Duration) *fleet.Lease {
	t.Helper()
	l, err := fleet.NewLease(p.js, "channel-renewal", holder, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLeaseMutualExclusion(t *testing.T) {
	env := eventstest.Start(t)
	const rounds = 8
	var inside, maxInside, entries atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for _, holder := range []string{"a", "b"} {
		l := newLease(t, newProcess(t, env), holder, 300*time.Millisecond)
		go func() {
			for range rounds {
				err := l.Hold(ctx, func(ctx context.Context) {
					n := inside.Add(1)
					for {
						m := maxInside.Load()
						if n <= m || maxInside.CompareAndSwap(m, n) {
							break
						}
					}
					entries.Add(1)
					select { // longer than a renewal interval now and then
					case <-time.After(time.Duration(20+entries.Load()%3*60) * time.Millisecond):
					case <-ctx.Done():
					}
					inside.Add(-1)
				})
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Hold: %v", err)
		}
	}
	if maxInside.Load() != 1 {
		t.Fatalf("%d holders inside at once", maxInside.Load())
	}
	if entries.Load() != 2*rounds {
		t.Fatalf("entries = %d, want %d", entries.Load(), 2*rounds)
	}
}

func TestLeaseTakeoverAfterHolderStopsRenewing(t *testing.T) {
	env := eventstest.Start(t)
	const ttl = 300 * time.Millisecond
	a := newLease(t, newProcess(t, env), "a", ttl)
	b := newLease(t, newProcess(t, env), "b", ttl)
	ctx := context.Background()
	if ok, err := a.Acquire(ctx); !ok || err != nil {
		t.Fatalf("a.Acquire = %v, %v", ok, err)
	}
	if ok, err := b.Acquire(ctx); ok || err != nil {
		t.Fatalf("b.Acquire while a holds = %v, %v", ok, err)
	}
	// a stops renewing (as if it hung or crashed).
	start := time.Now()
	var entered time.Duration
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Hold(hctx, func(context.Context) { entered = time.Since(start) }); err != nil {
		t.Fatal(err)
	}
	if entered < ttl {
		t.Fatalf("b entered after %s, before a's lease expired (%s)", entered, ttl)
	}
	if a.Held() {
		t.Fatal("a still believes it holds an expired lease")
	}
	// b released on return, so a may take it again at once.
	if ok, err := a.Acquire(ctx); !ok || err != nil {
		t.Fatalf("a.Acquire after b released = %v, %v", ok, err)
	}
}

func TestLeaseRenewalRefusedAfterTakeover(t *testing.T) {
	env := eventstest.Start(t)
	const ttl = 200 * time.Millisecond
	a := newLease(t, newProcess(t, env), "a", ttl)
	b := newLease(t, newProcess(t, env), "b", ttl)
	ctx := context.Background()
	if ok, _ := a.Acquire(ctx); !ok {
		t.Fatal("a.Acquire failed")
	}
	if !eventually(t, 3*time.Second, func() bool { ok, _ := b.Acquire(ctx); return ok }) {
		t.Fatal("b never took over")
	}
	if ok, err := a.Acquire(ctx); ok || err != nil {
		t.Fatalf("a renewing a lease b took over = %v, %v", ok, err)
	}
	if !b.Held() {
		t.Fatal("b lost the lease")
	}
}

func TestLeaseReleaseLetsOtherInPromptly(t *testing.T) {
	env := eventstest.Start(t)
	const ttl = 30 * time.Second // expiry cannot explain b getting in
	a := newLease(t, newProcess(t, env), "a", ttl)
	b := newLease(t, newProcess(t, env), "b", ttl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	aIn, aRelease := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- a.Hold(ctx, func(context.Context) { close(aIn); <-aRelease })
	}()
	<-aIn
	bIn := make(chan struct{})
	bDone := make(chan error, 1)
	go func() { bDone <- b.Hold(ctx, func(context.Context) { close(bIn) }) }()
	select {
	case <-bIn:
		t.Fatal("b entered while a held the lease")
	case <-time.After(100 * time.Millisecond):
	}
	close(aRelease)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-bIn:
	case <-ctx.Done():
		t.Fatal("b did not get in after a released")
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
}

func TestLeaseLostWhenHolderIsCutOff(t *testing.T) {
	env := eventstest.Start(t)
	const ttl = 300 * time.Millisecond
	pa := newProcess(t, env)
	a := newLease(t, pa, "a", ttl)
	b := newLease(t, newProcess(t, env), "b", ttl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var inside atomic.Int32
	aIn := make(chan struct{})
	var cause error
	aDone := make(chan error, 1)
	go func() {
		aDone <- a.Hold(ctx, func(ctx context.Context) {
			inside.Add(1)
			close(aIn)
			<-ctx.Done()
			cause = context.Cause(ctx)
			inside.Add(-1)
		})
	}()
	<-aIn
	pa.nc.Close() // a can no longer renew
	bDone := make(chan error, 1)
	var overlap atomic.Bool
	go func() {
		bDone <- b.Hold(ctx, func(context.Context) {
			if inside.Add(1) > 1 {
				overlap.Store(true)
			}
			inside.Add(-1)
		})
	}()
	if err := <-aDone; !errors.Is(err, fleet.ErrLeaseLost) || !errors.Is(cause, fleet.ErrLeaseLost) {
		t.Fatalf("a.Hold = %v (fn cause %v), want ErrLeaseLost", err, cause)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if overlap.Load() {
		t.Fatal("b entered while a's fn was still running")
	}
}

func TestLeaseHoldContextEnds(t *testing.T) {
	env := eventstest.Start(t)
	a := newLease(t, newProcess(t, env), "a", time.Minute)
	b := newLease(t, newProcess(t, env), "b", time.Minute)
	if ok, _ := a.Acquire(context.Background()); !ok {
		t.Fatal("a.Acquire failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	ran := false
	if err := b.Hold(ctx, func(context.Context) { ran = true }); !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("Hold = %v, ran %v; want DeadlineExceeded without running", err, ran)
	}
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Held() {
		t.Fatal("held after Release")
	}
}

func TestNewLeaseValidation(t *testing.T) {
	env := eventstest.Start(t)
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{
		{"bad name!", "a", time.Second},
		{"", "a", time.Second},
		{"ok", "", time.Second},
		{"ok", "a", 0},
	} {
		if _, err := fleet.NewLease(env.JS, c.name, c.holder, c.ttl); err == nil {
			t.Errorf("NewLease(%q, %q, %s) accepted", c.name, c.holder, c.ttl)
		}
	}
}
