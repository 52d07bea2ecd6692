package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/fleet"
)

func storedGranted(t *testing.T, p *process, name string) uint64 {
	t.Helper()
	kv, err := p.js.KeyValue(context.Background(), fleet.DefaultRateBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Granted uint64 `json:"granted"`
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		t.Fatal(err)
	}
	return st.Granted
}

func TestRateSharedByTwoProcesses(t *testing.T) {
	env := eventstest.Start(t)
	const (
		rate   = 20.0 // per second
		burst  = 5
		window = 2 * time.Second
	)
	p1, p2 := newProcess(t, env), newProcess(t, env)
	start := time.Now() // before the bucket exists: it cannot have refilled earlier
	var limiters []*fleet.RateLimiter
	for _, p := range []*process{p1, p2} {
		l, err := fleet.NewRateLimiter(context.Background(), p.js, "books", 20, time.Second, fleet.WithBurst(burst))
		if err != nil {
			t.Fatal(err)
		}
		limiters = append(limiters, l)
	}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(window))
	defer cancel()
	var (
		mu     sync.Mutex
		grants []time.Time
		wg     sync.WaitGroup
	)
	for _, l := range limiters {
		for range 4 {
			wg.Go(func() {
				for {
					if err := l.Wait(ctx); err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("Wait: %v", err)
						}
						return
					}
					now := time.Now()
					mu.Lock()
					grants = append(grants, now)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	// Bucket bound at every instant: grants by T ≤ burst + rate×(T−start)
	// (+1 for float rounding of the refill).
	for i, g := range grants {
		if allowed := burst + rate*g.Sub(start).Seconds() + 1; float64(i+1) > allowed {
			t.Fatalf("%d grants by %s, bucket allows %.1f", i+1, g.Sub(start), allowed)
		}
	}
	// Not starved either: at least 3/4 of what the window allows.
	if minWant := int(0.75 * (burst + rate*window.Seconds())); len(grants) < minWant {
		t.Fatalf("only %d grants in %s, want ≥ %d", len(grants), window, minWant)
	}
	// Every successful Wait took its own token: the shared counter agrees.
	if got := storedGranted(t, p1, "books"); got != uint64(len(grants)) {
		t.Fatalf("KV counts %d tokens taken, Waits returned %d", got, len(grants))
	}
	t.Logf("%d grants in %s (bucket bound %.0f)", len(grants), window, burst+rate*window.Seconds())
}

func TestRateWaitCancelled(t *testing.T) {
	env := eventstest.Start(t)
	p := newProcess(t, env)
	l, err := fleet.NewRateLimiter(context.Background(), p.js, "slow", 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No deadline: Wait queues for the next token (an hour away) until cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx) }()
	if !eventually(t, 2*time.Second, func() bool { return storedGranted(t, p, "slow") == 2 }) {
		t.Fatal("second Wait did not reserve a token")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: %v, want context.Canceled", err)
	}
	if got := storedGranted(t, p, "slow"); got != 1 {
		t.Fatalf("granted = %d after the cancelled wait, want 1 (token given back)", got)
	}
	// A deadline before the next token fails at once and takes nothing.
	dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
	defer dcancel()
	if err := l.Wait(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a short deadline: %v", err)
	}
	if got := storedGranted(t, p, "slow"); got != 1 {
		t.Fatalf("granted = %d, want 1", got)
	}
}

// Concurrent Waits of one process are not serialized on the KV round trip:
// 16 goroutines × 50 Waits at a rate that never blocks finish in far fewer
// KV requests than Waits (one compare-and-set serves every Wait queued while
// the previous one was in flight), and the shared count still has exactly
// one token per Wait.
func TestRateConcurrentWaitsShareRoundTrips(t *testing.T) {
	env := eventstest.Start(t)
	p := newProcess(t, env)
	l, err := fleet.NewRateLimiter(context.Background(), p.js, "shared", 1_000_000, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 16, 50
	before := p.nc.Stats().OutMsgs
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if err := l.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	sent := p.nc.Stats().OutMsgs - before
	t.Logf("%d Waits, %d KV requests", goroutines*each, sent)
	// One round trip per Wait, in a row, is what a lock across the
	// round trip gives; a quarter of that leaves room for slow scheduling.
	if sent > goroutines*each/4 {
		t.Fatalf("%d Waits sent %d KV requests: concurrent Waits are serialized on the round trip", goroutines*each, sent)
	}
	if got := storedGranted(t, p, "shared"); got != goroutines*each {
		t.Fatalf("KV counts %d tokens taken, want %d", got, goroutines*each)
	}
}

// A Wait cancelled while its batch's compare-and-set is in flight returns
// at once; the token taken for it is given back, so the shared count only
// holds the Waits that returned nil.
func TestRateCancelledWaitsGiveTokensBack(t *testing.T) {
	env := eventstest.Start(t)
	p := newProcess(t, env)
	l, err := fleet.NewRateLimiter(context.Background(), p.js, "cancel", 1_000_000, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			if i%2 == 0 {
				cancel() // at once, or while queued, or while in flight
			}
			defer cancel()
			if l.Wait(ctx) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if !eventually(t, 5*time.Second, func() bool { return storedGranted(t, p, "cancel") == uint64(ok.Load()) }) {
		t.Fatalf("KV counts %d tokens taken, %d Waits returned nil", storedGranted(t, p, "cancel"), ok.Load())
	}
}

func TestRateUnlimited(t *testing.T) {
	for _, s := range []string{"", "0", "0/1m"} {
		n, per, err := fleet.ParseRate(s)
		if err != nil || n != 0 {
			t.Fatalf("ParseRate(%q) = %d %s %v", s, n, per, err)
		}
		// nil JetStream: an unlimited limiter must not touch KV.
		l, err := fleet.NewRateLimiter(context.Background(), nil, "crm", n, per)
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			if err := l.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestParseRate(t *testing.T) {
	cases := []struct {
		in    string
		limit int
		per   time.Duration
	}{
		{"100/1m", 100, time.Minute},
		{"10/s", 10, time.Second},
		{"50000/24h", 50000, 24 * time.Hour},
		{" 5 / 100ms ", 5, 100 * time.Millisecond},
		{"2/min", 2, time.Minute},
		{"1000/day", 1000, 24 * time.Hour},
		{"7/H", 7, time.Hour},
	}
	for _, c := range cases {
		n, per, err := fleet.ParseRate(c.in)
		if err != nil || n != c.limit || per != c.per {
			t.Errorf("ParseRate(%q) = %d, %s, %v; want %d, %s", c.in, n, per, err, c.limit, c.per)
		}
	}
	for _, bad := range []string{"100", "x/1m", "-1/s", "10/", "10/0s", "10/-1m", "10/fortnight", "1.5/s"} {
		if _, _, err := fleet.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestRateDefaultBurst(t *testing.T) {
	env := eventstest.Start(t)
	for _, c := range []struct {
		rate, want string
	}{
		{"100/1m", "r 100/1m0s burst 100"},
		{"10/s", "r 10/1s burst 10"},
		{"50000/24h", "r 50000/24h0m0s burst 35"}, // one minute's worth
		{"1/1h", "r 1/1h0m0s burst 1"},
	} {
		n, per, err := fleet.ParseRate(c.rate)
		if err != nil {
			t.Fatal(err)
		}
		l, err := fleet.NewRateLimiter(context.Background(), env.JS, "r", n, per)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.String(); got != c.want {
			t.Errorf("%s: %q, want %q", c.rate, got, c.want)
		}
	}
}

// BenchmarkRateLimiterWait measures one Wait at a rate that never blocks:
// the cost of one KV compare-and-set round trip (embedded server, loopback).
func BenchmarkRateLimiterWait(b *testing.B) {
	env := eventstest.Start(b)
	p := newProcess(b, env)
	l, err := fleet.NewRateLimiter(context.Background(), p.js, "bench", 1_000_000, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRateLimiterWaitParallel: 16 goroutines of one process (a worker
// at -concurrency 16) calling Wait at a rate that never blocks. kv/op is the
// KV requests the process sent per Wait: 1 when every Wait waits for its own
// round trip, far less when concurrent Waits share one compare-and-set.
// Compare its ns/op with BenchmarkKVUpdateBaseline (one round trip).
func BenchmarkRateLimiterWaitParallel(b *testing.B) {
	env := eventstest.Start(b)
	p := newProcess(b, env)
	l, err := fleet.NewRateLimiter(context.Background(), p.js, "bench16", 1_000_000_000, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	before := p.nc.Stats().OutMsgs
	b.SetParallelism(8) // × GOMAXPROCS (2 here) = 16 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Wait(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(p.nc.Stats().OutMsgs-before)/float64(b.N), "kv/op")
}

// BenchmarkRateLimiterWaitTwoProcesses: two processes, 4 goroutines each,
// contending on one key (conflicts and re-reads included).
func BenchmarkRateLimiterWaitTwoProcesses(b *testing.B) {
	env := eventstest.Start(b)
	var ls []*fleet.RateLimiter
	for range 2 {
		l, err := fleet.NewRateLimiter(context.Background(), newProcess(b, env).js, "bench2", 1_000_000, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		ls = append(ls, l)
	}
	var mu sync.Mutex
	i := 0
	b.SetParallelism(4) // × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		l := ls[i%2]
		i++
		mu.Unlock()
		for pb.Next() {
			if err := l.Wait(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkKVUpdateBaseline is the floor for BenchmarkRateLimiterWait: a
// bare KV Update (compare-and-set) round trip on the same kind of bucket.
func BenchmarkKVUpdateBaseline(b *testing.B) {
	env := eventstest.Start(b)
	p := newProcess(b, env)
	ctx := context.Background()
	// Let the limiter create the bucket with its usual configuration.
	if _, err := fleet.NewRateLimiter(ctx, p.js, "baseline", 1, time.Second); err != nil {
		b.Fatal(err)
	}
	kv, err := p.js.KeyValue(ctx, fleet.DefaultRateBucket)
	if err != nil {
		b.Fatal(err)
	}
	rev, err := kv.Create(ctx, "baseline", []byte(`{"tokens":1,"at":1,"granted":1}`))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rev, err = kv.Update(ctx, "baseline", []byte(`{"tokens":1,"at":1,"granted":1}`), rev); err != nil {
			b.Fatal(err)
		}
	}
}
