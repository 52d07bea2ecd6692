package events_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/testutil"
)

// silence makes the bucket's writes go unanswered, as they do when the
// request was sent to a server that died or to a stream without a leader:
// the stream is gone and a subscriber takes the requests without replying.
func silence(t *testing.T, env *eventstest.Env, bucket string) (heard *atomic.Int64, restore func()) {
	t.Helper()
	ctx := context.Background()
	if err := env.JS.DeleteKeyValue(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	heard = &atomic.Int64{}
	sub, err := env.NC.Subscribe("$KV."+bucket+".>", func(*nats.Msg) { heard.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	_ = env.NC.Flush()
	return heard, func() {
		_ = sub.Unsubscribe()
		if _, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket}); err != nil {
			t.Error(err)
		}
	}
}

func TestBoundKVRetriesUnansweredRequests(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	kv, err := events.OpenKV(ctx, env.JS, events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: "bounded"}},
		events.KVOptions{AttemptTimeout: 300 * time.Millisecond, Patience: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	heard, restore := silence(t, env, "bounded")
	// The bucket answers again only after several attempts went unanswered.
	go func() {
		for heard.Load() < 3 {
			time.Sleep(20 * time.Millisecond)
		}
		restore()
	}()
	// The caller's context is long, like a worker's event timeout: without
	// per-attempt bounds the first unanswered request would hold it all.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := kv.Put(cctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put after the bucket came back: %v", err)
	}
	e, err := kv.Get(ctx, "k")
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("Get = %v, %v", e, err)
	}
	if heard.Load() < 3 {
		t.Fatalf("only %d unanswered attempts", heard.Load())
	}
}

func TestBoundKVGivesUpAfterPatience(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	kv, err := events.OpenKV(ctx, env.JS, events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: "patience"}},
		events.KVOptions{AttemptTimeout: 100 * time.Millisecond, Patience: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	heard, _ := silence(t, env, "patience")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = kv.Put(cctx, "k", []byte("v"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put on a silent bucket: %v, want a deadline error", err)
	}
	if cctx.Err() != nil {
		t.Fatal("the caller's context ran out: the patience did not bound the call")
	}
	if heard.Load() < 2 {
		t.Fatalf("%d attempts, want retries", heard.Load())
	}
}

func TestBoundKVDoesNotRetryFinalErrors(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	kv, err := events.OpenKV(ctx, env.JS, events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: "final"}}, events.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("2")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second Create: %v, want ErrKeyExists", err)
	}
	if _, err := kv.Update(ctx, "k", []byte("3"), 99); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Fatalf("Update at a wrong revision: %v, want ErrKeyRevisionMismatch", err)
	}
	if _, err := kv.Get(ctx, "missing"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	// OpenKV uses an existing bucket as it is.
	again, err := events.OpenKV(ctx, env.JS, events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: "final", History: 5}}, events.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := again.Status(ctx)
	if err != nil || st.History() != 1 {
		t.Fatalf("reopened bucket history %v (%v), want the existing 1", st, err)
	}
}

// A call that needed retries says so in the log: the first retry, then the
// outcome, naming the bucket and the operation.
func TestBoundKVLogsRetries(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	logs := &testutil.SyncBuffer{}
	var mu sync.Mutex
	var retried []string
	kv, err := events.OpenKV(ctx, env.JS, events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: "logged"}},
		events.KVOptions{AttemptTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil)),
			Retried: func(bucket, op string, attempts int, err error) {
				mu.Lock()
				defer mu.Unlock()
				retried = append(retried, fmt.Sprintf("%s %s %v %v", bucket, op, attempts > 1, err))
			}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "quiet", []byte("v")); err != nil || logs.String() != "" {
		t.Fatalf("a call without retries logs nothing: %v %q", err, logs.String())
	}
	heard, restore := silence(t, env, "logged")
	go func() {
		for heard.Load() < 2 {
			time.Sleep(20 * time.Millisecond)
		}
		restore()
	}()
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{`msg="nats kv: no answer, retrying" bucket=logged op=put`, `msg="nats kv: call succeeded after retries" bucket=logged op=put`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"logged put true <nil>"}; !slices.Equal(retried, want) {
		t.Errorf("Retried heard %q, want %q (once, for the retried call only)", retried, want)
	}
}
