package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KVOptions bound the key-value calls of a bucket returned by OpenKV or
// BoundKV. The zero value of each field means its default.
//
// Why: a request sent just before the connection's server dies, or to a
// bucket whose stream leader is being elected, gets no answer at all. Bound
// only by the caller's context (a worker's is the event timeout, 5 minutes),
// one such call stalls its event for that long while the cluster recovered
// in seconds. Each attempt gets its own short deadline instead, and calls
// are retried while the failure is one JetStream recovers from.
type KVOptions struct {
	// AttemptTimeout bounds one request. Default 2s.
	AttemptTimeout time.Duration
	// Patience bounds all attempts of one call (the caller's context may end
	// it sooner). Default 30s: longer than a leader election.
	Patience time.Duration
	// Logger hears of calls that needed a retry (the first retry, then
	// success or giving up): the sign of a NATS node or leader in trouble.
	// Default: discard.
	Logger *slog.Logger
	// Retried, if set, is told of every call that needed more than one
	// attempt, once it ends: err is nil when a retry succeeded. It feeds a
	// metric (a log line alone is easy to miss). It must not block.
	Retried func(bucket, op string, attempts int, err error)
}

// LoggingTo returns o with Logger set to l if o has none: a component
// passes its own logger while keeping the caller's other settings.
func (o KVOptions) LoggingTo(l *slog.Logger) KVOptions {
	if o.Logger == nil {
		o.Logger = l
	}
	return o
}

// Defaults for KVOptions.
const (
	DefaultKVAttemptTimeout = 2 * time.Second
	DefaultKVPatience       = 30 * time.Second
)

func (o KVOptions) withDefaults() KVOptions {
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultKVAttemptTimeout
	}
	if o.Patience <= 0 {
		o.Patience = DefaultKVPatience
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// OpenKV opens bucket spec.Bucket, creating it from spec when it is missing
// (tests, and the layout's owner); an existing bucket is used as it is: an
// operator may have tuned it and a process must not silently reconfigure
// it. The returned bucket's calls are bounded as BoundKV describes.
func OpenKV(ctx context.Context, js jetstream.JetStream, spec KVSpec, o KVOptions) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, spec.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if _, err = EnsureKV(ctx, js, spec, CreateMissing); err != nil {
			return nil, err
		}
		kv, err = js.KeyValue(ctx, spec.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("events: open bucket %s: %w", spec.Bucket, err)
	}
	return BoundKV(kv, o), nil
}

// BoundKV wraps kv so that Get, Put, Create, Update, Delete and Purge give
// each request AttemptTimeout and retry transient failures (no answer, no
// responders, cluster temporarily unavailable) for up to Patience.
//
// A retried Create or Update whose first attempt did land reports a
// conflict (ErrKeyExists, ErrKeyRevisionMismatch): callers of those
// optimistic writes already answer a conflict by reading again, which then
// shows their own write. Other methods pass through unchanged.
func BoundKV(kv jetstream.KeyValue, o KVOptions) jetstream.KeyValue {
	if b, ok := kv.(*boundedKV); ok {
		kv = b.KeyValue
	}
	return &boundedKV{KeyValue: kv, o: o.withDefaults()}
}

type boundedKV struct {
	jetstream.KeyValue
	o KVOptions
}

var _ jetstream.KeyValue = (*boundedKV)(nil)

// retry runs call until it succeeds, fails for good, the patience is spent
// or ctx ends.
func retry[T any](ctx context.Context, o KVOptions, bucket, op string, call func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(o.Patience)
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, o.AttemptTimeout)
		v, err := call(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !transientKV(err) || time.Now().Add(wait).After(deadline) {
			switch {
			case attempt == 1:
			case err == nil:
				o.Logger.Info("nats kv: call succeeded after retries", "bucket", bucket, "op", op, "attempts", attempt)
			default:
				o.Logger.Warn("nats kv: call failed after retries", "bucket", bucket, "op", op, "attempts", attempt, "err", err)
			}
			if attempt > 1 && o.Retried != nil {
				o.Retried(bucket, op, attempt, err)
			}
			return v, err
		}
		if attempt == 1 {
			o.Logger.Warn("nats kv: no answer, retrying", "bucket", bucket, "op", op, "err", err)
		}
		select {
		case <-ctx.Done():
			o.Logger.Warn("nats kv: call abandoned, the caller's context ended", "bucket", bucket, "op", op, "attempts", attempt, "err", err)
			if o.Retried != nil {
				o.Retried(bucket, op, attempt, err)
			}
			return v, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// transientKV reports failures JetStream recovers from by itself: no answer
// in time, nobody listening (leader election, reconnect) or a 503.
func transientKV(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}

func (b *boundedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return retry(ctx, b.o, b.Bucket(), "get", func(ctx context.Context) (jetstream.KeyValueEntry, error) { return b.KeyValue.Get(ctx, key) })
}

func (b *boundedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return retry(ctx, b.o, b.Bucket(), "put", func(ctx context.Context) (uint64, error) { return b.KeyValue.Put(ctx, key, value) })
}

func (b *boundedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return retry(ctx, b.o, b.Bucket(), "create", func(ctx context.Context) (uint64, error) { return b.KeyValue.Create(ctx, key, value, opts...) })
}

func (b *boundedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return retry(ctx, b.o, b.Bucket(), "update", func(ctx context.Context) (uint64, error) {
		return b.KeyValue.Update(ctx, key, value, revision)
	})
}

func (b *boundedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	_, err := retry(ctx, b.o, b.Bucket(), "delete", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, b.KeyValue.Delete(ctx, key, opts...)
	})
	return err
}

func (b *boundedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	_, err := retry(ctx, b.o, b.Bucket(), "purge", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, b.KeyValue.Purge(ctx, key, opts...)
	})
	return err
}
