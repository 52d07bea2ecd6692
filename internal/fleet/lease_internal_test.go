package fleet

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
)

// answerLostKV lets writes land on the real bucket but reports the next
// `lose` of them as unanswered (nats.ErrTimeout), as when the connection's
// server dies between storing a write and replying to it. BoundKV then
// retries the write, and the retry conflicts with the first attempt.
type answerLostKV struct {
	jetstream.KeyValue
	lose atomic.Int32
}

func (k *answerLostKV) lost() bool { return k.lose.Add(-1) >= 0 }

func (k *answerLostKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := k.KeyValue.Create(ctx, key, value, opts...)
	if err == nil && k.lost() {
		return 0, nats.ErrTimeout
	}
	return rev, err
}

func (k *answerLostKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := k.KeyValue.Update(ctx, key, value, last)
	if err == nil && k.lost() {
		return 0, nats.ErrTimeout
	}
	return rev, err
}

// A write whose answer was lost but which landed must not read as a lost
// race: before, a lost renewal answer dropped a lease its holder still
// owned, pausing the background job for a ttl, and a lost acquisition
// answer left the key held by nobody who knew it.
func TestLeaseWriteWithLostAnswerIsStillOurs(t *testing.T) {
	env := eventstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := NewLease(env.JS, "lossy", "holder-a", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultLeaseBucket, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	lossy := &answerLostKV{KeyValue: raw}
	l.kv = events.BoundKV(lossy, events.KVOptions{AttemptTimeout: time.Second})

	lossy.lose.Store(1) // the Create lands, its answer is lost
	ok, err := l.Acquire(ctx)
	if err != nil || !ok {
		t.Fatalf("acquire with a lost answer: held=%v err=%v, want held", ok, err)
	}
	for i := range 3 {
		lossy.lose.Store(1) // each renewal lands, its answer is lost
		ok, err = l.Acquire(ctx)
		if err != nil || !ok {
			t.Fatalf("renewal %d with a lost answer: held=%v err=%v, want still held", i, ok, err)
		}
	}
	e, err := raw.Get(ctx, "lossy")
	if err != nil {
		t.Fatal(err)
	}
	if l.rev != e.Revision() {
		t.Fatalf("lease believes it owns revision %d, the key is at %d", l.rev, e.Revision())
	}

	// A real conflict is still a loss: another holder took the key over.
	if _, err := raw.Put(ctx, "lossy", []byte(`{"holder":"holder-b"}`)); err != nil {
		t.Fatal(err)
	}
	ok, err = l.Acquire(ctx)
	if err != nil || ok {
		t.Fatalf("renewal after a takeover: held=%v err=%v, want lost", ok, err)
	}
}
