package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho"
)

var _ zoho.Limiter = (*RateLimiter)(nil)

// RateOption configures NewRateLimiter.
type RateOption func(*rateOptions)

type rateOptions struct {
	bucket   string
	replicas int
	storage  jetstream.StorageType
	burst    int
	logger   *slog.Logger
	kv       events.KVOptions
}

// WithBurst sets the bucket capacity (default: limit when per ≤ 1 min,
// else one minute's worth of the rate, at least 1).
func WithBurst(n int) RateOption { return func(o *rateOptions) { o.burst = n } }

// WithRateBucket sets the KV bucket (default "zohook_ratelimits").
func WithRateBucket(name string) RateOption { return func(o *rateOptions) { o.bucket = name } }

// WithRateReplicas sets the replicas used if the bucket must be created (default 1).
func WithRateReplicas(n int) RateOption { return func(o *rateOptions) { o.replicas = n } }

// WithRateStorage sets the storage used if the bucket must be created (default memory).
func WithRateStorage(s jetstream.StorageType) RateOption {
	return func(o *rateOptions) { o.storage = s }
}

// WithRateLogger sets the logger (default slog.Default()).
func WithRateLogger(l *slog.Logger) RateOption { return func(o *rateOptions) { o.logger = l } }

// WithRateKV sets how the bucket's calls are bounded and reported
// (events.KVOptions; its Logger defaults to the limiter's logger).
func WithRateKV(kv events.KVOptions) RateOption { return func(o *rateOptions) { o.kv = kv } }

// rateState is the JSON stored under the limiter's key.
type rateState struct {
	Tokens  float64 `json:"tokens"`  // may be negative: tokens reserved by waiting callers
	At      int64   `json:"at"`      // unix ns of the last take (writer's clock)
	Granted uint64  `json:"granted"` // tokens taken minus tokens given back, since creation
}

// advance refills the bucket up to now.
func (s rateState) advance(now time.Time, perSec, burst float64) rateState {
	if d := now.UnixNano() - s.At; d > 0 { // a writer with a clock ahead of ours counts as now
		s.Tokens = math.Min(burst, s.Tokens+float64(d)/1e9*perSec)
	}
	s.At = max(s.At, now.UnixNano())
	return s
}

// RateLimiter is a token bucket shared by every process through one KV key.
// Wait reserves a token with one compare-and-set (the bucket may go
// negative: callers queue) and then sleeps until that token's refill time,
// so there is no polling; a cancelled wait gives its token back. Within a
// process, takes are serialised so that only processes, not goroutines,
// compete on the revision.
type RateLimiter struct {
	name      string
	limit     int
	per       time.Duration
	perSec    float64
	burst     float64
	unlimited bool
	kv        jetstream.KeyValue
	o         rateOptions

	mu   sync.Mutex
	st   rateState // last state we wrote or read
	rev  uint64    // its revision; 0 = unknown (read before writing)
	have bool
}

// NewRateLimiter returns the limiter name allowing limit takes per per
// across the fleet. limit ≤ 0 means unlimited: Wait returns at once and no
// KV is used (js may then be nil).
func NewRateLimiter(ctx context.Context, js jetstream.JetStream, name string, limit int, per time.Duration, opts ...RateOption) (*RateLimiter, error) {
	o := rateOptions{bucket: DefaultRateBucket, replicas: 1, storage: jetstream.MemoryStorage}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	r := &RateLimiter{name: name, limit: limit, per: per, o: o}
	if limit <= 0 {
		r.unlimited = true
		return r, nil
	}
	switch {
	case per <= 0:
		return nil, fmt.Errorf("fleet: rate %s: period %s must be positive", name, per)
	case !validKey(name):
		return nil, fmt.Errorf("fleet: rate: invalid name %q", name)
	case js == nil:
		return nil, errors.New("fleet: rate: nil JetStream")
	case o.burst < 0:
		return nil, fmt.Errorf("fleet: rate %s: negative burst", name)
	}
	r.perSec = float64(limit) / per.Seconds()
	r.burst = float64(o.burst)
	if o.burst == 0 {
		r.burst = defaultBurst(limit, per)
	}
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      o.bucket,
		Description: "zohook shared rate limits (fleet.RateLimiter)",
		History:     1,
		Storage:     o.storage,
		Replicas:    o.replicas,
	}, o.kv.LoggingTo(o.logger))
	if err != nil {
		return nil, err
	}
	r.kv = kv
	return r, nil
}

// defaultBurst: a whole period's allowance for short periods; for long
// ones (50000/24h) a full day's allowance at once would defeat the limit,
// so one minute's worth.
func defaultBurst(limit int, per time.Duration) float64 {
	if per <= time.Minute {
		return float64(limit)
	}
	return math.Max(1, math.Ceil(float64(limit)*float64(time.Minute)/float64(per)))
}

// String describes the limiter ("books 20/1s burst 5").
func (r *RateLimiter) String() string {
	if r.unlimited {
		return r.name + " unlimited"
	}
	return fmt.Sprintf("%s %d/%s burst %g", r.name, r.limit, r.per, r.burst)
}

// Wait blocks until a token is taken or ctx ends (ctx.Err()). If ctx's
// deadline comes before the token would, it fails at once with an error
// wrapping context.DeadlineExceeded and takes nothing.
func (r *RateLimiter) Wait(ctx context.Context) error {
	if r.unlimited {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	delay, err := r.reserve(ctx)
	if err != nil || delay <= 0 {
		return err
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.giveBack(context.WithoutCancel(ctx))
		return ctx.Err()
	}
}

// reserve takes one token (possibly in the future) and returns how long to
// wait for it.
func (r *RateLimiter) reserve(ctx context.Context) (time.Duration, error) {
	deadline, hasDeadline := ctx.Deadline()
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !r.have {
			if err := r.loadLocked(ctx); err != nil {
				return 0, err
			}
		}
		now := time.Now()
		st := r.st.advance(now, r.perSec, r.burst)
		st.Tokens--
		st.Granted++
		var delay time.Duration
		if st.Tokens < 0 {
			delay = time.Duration(-st.Tokens / r.perSec * 1e9)
		}
		if hasDeadline && now.Add(delay).After(deadline) {
			return 0, fmt.Errorf("fleet: rate %s: next token in %s, after the context deadline: %w", r.name, delay.Round(time.Millisecond), context.DeadlineExceeded)
		}
		err := r.storeLocked(ctx, st)
		if err == nil {
			return delay, nil
		}
		if !isConflict(err) {
			return 0, err
		}
		// Another process took a token since our last look: re-read after a
		// short jittered pause so that colliding processes spread out.
		if err := sleepCtx(ctx, conflictPause(attempt)); err != nil {
			return 0, err
		}
	}
}

// giveBack returns a reserved token after a cancelled wait (best effort).
func (r *RateLimiter) giveBack(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !r.have {
			if err := r.loadLocked(ctx); err != nil {
				r.o.logger.Warn("fleet: rate token not given back", "rate", r.name, "err", err)
				return
			}
		}
		st := r.st.advance(time.Now(), r.perSec, r.burst)
		st.Tokens = math.Min(r.burst, st.Tokens+1)
		if st.Granted > 0 {
			st.Granted--
		}
		err := r.storeLocked(ctx, st)
		if err == nil {
			return
		}
		if !isConflict(err) || sleepCtx(ctx, conflictPause(attempt)) != nil {
			r.o.logger.Warn("fleet: rate token not given back", "rate", r.name, "err", err)
			return
		}
	}
}

func (r *RateLimiter) loadLocked(ctx context.Context) error {
	e, err := r.kv.Get(ctx, r.name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// A new bucket starts full.
		r.st, r.rev = rateState{Tokens: r.burst, At: time.Now().UnixNano()}, 0
	case err != nil:
		return fmt.Errorf("fleet: rate %s: read: %w", r.name, err)
	default:
		var st rateState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			r.o.logger.Warn("fleet: rate state unreadable, starting full", "rate", r.name, "err", err)
			st = rateState{Tokens: r.burst, At: time.Now().UnixNano()}
		}
		r.st, r.rev = st, e.Revision()
	}
	r.have = true
	return nil
}

func (r *RateLimiter) storeLocked(ctx context.Context, st rateState) error {
	b, _ := json.Marshal(st)
	var (
		rev uint64
		err error
	)
	if r.rev == 0 {
		rev, err = r.kv.Create(ctx, r.name, b)
	} else {
		rev, err = r.kv.Update(ctx, r.name, b, r.rev)
	}
	if err != nil {
		r.have = false
		if isConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("fleet: rate %s: %w", r.name, jetstream.ErrKeyRevisionMismatch)
		}
		return fmt.Errorf("fleet: rate %s: write: %w", r.name, err)
	}
	r.st, r.rev = st, rev
	return nil
}

func conflictPause(attempt int) time.Duration {
	ceiling := time.Duration(min(attempt+1, 20)) * 250 * time.Microsecond
	return rand.N(ceiling) + 50*time.Microsecond
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ParseRate reads "100/1m", "10/s", "50000/24h", "5/100ms", "2/min",
// "1000/day": a count, a slash and a Go duration or a unit (s, sec, second,
// m, min, minute, h, hour, d, day) meaning one of it. "" and "0" mean
// unlimited (limit 0).
func ParseRate(s string) (limit int, per time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, 0, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("fleet: rate %q: want <count>/<period>, e.g. 100/1m", s)
	}
	limit, err = strconv.Atoi(strings.TrimSpace(num))
	if err != nil || limit < 0 {
		return 0, 0, fmt.Errorf("fleet: rate %q: count must be a non-negative integer", s)
	}
	unit = strings.ToLower(strings.TrimSpace(unit))
	switch unit {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	case "d", "day":
		per = 24 * time.Hour
	default:
		per, err = time.ParseDuration(unit)
		if err != nil || per <= 0 {
			return 0, 0, fmt.Errorf("fleet: rate %q: period must be a positive duration (1m, 24h) or a unit (s, m, h, d)", s)
		}
	}
	if limit == 0 {
		return 0, 0, nil
	}
	return limit, per, nil
}
