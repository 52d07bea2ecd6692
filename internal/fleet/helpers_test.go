package fleet_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// process is one worker process of the fleet: its own NATS connection and
// JetStream context, as a separate binary would have.
type process struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newProcess(t testing.TB, env *eventstest.Env) *process {
	t.Helper()
	nc, err := nats.Connect(env.Embedded.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &process{nc: nc, js: js}
}

func fakeZoho(t testing.TB, opts ...zohotest.Option) (*zohotest.Server, zoho.Config) {
	t.Helper()
	s := zohotest.NewServer(opts...)
	t.Cleanup(s.Close)
	c := s.Credentials()
	return s, zoho.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RefreshToken: c.RefreshToken,
		AccountsURL: s.URL(), APIURL: s.URL(), BooksURL: s.URL() + "/books/v3", BooksOrgID: c.OrgID,
	}
}

// logBuf collects log output of all processes, to check that no secret leaks.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond (state, not performance) until it holds or the wait ends.
func eventually(t testing.TB, wait time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// fakeClock is a settable clock for token expiry decisions.
type fakeClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// clockedOAuth is the real zoho.OAuth (real HTTP to the fake Zoho) with
// Grant.Expiry moved onto the fake clock, as fleet.WithClock requires.
type clockedOAuth struct {
	oauth *zoho.OAuth
	clock *fakeClock
}

func (c clockedOAuth) Refresh(ctx context.Context) (*zoho.Grant, error) {
	g, err := c.oauth.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	g.Expiry = g.Expiry.Add(time.Until(c.clock.Now()))
	return g, nil
}
