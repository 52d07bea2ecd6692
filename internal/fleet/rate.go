package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
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
// Wait reserves a token with a compare-and-set (the bucket may go negative:
// callers queue) and then sleeps until that token's refill time, so there
// is no polling; a cancelled wait gives its token back.
//
// Within a process, Waits that arrive while a compare-and-set is in flight
// do not queue on a lock for their own round trip: they join the next
// one, which takes a token for each of them at once (and gives back those
// of cancelled waits). So the KV sees at most one write in flight per
// process, only processes compete on the revision, and 16 concurrent calls
// cost one or two round trips instead of 16 in a row. Tokens are only ever
// taken for a Wait that asked for one: none is reserved ahead and left
// unused, so the shared count stays exact and no process hoards tokens
// the others could use.
type RateLimiter struct {
	name      string
	limit     int
	per       time.Duration
	perSec    float64
	burst     float64
	unlimited bool
	kv        jetstream.KeyValue
	o         rateOptions

	mu       sync.Mutex // guards queue, flushing and rateReq.state; never held across a KV call
	queue    []*rateReq // waiting for the next compare-and-set
	spare    []*rateReq // the last batch's slice, reused
	flushing bool       // a goroutine is running batches (run)

	// Only the goroutine running batches touches these.
	st   rateState // last state we wrote or read
	rev  uint64    // its revision; 0 = unknown (read before writing)
	have bool
}

// rateReq is one Wait's take of a token, or a give-back of one.
type rateReq struct {
	give     bool
	deadline time.Time       // zero: none
	done     chan rateResult // buffered; nil for a give-back nobody waits for
	state    reqState
}

type reqState uint8

const (
	reqQueued    reqState = iota
	reqInFlight           // its batch's compare-and-set is under way
	reqAnswered           // the result is in done
	reqAbandoned          // its Wait ended meanwhile: a token taken for it goes back
)

type rateResult struct {
	delay time.Duration // until the token is due
	taken bool
	err   error
}

// rateBatchTimeout bounds the KV calls of one batch; each call is also
// bounded by events.KVOptions. A Wait whose context ends sooner returns at
// once (its token, if taken meanwhile, is given back).
const rateBatchTimeout = 30 * time.Second

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
	req := &rateReq{done: make(chan rateResult, 1)}
	if d, ok := ctx.Deadline(); ok {
		req.deadline = d
	}
	r.submit(req)
	var res rateResult
	select {
	case res = <-req.done:
	case <-ctx.Done():
		r.mu.Lock()
		switch req.state {
		case reqQueued:
			r.queue = slices.DeleteFunc(r.queue, func(q *rateReq) bool { return q == req })
			r.mu.Unlock()
			return ctx.Err()
		case reqInFlight:
			req.state = reqAbandoned
			r.mu.Unlock()
			return ctx.Err()
		}
		r.mu.Unlock()
		if res = <-req.done; res.taken {
			r.giveBack(context.WithoutCancel(ctx))
		}
		return ctx.Err()
	}
	if res.err != nil || res.delay <= 0 {
		return res.err
	}
	t := time.NewTimer(res.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.giveBack(context.WithoutCancel(ctx))
		return ctx.Err()
	}
}

// giveBack returns a reserved token after a cancelled wait (best effort),
// waiting up to 2 s for it to be written.
func (r *RateLimiter) giveBack(ctx context.Context) {
	req := &rateReq{give: true, done: make(chan rateResult, 1)}
	r.submit(req)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	select {
	case <-req.done:
	case <-ctx.Done():
	}
}

// submit queues req and makes sure a goroutine runs batches.
func (r *RateLimiter) submit(req *rateReq) {
	r.mu.Lock()
	r.queue = append(r.queue, req)
	start := !r.flushing
	r.flushing = true
	r.mu.Unlock()
	if start {
		// Its own goroutine, not the caller's: a Wait must be able to
		// return when its context ends, whatever the KV call is doing.
		go r.run()
	}
}

// run serves batches until the queue is empty: everything queued while one
// compare-and-set was in flight is the next batch.
func (r *RateLimiter) run() {
	for {
		r.mu.Lock()
		batch := r.queue
		if len(batch) == 0 {
			r.flushing = false
			r.mu.Unlock()
			return
		}
		// The two slices take turns: one is served while the other queues.
		r.queue, r.spare = r.spare[:0], nil
		for _, q := range batch {
			q.state = reqInFlight
		}
		r.mu.Unlock()
		r.serve(batch)
		clear(batch) // drop the requests for the garbage collector
		r.spare = batch[:0]
	}
}

// serve takes (or gives back) one token per request of batch with one
// compare-and-set, re-reading and recomputing when another process wrote
// first, then answers every request.
func (r *RateLimiter) serve(batch []*rateReq) {
	ctx, cancel := context.WithTimeout(context.Background(), rateBatchTimeout)
	defer cancel()
	results := make([]rateResult, len(batch))
	for attempt := 0; ; attempt++ {
		if !r.have {
			if err := r.load(ctx); err != nil {
				r.answer(batch, results, err)
				return
			}
		}
		now := time.Now()
		st := r.st.advance(now, r.perSec, r.burst)
		changed := false
		for i, q := range batch {
			results[i] = rateResult{}
			if q.give {
				st.Tokens = math.Min(r.burst, st.Tokens+1)
				if st.Granted > 0 {
					st.Granted--
				}
				changed = true
				continue
			}
			next := st.Tokens - 1
			var delay time.Duration
			if next < 0 {
				delay = time.Duration(-next / r.perSec * 1e9)
			}
			if !q.deadline.IsZero() && now.Add(delay).After(q.deadline) {
				results[i].err = fmt.Errorf("fleet: rate %s: next token in %s, after the context deadline: %w", r.name, delay.Round(time.Millisecond), context.DeadlineExceeded)
				continue
			}
			st.Tokens = next
			st.Granted++
			results[i] = rateResult{delay: delay, taken: true}
			changed = true
		}
		if !changed {
			r.answer(batch, results, nil)
			return
		}
		err := r.store(ctx, st)
		if err == nil {
			r.answer(batch, results, nil)
			return
		}
		if !isConflict(err) {
			r.answer(batch, results, err)
			return
		}
		// Another process took a token since our last look: re-read after a
		// short jittered pause so that colliding processes spread out.
		if err := sleepCtx(ctx, conflictPause(attempt)); err != nil {
			r.answer(batch, results, fmt.Errorf("fleet: rate %s: %w", r.name, err))
			return
		}
	}
}

// answer hands each request its result (or err, when the batch failed as a
// whole). A token taken for a Wait that has ended meanwhile is given back
// in the next batch.
func (r *RateLimiter) answer(batch []*rateReq, results []rateResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, q := range batch {
		res := results[i]
		if err != nil {
			res = rateResult{err: err}
		}
		if q.give && res.err != nil {
			r.o.logger.Warn("fleet: rate token not given back", "rate", r.name, "err", res.err)
		}
		if q.state == reqAbandoned {
			if res.taken {
				r.queue = append(r.queue, &rateReq{give: true})
			}
			continue
		}
		q.state = reqAnswered
		if q.done != nil {
			q.done <- res
		}
	}
}

func (r *RateLimiter) load(ctx context.Context) error {
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

func (r *RateLimiter) store(ctx context.Context, st rateState) error {
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
