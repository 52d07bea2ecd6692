package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
)

type recorder struct {
	mu      sync.Mutex
	handled map[string][]string // record → event ids in handling order (successes only)
	calls   map[string]int      // event id → attempts
	dead    map[string]error
	fail    func(m *worker.Message, attempt int) error
}

func newRecorder() *recorder {
	return &recorder{handled: map[string][]string{}, calls: map[string]int{}, dead: map[string]error{}}
}

func (r *recorder) Handle(ctx context.Context, m *worker.Message) error {
	r.mu.Lock()
	r.calls[m.Envelope.ID]++
	attempt := r.calls[m.Envelope.ID]
	r.mu.Unlock()
	time.Sleep(time.Millisecond) // let other lanes interleave
	if r.fail != nil {
		if err := r.fail(m, attempt); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.handled[m.Envelope.RecordID] = append(r.handled[m.Envelope.RecordID], m.Envelope.ID)
	r.mu.Unlock()
	return nil
}

func (r *recorder) DeadLetter(_ context.Context, m *worker.Message, cause error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead[m.Envelope.ID] = cause
	return nil
}

func (r *recorder) DeadLetterRaw(_ context.Context, subject string, seq uint64, _ []byte, cause error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead[fmt.Sprint("raw-", seq)] = cause
	return nil
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.handled {
		n += len(v)
	}
	return n + len(r.dead)
}

func publish(t *testing.T, env *eventstest.Env, records, perRecord int) map[string][]string {
	t.Helper()
	pub := events.NewPublisher(env.JS, env.Stream)
	want := map[string][]string{}
	for i := range perRecord {
		var batch []*events.Envelope
		for r := range records {
			rid := fmt.Sprintf("90000000000%04d", r)
			id := fmt.Sprintf("ev-%s-%03d", rid, i)
			batch = append(batch, &events.Envelope{ID: id, Source: events.SourceCRMNotify, Connection: "default",
				Module: "Deals", Operation: events.OpUpdate, RecordID: rid, ReceivedAt: time.Now()})
			want[rid] = append(want[rid], id)
		}
		// Sequential per index so stream order == intended order per record.
		for _, e := range batch {
			if _, err := pub.Publish(context.Background(), []*events.Envelope{e}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return want
}

func run(t *testing.T, env *eventstest.Env, h worker.Handler, dl worker.DeadLetterer, maxDeliver int) (stop func()) {
	t.Helper()
	cfg := worker.Config{
		JS: env.JS, Stream: env.Stream, Handler: h, DeadLetter: dl, Concurrency: 4,
		Consumer:  events.ConsumerConfig{MaxDeliver: maxDeliver, AckWait: 3 * time.Second},
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
	configureConsumers(t, cfg)
	r, err := worker.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool, rec *recorder) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			t.Fatalf("timed out waiting for %s: handled %v, attempts %v", what, rec.handled, rec.calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPerRecordOrderWithRetries(t *testing.T) {
	env := eventstest.Start(t)
	want := publish(t, env, 6, 8)
	rec := newRecorder()
	// The first event of every record fails twice, and some later ones once:
	// newer events of the record must wait for them.
	rec.fail = func(m *worker.Message, attempt int) error {
		if strings.HasSuffix(m.Envelope.ID, "-000") && attempt <= 2 {
			return errors.New("zoho 503")
		}
		if strings.HasSuffix(m.Envelope.ID, "-004") && attempt == 1 {
			return errors.New("timeout")
		}
		return nil
	}
	stop := run(t, env, rec, rec, 10)
	defer stop()
	waitFor(t, "all events handled", func() bool { return rec.total() == 48 }, rec)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for rid, ids := range want {
		if got := strings.Join(rec.handled[rid], ","); got != strings.Join(ids, ",") {
			t.Errorf("record %s handled out of order:\n got %s\nwant %s", rid, got, strings.Join(ids, ","))
		}
	}
	if len(rec.dead) != 0 {
		t.Fatalf("transient failures dead-lettered: %v", rec.dead)
	}
}

func TestPermanentAndExhaustedGoToDeadLetter(t *testing.T) {
	env := eventstest.Start(t)
	publish(t, env, 3, 1)
	rec := newRecorder()
	rec.fail = func(m *worker.Message, attempt int) error {
		switch {
		case strings.Contains(m.Envelope.ID, "0000-"):
			return worker.Permanent(errors.New("INVALID_DATA from Zoho"))
		case strings.Contains(m.Envelope.ID, "0001-"):
			return errors.New("always 500")
		}
		return nil
	}
	stop := run(t, env, rec, rec, 3)
	defer stop()
	waitFor(t, "settled", func() bool { return rec.total() == 3 }, rec)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.dead) != 2 {
		t.Fatalf("dead letters: %v", rec.dead)
	}
	for id, n := range rec.calls {
		switch {
		case strings.Contains(id, "0000-") && n != 1:
			t.Errorf("permanent failure retried %d times", n)
		case strings.Contains(id, "0001-") && n != 3:
			t.Errorf("retryable failure tried %d times, want MaxDeliver=3", n)
		}
	}
}

func TestMiddlewareOrderAndRecover(t *testing.T) {
	var trace []string
	mark := func(name string) worker.Middleware {
		return func(next worker.Handler) worker.Handler {
			return worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
				trace = append(trace, name+">")
				err := next.Handle(ctx, m)
				trace = append(trace, "<"+name)
				return err
			})
		}
	}
	h := worker.Chain(worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		trace = append(trace, "handler")
		panic("boom")
	}), mark("a"), worker.Recover(slog.New(slog.DiscardHandler)), mark("b"))
	err := h.Handle(context.Background(), &worker.Message{Envelope: &events.Envelope{ID: "x"}})
	if !worker.IsPermanent(err) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic must become a permanent error, got %v", err)
	}
	if got := strings.Join(trace, " "); got != "a> b> handler <a" {
		// b never returns normally: the panic unwinds through it to Recover.
		t.Fatalf("order: %s", got)
	}
}

func TestTimeoutMiddleware(t *testing.T) {
	h := worker.Chain(worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}), worker.Timeout(20*time.Millisecond))
	err := h.Handle(context.Background(), &worker.Message{Envelope: &events.Envelope{}})
	if !errors.Is(err, context.DeadlineExceeded) || worker.IsPermanent(err) {
		t.Fatalf("timeout must be a retryable deadline error, got %v", err)
	}
}
