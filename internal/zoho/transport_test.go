package zoho_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// countingListener counts the connections a server accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// newConnsPerCall runs calls GetRecord calls, conc at a time, through c
// against the fake behind ln, after a warm-up round, and returns the
// connections the server accepted per call.
func newConnsPerCall(t testing.TB, c *zoho.Client, s *zohotest.Server, ln *countingListener, conc, calls int) float64 {
	t.Helper()
	id := s.CRMInsert("Deals", map[string]any{"Deal_Name": "d", "Stage": "s"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(n int) {
		var wg sync.WaitGroup
		per := n / conc
		for range conc {
			wg.Go(func() {
				for range per {
					if _, _, err := c.CRM.GetRecord(ctx, "Deals", id, nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run(conc * 4) // warm up: token minted, the pool filled
	before := ln.accepted.Load()
	run(calls)
	return float64(ln.accepted.Load()-before) / float64(calls)
}

func fakeWithCountingListener(t testing.TB) (*zohotest.Server, *countingListener) {
	t.Helper()
	s := zohotest.NewUnstarted()
	ts := httptest.NewUnstartedServer(s.Handler())
	ln := &countingListener{Listener: ts.Listener}
	ts.Listener = ln
	ts.Start()
	s.SetBaseURL(ts.URL)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ln
}

// TestDefaultTransportReusesConnections: with 16 or 64 calls in flight (a
// worker at -concurrency 16 to 64) the default client opens (almost) no
// new connection per call; net/http's default transport, which keeps 2
// idle connections per host, keeps opening them.
func TestDefaultTransportReusesConnections(t *testing.T) {
	const calls = 1920
	client := func(t *testing.T, hc *http.Client) (*zoho.Client, *zohotest.Server, *countingListener) {
		s, ln := fakeWithCountingListener(t)
		cr := s.Credentials()
		cfg := zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken, DC: "us", AccountsURL: s.URL()}
		opts := []zoho.Option{zoho.WithLogger(slog.New(slog.DiscardHandler))}
		if hc != nil {
			opts = append(opts, zoho.WithHTTPClient(hc))
		}
		c, err := zoho.NewClient(cfg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c, s, ln
	}
	for _, conc := range []int{16, 64} {
		c, s, ln := client(t, nil)
		got := newConnsPerCall(t, c, s, ln, conc, calls)
		stock := &http.Client{Timeout: time.Minute, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c2, s2, ln2 := client(t, stock)
		base := newConnsPerCall(t, c2, s2, ln2, conc, calls)
		t.Logf("concurrency %d, %d calls: new connections per call: default client %.4f, net/http default transport %.4f", conc, calls, got, base)
		if got > 0.01 {
			t.Errorf("concurrency %d: the default client opened %.4f new connections per call, want ≈ 0", conc, got)
		}
	}
}
