package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

func newSource(t testing.TB, p *process, cfg zoho.Config, opts ...fleet.TokenOption) *fleet.TokenSource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts, err := fleet.NewTokenSource(ctx, p.js, zoho.NewOAuth(cfg, nil), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func newClockedSource(t testing.TB, p *process, cfg zoho.Config, clock *fakeClock, opts ...fleet.TokenOption) *fleet.TokenSource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts, err := fleet.NewTokenSource(ctx, p.js, clockedOAuth{zoho.NewOAuth(cfg, nil), clock}, append(opts, fleet.WithClock(clock.Now))...)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// hammer calls Token from n goroutines on each source at once and returns the tokens.
func hammer(t *testing.T, n int, sources ...*fleet.TokenSource) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		toks []string
		wg   sync.WaitGroup
		errs = make(chan error, n*len(sources))
	)
	start := make(chan struct{})
	for _, ts := range sources {
		for range n {
			wg.Go(func() {
				<-start
				tok, err := ts.Token(ctx)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				toks = append(toks, tok.AccessToken)
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Token: %v", err)
	}
	return toks
}

func distinct(xs []string) map[string]int {
	m := map[string]int{}
	for _, x := range xs {
		m[x]++
	}
	return m
}

func TestTokenOneRefreshForTwoProcesses(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t)
	var logs logBuf
	a := newSource(t, newProcess(t, env), cfg, fleet.WithHolderID("proc-a"), fleet.WithTokenLogger(logs.logger()))
	b := newSource(t, newProcess(t, env), cfg, fleet.WithHolderID("proc-b"), fleet.WithTokenLogger(logs.logger()))

	toks := hammer(t, 50, a, b)
	if len(toks) != 100 {
		t.Fatalf("got %d tokens, want 100", len(toks))
	}
	if d := distinct(toks); len(d) != 1 {
		t.Fatalf("processes got %d different tokens, want 1", len(d))
	}
	if n := s.TokenRefreshes(); n != 1 {
		t.Fatalf("fake Zoho saw %d refreshes, want 1", n)
	}

	// The stored record has the documented shape and names the minting process.
	e, err := env.JS.KeyValue(context.Background(), fleet.DefaultTokenBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := e.Get(context.Background(), "default.token")
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["access_token"] != toks[0] || rec["api_domain"] != s.URL() || rec["expiry"] == nil {
		t.Fatalf("record = %v", rec)
	}
	if by := rec["minted_by"]; by != "proc-a" && by != "proc-b" {
		t.Fatalf("minted_by = %v", by)
	}

	// The shared token really works against the (fake) Zoho API.
	client, err := zoho.NewClient(cfg, zoho.WithTokenSource(b))
	if err != nil {
		t.Fatal(err)
	}
	id := s.CRMInsert("Deals", map[string]any{"Deal_Name": "fleet"})
	got, _, err := client.CRM.GetRecord(context.Background(), "Deals", id, nil)
	if err != nil || got["Deal_Name"] != "fleet" {
		t.Fatalf("GetRecord with the shared token: %v %v", got, err)
	}
	if n := s.TokenRefreshes(); n != 1 {
		t.Fatalf("refreshes after API call = %d, want 1", n)
	}
	if strings.Contains(logs.String(), toks[0]) {
		t.Fatal("access token appears in the logs")
	}
}

func TestTokenOneRefreshPerExpiry(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t) // tokens live 1 h
	clock := &fakeClock{}
	a := newClockedSource(t, newProcess(t, env), cfg, clock) // default margin: 5 min
	b := newClockedSource(t, newProcess(t, env), cfg, clock)

	var seen []string
	for phase := 1; phase <= 4; phase++ {
		toks := hammer(t, 10, a, b)
		d := distinct(toks)
		if len(d) != 1 {
			t.Fatalf("phase %d: %d distinct tokens, want 1", phase, len(d))
		}
		if n := s.TokenRefreshes(); n != phase {
			t.Fatalf("phase %d: %d refreshes, want %d", phase, n, phase)
		}
		seen = append(seen, toks[0])
		clock.Advance(50 * time.Minute) // still fresh: no refresh
		hammer(t, 3, a, b)
		if n := s.TokenRefreshes(); n != phase {
			t.Fatalf("phase %d, 50 min later: %d refreshes, want %d", phase, n, phase)
		}
		clock.Advance(6 * time.Minute) // inside the 5 min margin
	}
	if d := distinct(seen); len(d) != 4 {
		t.Fatalf("tokens not renewed between phases: %d distinct", len(d))
	}
}

func TestTokenInvalidate(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t)
	a := newSource(t, newProcess(t, env), cfg)
	b := newSource(t, newProcess(t, env), cfg)
	ctx := context.Background()

	t1a, err := a.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t1b, err := b.Token(ctx)
	if err != nil || t1b.AccessToken != t1a.AccessToken {
		t.Fatalf("b: %v %v", t1b, err)
	}
	// Zoho rejects T1 for A: A refreshes once.
	a.Invalidate(ctx, t1a.AccessToken)
	t2, err := a.Token(ctx)
	if err != nil || t2.AccessToken == t1a.AccessToken {
		t.Fatalf("after invalidate: %v %v", t2, err)
	}
	if n := s.TokenRefreshes(); n != 2 {
		t.Fatalf("refreshes = %d, want 2", n)
	}
	// B then hits the same 401 with T1: it picks up T2, no refresh.
	b.Invalidate(ctx, t1b.AccessToken)
	t2b, err := b.Token(ctx)
	if err != nil || t2b.AccessToken != t2.AccessToken {
		t.Fatalf("b after invalidate: %v %v", t2b, err)
	}
	// A stale invalidation (T1 again) changes nothing.
	a.Invalidate(ctx, t1a.AccessToken)
	t2a, err := a.Token(ctx)
	if err != nil || t2a.AccessToken != t2.AccessToken {
		t.Fatalf("a after stale invalidate: %v %v", t2a, err)
	}
	if n := s.TokenRefreshes(); n != 2 {
		t.Fatalf("refreshes = %d after stale invalidations, want 2", n)
	}
}

func TestTokenLockHolderDiesMidRefresh(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t)
	const lockTTL = 300 * time.Millisecond

	// A process takes the refresh lock and dies without releasing it.
	dead := newProcess(t, env)
	a := newSource(t, newProcess(t, env), cfg, fleet.WithLockTTL(lockTTL)) // creates the bucket
	lock, err := fleet.NewLease(dead.js, "default.lock", "dead-proc", lockTTL, fleet.WithLeaseBucket(fleet.DefaultTokenBucket))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := lock.Acquire(context.Background()); !ok || err != nil {
		t.Fatalf("dead process lock: %v %v", ok, err)
	}
	dead.nc.Close()

	start := time.Now()
	tok, err := a.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < lockTTL {
		t.Fatalf("refreshed after %s, before the dead holder's lock expired (%s)", waited, lockTTL)
	}
	if tok.AccessToken == "" || s.TokenRefreshes() != 1 {
		t.Fatalf("token %v, refreshes %d", tok, s.TokenRefreshes())
	}
}

func TestTokenRefreshRefused(t *testing.T) {
	env := eventstest.Start(t)
	// One refresh allowed per 10 minutes: the second one gets "Access Denied".
	s, cfg := fakeZoho(t, zohotest.WithRefreshLimit(1, 10*time.Minute))
	clock := &fakeClock{}
	var logs logBuf
	opts := []fleet.TokenOption{fleet.WithFailureBackoff(time.Hour), fleet.WithTokenLogger(logs.logger())}
	a := newClockedSource(t, newProcess(t, env), cfg, clock, opts...)
	b := newClockedSource(t, newProcess(t, env), cfg, clock, opts...)
	ctx := context.Background()

	t1, err := a.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(57 * time.Minute) // inside the margin, not expired
	toks := hammer(t, 10, a, b)
	if d := distinct(toks); len(d) != 1 || toks[0] != t1.AccessToken {
		t.Fatalf("within the margin after a refused refresh: %v, want the cached token", d)
	}
	tokenCalls := func() int { return len(s.CallsTo("POST", "/oauth/v2/token")) }
	if n := tokenCalls(); n != 2 {
		t.Fatalf("token endpoint calls = %d, want 2 (one refresh, one refused)", n)
	}
	clock.Advance(time.Minute)
	hammer(t, 5, a, b)
	if n := tokenCalls(); n != 2 {
		t.Fatalf("token endpoint calls = %d after more Token calls, want still 2 (no refresh loop)", n)
	}

	clock.Advance(3 * time.Minute) // t1 expired, still within the backoff
	for name, ts := range map[string]*fleet.TokenSource{"a": a, "b": b} {
		tok, err := ts.Token(ctx)
		if err == nil {
			t.Fatalf("%s: expired token served: %v", name, tok)
		}
		var re *fleet.RefreshError
		var te *zoho.TokenError
		if !errors.As(err, &re) || !errors.Is(err, fleet.ErrRefreshFailed) || !errors.As(err, &te) || !te.Throttled() {
			t.Fatalf("%s: error %v (%T), want *RefreshError wrapping a throttled *zoho.TokenError", name, err, err)
		}
		if !re.RetryAt.After(clock.Now()) {
			t.Fatalf("%s: RetryAt %s is not in the future", name, re.RetryAt)
		}
		c := s.Credentials()
		for _, secret := range []string{c.RefreshToken, c.ClientSecret, t1.AccessToken} {
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", re), secret) {
				t.Fatalf("%s: secret in error %q", name, err)
			}
		}
	}
	if n := tokenCalls(); n != 2 {
		t.Fatalf("token endpoint calls = %d after expiry, want 2", n)
	}
	if strings.Contains(logs.String(), t1.AccessToken) || strings.Contains(logs.String(), s.Credentials().RefreshToken) {
		t.Fatal("secret in logs")
	}
}

func TestTokenFailureBackoffThenRecovery(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t)
	const backoff = time.Minute
	clock := &fakeClock{}
	a := newClockedSource(t, newProcess(t, env), cfg, clock, fleet.WithFailureBackoff(backoff))
	b := newClockedSource(t, newProcess(t, env), cfg, clock, fleet.WithFailureBackoff(backoff))
	s.Inject(zohotest.Fault{PathPrefix: "/oauth/v2/token", Status: 500, Times: 1})
	ctx := context.Background()

	_, err := a.Token(ctx)
	// The fake answers a 500 on the token endpoint with {"error":"server_error"}.
	var te *zoho.TokenError
	if !errors.Is(err, fleet.ErrRefreshFailed) || !errors.As(err, &te) || te.HTTPStatus != 500 || te.Throttled() {
		t.Fatalf("first Token: %v, want a RefreshError wrapping the 500 *zoho.TokenError", err)
	}
	// Neither process retries during the backoff.
	for _, ts := range []*fleet.TokenSource{a, b, a, b} {
		if _, err := ts.Token(ctx); !errors.Is(err, fleet.ErrRefreshFailed) {
			t.Fatalf("during backoff: %v", err)
		}
	}
	if n := len(s.CallsTo("POST", "/oauth/v2/token")); n != 1 {
		t.Fatalf("token calls during backoff = %d, want 1", n)
	}
	clock.Advance(backoff - time.Second)
	if _, err := b.Token(ctx); !errors.Is(err, fleet.ErrRefreshFailed) {
		t.Fatalf("just before the backoff ends: %v", err)
	}
	clock.Advance(time.Second)
	toks := hammer(t, 5, b, a)
	if d := distinct(toks); len(d) != 1 {
		t.Fatalf("after backoff: %d tokens", len(d))
	}
	if n := s.TokenRefreshes(); n != 1 {
		t.Fatalf("refreshes after backoff = %d, want 1", n)
	}
}

func TestTokenCallerContext(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t)
	a := newSource(t, newProcess(t, env), cfg)
	s.Inject(zohotest.Fault{PathPrefix: "/oauth/v2/token", Delay: 300 * time.Millisecond, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v", err)
	}
	// The refresh went on without that caller and serves the next one.
	tok, err := a.Token(context.Background())
	if err != nil || tok.AccessToken == "" || s.TokenRefreshes() != 1 {
		t.Fatalf("next caller: %v %v, refreshes %d", tok, err, s.TokenRefreshes())
	}
}

func TestRefreshErrorRedaction(t *testing.T) {
	re := &fleet.RefreshError{Conn: "default", By: "p", RetryAt: time.Unix(0, 0), Err: &zoho.TokenError{Code: "invalid_code"}}
	if !strings.Contains(re.Error(), "invalid_code") || !errors.Is(re, fleet.ErrRefreshFailed) {
		t.Fatalf("%v", re)
	}
}

// Zoho starts rejecting the shared token (401) in every process at once:
// the zoho clients invalidate it and the fleet refreshes once.
func TestTokenRejectedByZohoEverywhere(t *testing.T) {
	env := eventstest.Start(t)
	s, cfg := fakeZoho(t)
	id := s.CRMInsert("Deals", map[string]any{"Deal_Name": "x"})
	var clients []*zoho.Client
	for range 2 {
		c, err := zoho.NewClient(cfg, zoho.WithTokenSource(newSource(t, newProcess(t, env), cfg)))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	get := func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			for range 10 {
				wg.Go(func() {
					if _, _, err := c.CRM.GetRecord(context.Background(), "Deals", id, nil); err != nil {
						t.Errorf("GetRecord: %v", err)
					}
				})
			}
		}
		wg.Wait()
	}
	get()
	if n := s.TokenRefreshes(); n != 1 {
		t.Fatalf("refreshes = %d, want 1", n)
	}
	s.ExpireAccessTokens() // every live token now answers 401 INVALID_TOKEN
	get()
	if n := s.TokenRefreshes(); n != 2 {
		t.Fatalf("refreshes after Zoho rejected the token = %d, want 2", n)
	}
}
