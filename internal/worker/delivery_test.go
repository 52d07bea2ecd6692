package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

func envelope(id, record string) *events.Envelope {
	return &events.Envelope{ID: id, Source: events.SourceCRMNotify, Connection: "default",
		Module: "Deals", Operation: events.OpUpdate, RecordID: record, ReceivedAt: time.Now()}
}

func publishEnvelopes(t *testing.T, env *eventstest.Env, evs ...*events.Envelope) {
	t.Helper()
	pub := events.NewPublisher(env.JS, env.Stream)
	for _, e := range evs { // one by one: stream order is the order given
		if _, err := pub.Publish(context.Background(), []*events.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
}

// startRunner runs r until the returned stop is called; stop waits for Run.
func startRunner(t *testing.T, cfg worker.Config) (stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	configureConsumers(t, cfg)
	r, err := worker.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// configureConsumers gives the partition consumers the test's settings, as
// the layout's owner would.
func configureConsumers(t *testing.T, cfg worker.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := events.EnsureEventStreams(ctx, cfg.JS, cfg.Stream, cfg.Consumer, events.ApplyShrink); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// calls records, per event id, the delivery numbers its handler runs saw
// and which worker ran them.
type calls struct {
	mu   sync.Mutex
	runs map[string][]string // event id → "worker/delivery"
	done map[string]bool     // event id → handled successfully
	seq  []string            // successes in completion order
}

func newCalls() *calls { return &calls{runs: map[string][]string{}, done: map[string]bool{}} }

func (c *calls) start(worker string, m *worker.Message) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[m.Envelope.ID] = append(c.runs[m.Envelope.ID], worker+"/"+strconv.Itoa(m.Delivered))
	return len(c.runs[m.Envelope.ID])
}

func (c *calls) finish(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[id] = true
	c.seq = append(c.seq, id)
}

func (c *calls) isDone(ids ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if !c.done[id] {
			return false
		}
	}
	return true
}

func (c *calls) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("runs %v, completed in order %v", c.runs, c.seq)
}

// An event that waits for a concurrency slot longer than the ack wait must
// not be redelivered meanwhile: the redelivered copy used to be queued under
// the original's sequence and, once the original failed for retry, block its
// record forever.
func TestSlotWaitLongerThanAckWaitDoesNotStallRecord(t *testing.T) {
	env := eventstest.Start(t)
	publishEnvelopes(t, env, envelope("X", "1001"), envelope("A1", "2002"), envelope("A2", "2002"))
	c := newCalls()
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		n := c.start("w", m)
		switch {
		case m.Envelope.ID == "X":
			time.Sleep(3 * time.Second) // holds the only slot for three ack waits
		case m.Envelope.ID == "A1" && n == 1:
			return errors.New("zoho 503")
		}
		c.finish(m.Envelope.ID)
		return nil
	})
	startRunner(t, worker.Config{JS: env.JS, Stream: env.Stream, Handler: h, Concurrency: 1,
		Consumer:  events.ConsumerConfig{MaxDeliver: 10, AckWait: time.Second},
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	eventually(t, "record 2002 handled", func() bool { return c.isDone("X", "A1", "A2") }, c.String)
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := c.runs["A1"]; len(got) != 2 {
		t.Errorf("A1 runs %v, want 2 (one failure, one retry)", got)
	}
	if got := c.runs["A2"]; len(got) != 1 {
		t.Errorf("A2 runs %v, want 1", got)
	}
	if i, j := slices.Index(c.seq, "A1"), slices.Index(c.seq, "A2"); i > j {
		t.Errorf("A2 overtook A1: %v", c.seq)
	}
}

type flakyDeadLetter struct {
	mu    sync.Mutex
	tries int
	dead  []string
}

func (d *flakyDeadLetter) DeadLetter(_ context.Context, m *worker.Message, _ error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tries++
	if d.tries == 1 {
		return errors.New("dlq publish: nats: timeout")
	}
	d.dead = append(d.dead, m.Envelope.ID)
	return nil
}

func (d *flakyDeadLetter) DeadLetterRaw(context.Context, string, uint64, []byte, error) error {
	return errors.New("not expected")
}

// The dead-letter write fails on the last delivery: the event must come back
// (the server has no delivery limit of its own) and be dead-lettered then.
// Consumers made by an older version, with a server-side limit, are updated
// in place.
func TestDeadLetterFailureOnLastDeliveryIsRetried(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	// What earlier versions created: the server stopped after MaxDeliver.
	for p := range env.Stream.Partitions {
		if _, err := env.JS.CreateOrUpdateConsumer(ctx, env.Stream.Name, jetstream.ConsumerConfig{
			Durable: events.DefaultConsumerName + "-p" + strconv.Itoa(p), FilterSubject: events.PartitionFilter(p),
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: 2,
			PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{events.PriorityGroup},
			PinnedTTL: events.DefaultPinnedTTL,
		}); err != nil {
			t.Fatal(err)
		}
	}
	publishEnvelopes(t, env, envelope("E1", "3003"))
	c := newCalls()
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		c.start("w", m)
		return errors.New("zoho 503")
	})
	dl := &flakyDeadLetter{}
	startRunner(t, worker.Config{JS: env.JS, Stream: env.Stream, Handler: h, DeadLetter: dl, Concurrency: 2,
		Consumer:  events.ConsumerConfig{MaxDeliver: 2, AckWait: time.Second},
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	eventually(t, "E1 dead-lettered", func() bool {
		dl.mu.Lock()
		defer dl.mu.Unlock()
		return len(dl.dead) == 1
	}, func() string {
		dl.mu.Lock()
		defer dl.mu.Unlock()
		return c.String() + ", dead-letter tries " + strconv.Itoa(dl.tries)
	})
	c.mu.Lock()
	if got := c.runs["E1"]; len(got) != 3 {
		t.Errorf("E1 runs %v, want 3: two deliveries, then the one after the failed dead-letter write", got)
	}
	c.mu.Unlock()
	for p := range env.Stream.Partitions {
		cons, err := env.JS.Consumer(ctx, env.Stream.Name, events.DefaultConsumerName+"-p"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		if md := cons.CachedInfo().Config.MaxDeliver; md != -1 {
			t.Errorf("partition %d consumer MaxDeliver %d, want -1 (unlimited; the worker enforces the limit)", p, md)
		}
	}
}

// SIGTERM while one event runs, one waits for the slot and one is queued
// behind the running event of its record: nothing new starts in the stopping
// worker. The waiting event goes to the next worker at once and runs once;
// the queued one is released only after the event before it settled, so
// the next worker runs it once and in order.
func TestShutdownStartsNothingNew(t *testing.T) {
	env := eventstest.Start(t)
	publishEnvelopes(t, env, envelope("X", "1001"))
	c := newCalls()
	xRunning := make(chan struct{})
	releaseX := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(releaseX) }) }
	handler := func(name string) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
			c.start(name, m)
			if m.Envelope.ID == "X" {
				close(xRunning) // a second run of X panics: that is a failure too
				<-releaseX
			}
			c.finish(m.Envelope.ID)
			return nil
		})
	}
	cfg := func(name string) worker.Config {
		return worker.Config{JS: env.JS, Stream: env.Stream, Handler: handler(name), Concurrency: 1,
			Consumer:      events.ConsumerConfig{MaxDeliver: 10, AckWait: time.Second, PinnedTTL: time.Second},
			ShutdownGrace: 20 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	}
	stop1 := startRunner(t, cfg("w1"))
	t.Cleanup(release) // before w1's stop (cleanups run last first): a failure must not hang
	<-xRunning
	publishEnvelopes(t, env, envelope("B", "2002"), envelope("X2", "1001"))
	// All three delivered to w1 (X running, B waiting, X2 queued).
	eventually(t, "events delivered to w1", func() bool {
		return ackPending(t, env) == 3
	}, c.String)
	stopped1 := make(chan struct{})
	go func() { stop1(); close(stopped1) }()
	startRunner(t, cfg("w2"))
	eventually(t, "B handled by the next worker", func() bool { return c.isDone("B") }, c.String)
	select {
	case <-stopped1:
		t.Fatal("w1 stopped while its handler still ran")
	default:
	}
	release()
	<-stopped1
	eventually(t, "X2 handled", func() bool { return c.isDone("X", "X2") }, c.String)
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, want := range map[string]string{"X": "w1", "B": "w2", "X2": "w2"} {
		if got := c.runs[id]; len(got) != 1 || got[0][:2] != want {
			t.Errorf("%s runs %v, want exactly one, by %s", id, got, want)
		}
	}
	if i, j := slices.Index(c.seq, "X"), slices.Index(c.seq, "X2"); i > j {
		t.Errorf("X2 overtook X: %v", c.seq)
	}
}

func ackPending(t *testing.T, env *eventstest.Env) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	for p := range env.Stream.Partitions {
		cons, err := env.JS.Consumer(ctx, env.Stream.Name, events.DefaultConsumerName+"-p"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += info.NumAckPending
	}
	return n
}

// At shutdown a record's events queued behind its blocker (an event nak'ed
// for a retry) are released after the blocker comes back, so the worker
// that takes the partition runs the blocker first: released at once, the
// newer event would run there before the older one it was waiting for.
func TestShutdownReleasesQueuedEventsAfterTheirBlocker(t *testing.T) {
	env := eventstest.Start(t)
	c := newCalls()
	handler := func(name string) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
			if c.start(name, m) == 1 && m.Envelope.ID == "A1" {
				return errors.New("zoho 503") // retried after RetryBase
			}
			c.finish(m.Envelope.ID)
			return nil
		})
	}
	cfg := func(name string) worker.Config {
		return worker.Config{JS: env.JS, Stream: env.Stream, Handler: handler(name), Concurrency: 2,
			Consumer:  events.ConsumerConfig{MaxDeliver: 10, AckWait: 5 * time.Second, PinnedTTL: time.Second},
			RetryBase: 1500 * time.Millisecond, RetryMax: 1500 * time.Millisecond}
	}
	stop1 := startRunner(t, cfg("w1"))
	publishEnvelopes(t, env, envelope("A1", "3003"))
	eventually(t, "A1 failed once", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.runs["A1"]) == 1 }, c.String)
	publishEnvelopes(t, env, envelope("A2", "3003"))
	eventually(t, "A2 queued in w1", func() bool { return ackPending(t, env) == 2 }, c.String)
	stop1()
	startRunner(t, cfg("w2"))
	eventually(t, "both handled", func() bool { return c.isDone("A1", "A2") }, c.String)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Equal(c.seq, []string{"A1", "A2"}) {
		t.Fatalf("completed in order %v, want A1 then A2 (runs %v)", c.seq, c.runs)
	}
}
