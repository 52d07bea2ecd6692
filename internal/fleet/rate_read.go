package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RateReading is a shared rate limiter's state as its KV key holds it: what
// an operator (the console) reads to see how much Zoho budget is left. It
// only reads; no limiter is created and no token is taken.
type RateReading struct {
	// Name is the limiter's key ("crm-default", "books-acme").
	Name string `json:"name"`
	// Tokens left at At; negative when callers are queued for tokens.
	Tokens float64 `json:"tokens"`
	// At is when the state was last written (the writer's clock).
	At time.Time `json:"at"`
	// Granted counts the tokens taken since the key was created, minus
	// those given back.
	Granted uint64 `json:"granted"`
}

// ReadRates reads every limiter in the bucket (default DefaultRateBucket),
// sorted by name. A missing bucket (no limiter ever ran) gives none.
func ReadRates(ctx context.Context, js jetstream.JetStream, bucket string) ([]RateReading, error) {
	kv, err := js.KeyValue(ctx, cmp.Or(bucket, DefaultRateBucket))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: rate bucket: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet: rate bucket keys: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []RateReading
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fleet: rate %s: %w", k, err)
		}
		var st rateState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			continue // not a limiter's state
		}
		out = append(out, RateReading{Name: k, Tokens: st.Tokens, At: time.Unix(0, st.At).UTC(), Granted: st.Granted})
	}
	slices.SortFunc(out, func(a, b RateReading) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Available is how many tokens a limiter of limit per per (burst: its
// bucket capacity, 0 for the limiter's default) holds at now, refilled
// since the reading as the limiter itself would refill it. Negative means
// callers are waiting.
func (r RateReading) Available(now time.Time, limit int, per time.Duration, burst int) float64 {
	if limit <= 0 || per <= 0 {
		return r.Tokens
	}
	b := float64(burst)
	if burst <= 0 {
		b = defaultBurst(limit, per)
	}
	st := rateState{Tokens: r.Tokens, At: r.At.UnixNano()}
	return st.advance(now, float64(limit)/per.Seconds(), b).Tokens
}

// DefaultBurst is the bucket capacity a limiter of limit per per gets
// without WithBurst.
func DefaultBurst(limit int, per time.Duration) int {
	if limit <= 0 || per <= 0 {
		return 0
	}
	return int(defaultBurst(limit, per))
}
