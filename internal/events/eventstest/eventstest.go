// Package eventstest starts a real embedded NATS server with JetStream for
// tests: no mocks, the same server code production embeds.
package eventstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// Env is a running JetStream for one test.
type Env struct {
	Dir      string
	Embedded *events.Embedded
	NC       *nats.Conn
	JS       jetstream.JetStream
	Stream   events.StreamConfig
}

// Options configure StartWith. Zero fields take Start's defaults.
type Options struct {
	Dir        string // data directory (to test restarts); default a temp dir
	Partitions int    // default 4
}

// Start starts an embedded server with a TCP listener on a random loopback
// port, connects to it, and creates the work and history streams with
// their partition consumers. Everything stops at the end of the test.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, Options{})
}

// StartIn is Start with a chosen data directory (to test restarts).
func StartIn(t testing.TB, dir string) *Env {
	t.Helper()
	return StartWith(t, Options{Dir: dir})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Env {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Dir: dir, Embedded: emb, Stream: events.StreamConfig{Partitions: o.Partitions}.WithDefaults()}
	t.Cleanup(env.Stop)
	env.NC, err = nats.Connect(emb.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	env.JS, err = jetstream.New(env.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := events.EnsureEventStreams(ctx, env.JS, env.Stream, events.ConsumerConfig{}, events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	return env
}

// Stop closes the connection and shuts the server down; safe to call twice.
func (e *Env) Stop() {
	if e.NC != nil {
		e.NC.Close()
	}
	if e.Embedded != nil {
		e.Embedded.Shutdown()
		e.Embedded = nil
	}
}

// Messages returns the number of messages in the work stream (events not
// yet acknowledged).
func (e *Env) Messages(t testing.TB) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.JS.Stream(ctx, e.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Envelopes reads every stored envelope in sequence order.
func (e *Env) Envelopes(t testing.TB) []*events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.JS.Stream(ctx, e.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		env, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		out = append(out, env)
	}
	return out
}
