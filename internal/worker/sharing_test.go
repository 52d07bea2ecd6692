package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

// member is one worker process in a test: its own NATS connection (so a
// crash can be simulated by closing it), membership and runner.
type member struct {
	name   string
	nc     *nats.Conn
	runner *worker.Runner
	cancel context.CancelFunc
	done   chan struct{}
}

// shortMembers creates the members bucket with a short TTL (as the
// layout's owner would, with test timings), before anyone joins.
func shortMembers(t *testing.T, env *eventstest.Env, ttl time.Duration) {
	t.Helper()
	spec := worker.MembersSpec(1)
	spec.TTL, spec.LimitMarkerTTL = ttl, ttl
	if _, err := events.EnsureKV(context.Background(), env.JS, spec, events.CreateMissing); err != nil {
		t.Fatal(err)
	}
}

func startMember(t *testing.T, env *eventstest.Env, name string, h worker.Handler, cfg worker.Config) *member {
	t.Helper()
	nc, err := nats.Connect(env.Embedded.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	ms, err := worker.Join(ctx, js, name, env.Stream.Partitions, events.KVOptions{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg.JS, cfg.Stream, cfg.Handler, cfg.Members = js, env.Stream, h, ms
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	r, err := worker.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, nc: nc, runner: r, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(m.done); _ = r.Run(ctx) }()
	t.Cleanup(func() { m.stop(); nc.Close() })
	return m
}

// stop is a SIGTERM: partitions are handed over at once.
func (m *member) stop() {
	m.cancel()
	<-m.done
}

// crash is a SIGKILL: the connection drops, nothing is handed over.
func (m *member) crash() {
	m.nc.Close()
	m.cancel()
}

// handled records which member handled which event, in completion order
// per record.
type handled struct {
	mu       sync.Mutex
	byRecord map[string][]string
	by       map[string]int
	runs     map[string]int
}

func newHandled() *handled {
	return &handled{byRecord: map[string][]string{}, by: map[string]int{}, runs: map[string]int{}}
}

func (h *handled) handler(name string, fail func(m *worker.Message) error) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		time.Sleep(2 * time.Millisecond)
		if fail != nil {
			if err := fail(m); err != nil {
				return err
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.runs[m.Envelope.ID]++
		h.byRecord[m.Envelope.RecordID] = append(h.byRecord[m.Envelope.RecordID], m.Envelope.ID)
		h.by[name]++
		return nil
	})
}

func (h *handled) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ids := range h.byRecord {
		n += len(ids)
	}
	return n
}

// checkOrder: every record's events were handled once each, in the order
// they were published.
func (h *handled) checkOrder(t *testing.T, want map[string][]string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for rec, ids := range want {
		if got := h.byRecord[rec]; !slices.Equal(got, ids) {
			t.Errorf("record %s handled %v, want %v", rec, got, ids)
		}
	}
	for id, n := range h.runs {
		if n != 1 {
			t.Errorf("event %s handled %d times", id, n)
		}
	}
}

func waitCond(t *testing.T, what string, d time.Duration, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three workers share the partitions (P/N ±1 each), each handles a share
// of the events, and a stopped worker's partitions move to the others.
func TestWorkersSharePartitions(t *testing.T) {
	env := eventstest.StartWith(t, eventstest.Options{Partitions: 12})
	shortMembers(t, env, 3*time.Second)
	configureConsumers(t, worker.Config{JS: env.JS, Stream: env.Stream, Consumer: events.ConsumerConfig{AckWait: 2 * time.Second, PinnedTTL: 2 * time.Second}})
	h := newHandled()
	cfg := worker.Config{Consumer: events.ConsumerConfig{AckWait: 2 * time.Second, PinnedTTL: 2 * time.Second}, ShutdownGrace: 5 * time.Second}
	var ms []*member
	for _, n := range []string{"w1", "w2", "w3"} {
		ms = append(ms, startMember(t, env, n, h.handler(n, nil), cfg))
	}
	waitCond(t, "partitions spread 4/4/4", 10*time.Second, func() bool {
		for _, m := range ms {
			if len(m.runner.Held()) != 4 {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprint(ms[0].runner.Held(), ms[1].runner.Held(), ms[2].runner.Held()) })
	want := publishMany(t, env, 100, 3)
	waitCond(t, "300 events handled", 30*time.Second, func() bool { return h.total() == 300 }, func() string { return fmt.Sprint(h.total()) })
	h.checkOrder(t, want)
	h.mu.Lock()
	for _, n := range []string{"w1", "w2", "w3"} {
		if h.by[n] < 300/5 {
			t.Errorf("%s handled %d of 300 events: %v", n, h.by[n], h.by)
		}
	}
	h.mu.Unlock()
	// SIGTERM one: the other two take its partitions at once (6/6).
	ms[2].stop()
	waitCond(t, "partitions spread 6/6", 10*time.Second, func() bool {
		return len(ms[0].runner.Held()) == 6 && len(ms[1].runner.Held()) == 6
	}, func() string { return fmt.Sprint(ms[0].runner.Held(), ms[1].runner.Held()) })
}

// A worker joins while events flow: it takes its share, and every record's
// events are still handled once each and in order, through the moves.
func TestJoinWhileEventsFlowKeepsOrder(t *testing.T) {
	env := eventstest.StartWith(t, eventstest.Options{Partitions: 8})
	shortMembers(t, env, 3*time.Second)
	cfg := worker.Config{Consumer: events.ConsumerConfig{AckWait: 2 * time.Second, PinnedTTL: 2 * time.Second}, ShutdownGrace: 5 * time.Second}
	configureConsumers(t, worker.Config{JS: env.JS, Stream: env.Stream, Consumer: cfg.Consumer})
	h := newHandled()
	startMember(t, env, "w1", h.handler("w1", nil), cfg)
	var mu sync.Mutex
	want := map[string][]string{}
	pub := events.NewPublisher(env.JS, env.Stream)
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			default:
			}
			rid := fmt.Sprintf("8000000000%04d", i%40)
			id := fmt.Sprintf("ev-%s-%04d", rid, i)
			if _, err := pub.Publish(context.Background(), []*events.Envelope{envelope(id, rid)}); err != nil {
				continue
			}
			mu.Lock()
			want[rid] = append(want[rid], id)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	w2 := startMember(t, env, "w2", h.handler("w2", nil), cfg)
	time.Sleep(1500 * time.Millisecond)
	w3 := startMember(t, env, "w3", h.handler("w3", nil), cfg)
	time.Sleep(1500 * time.Millisecond)
	w2.stop()
	time.Sleep(time.Second)
	close(stopPub)
	<-pubDone
	mu.Lock()
	total := 0
	for _, ids := range want {
		total += len(ids)
	}
	mu.Unlock()
	waitCond(t, "every event handled", 30*time.Second, func() bool { return h.total() >= total }, func() string { return fmt.Sprint(h.total(), " of ", total) })
	h.checkOrder(t, want)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by["w3"] == 0 {
		t.Errorf("the joining worker handled nothing: %v", h.by)
	}
	_ = w3
}

// Issue 18 item 2: A1 fails and waits for its retry; A2 and A3 queue
// behind it; the worker dies (SIGKILL). The next holder gets A2 and A3
// back after the ack wait, long before A1's retry: it must not run them
// first. Before the fence, completion order was A2 A3 A1.
func TestOrderSurvivesACrash(t *testing.T) {
	env := eventstest.StartWith(t, eventstest.Options{Partitions: 1})
	shortMembers(t, env, 2*time.Second)
	cfg := worker.Config{Consumer: events.ConsumerConfig{AckWait: time.Second, PinnedTTL: time.Second, MaxDeliver: 10},
		RetryBase: 4 * time.Second, RetryMax: 4 * time.Second, ShutdownGrace: 2 * time.Second}
	configureConsumers(t, worker.Config{JS: env.JS, Stream: env.Stream, Consumer: cfg.Consumer})
	h := newHandled()
	failed := make(chan struct{})
	var once sync.Once
	first := func(m *worker.Message) error {
		if m.Envelope.ID == "A1" {
			once.Do(func() { close(failed) })
			return errors.New("zoho 503")
		}
		return nil
	}
	w1 := startMember(t, env, "w1", h.handler("w1", first), cfg)
	publishEnvelopes(t, env, envelope("A1", "7001"), envelope("A2", "7001"), envelope("A3", "7001"))
	<-failed
	time.Sleep(300 * time.Millisecond) // A2, A3 queued behind A1's retry
	w1.crash()
	startMember(t, env, "w2", h.handler("w2", nil), cfg)
	waitCond(t, "A1 A2 A3 handled", 30*time.Second, func() bool { return h.total() == 3 }, func() string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return fmt.Sprint(h.byRecord)
	})
	h.checkOrder(t, map[string][]string{"7001": {"A1", "A2", "A3"}})
}

func publishMany(t *testing.T, env *eventstest.Env, records, perRecord int) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	pub := events.NewPublisher(env.JS, env.Stream)
	for i := range perRecord {
		var batch []*events.Envelope
		for r := range records {
			rid := fmt.Sprintf("9100000000%04d", r)
			id := fmt.Sprintf("ev-%s-%d", rid, i)
			batch = append(batch, envelope(id, rid))
			want[rid] = append(want[rid], id)
		}
		// One wave per index: a record's events in order, records at once.
		if _, err := pub.Publish(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	return want
}
