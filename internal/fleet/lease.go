package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zohook/zohook/internal/events"
)

// ErrLeaseLost is returned by Hold (and is the cause of the context given to
// fn) when the lease could not be renewed within its ttl or was taken over.
var ErrLeaseLost = errors.New("fleet: lease lost")

// LeaseOption configures NewLease.
type LeaseOption func(*leaseOptions)

type leaseOptions struct {
	bucket   string
	replicas int
	logger   *slog.Logger
	timeout  time.Duration
	kv       events.KVOptions
}

// WithLeaseBucket sets the KV bucket (default "zohook_leases").
func WithLeaseBucket(name string) LeaseOption { return func(o *leaseOptions) { o.bucket = name } }

// WithLeaseReplicas sets the replicas used if the bucket must be created (default 1).
func WithLeaseReplicas(n int) LeaseOption { return func(o *leaseOptions) { o.replicas = n } }

// WithLeaseLogger sets the logger (default slog.Default()).
func WithLeaseLogger(l *slog.Logger) LeaseOption { return func(o *leaseOptions) { o.logger = l } }

// WithLeaseKV sets how the bucket's calls are bounded and reported
// (events.KVOptions; its Logger defaults to the lease's logger).
func WithLeaseKV(kv events.KVOptions) LeaseOption { return func(o *leaseOptions) { o.kv = kv } }

// WithLeaseReleaseTimeout bounds the release done by Hold after fn returns
// (default 5 s); it runs detached from the caller's context so that a
// cancelled caller still frees the lease promptly for the others.
func WithLeaseReleaseTimeout(d time.Duration) LeaseOption {
	return func(o *leaseOptions) { o.timeout = d }
}

// leaseValue is the JSON stored under the lease key. Only Holder matters to
// the protocol (and only for logs): ownership is the KV revision.
type leaseValue struct {
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquired_at"`
	RenewedAt  time.Time `json:"renewed_at"`
	TTLMillis  int64     `json:"ttl_ms"`
}

// Lease is a named lock held by one process of the fleet at a time, with
// expiry: a holder that stops renewing loses it after ttl.
//
// Protocol (no clock synchronisation needed): the holder owns revision R of
// the key. It renews with Update(R) (compare-and-set) every ttl/3 and
// considers the lease lost ttl after it SENT the write that produced its
// latest revision. A contender records when it first SAW revision R and
// takes over with Update(R) only if R is still current ttl later; since it
// saw R after R was written, its takeover comes after the holder's own
// deadline. Release deletes the key (conditioned on R), which wakes
// watchers at once.
//
// A Lease is safe for concurrent use, but one Lease value represents one
// holder: use one per process (and per name).
type Lease struct {
	js     jetstream.JetStream
	name   string
	holder string
	ttl    time.Duration
	o      leaseOptions

	mu      sync.Mutex
	kv      jetstream.KeyValue
	rev     uint64    // our revision while held, 0 otherwise
	sentAt  time.Time // when the write that produced rev was sent
	since   time.Time // acquisition time (for the value only)
	seenRev uint64    // someone else's revision we are timing
	seenAt  time.Time // when we first saw seenRev
}

// NewLease returns a lease named name (a KV key) for holderID, expiring ttl
// after the last renewal. The bucket is opened (or created) on first use.
func NewLease(js jetstream.JetStream, name, holderID string, ttl time.Duration, opts ...LeaseOption) (*Lease, error) {
	o := leaseOptions{bucket: DefaultLeaseBucket, replicas: 1, timeout: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	switch {
	case js == nil:
		return nil, errors.New("fleet: lease: nil JetStream")
	case !validKey(name):
		return nil, fmt.Errorf("fleet: lease: invalid name %q", name)
	case holderID == "":
		return nil, errors.New("fleet: lease: empty holder id")
	case ttl < 3*time.Millisecond:
		return nil, fmt.Errorf("fleet: lease %s: ttl %s too short", name, ttl)
	}
	return &Lease{js: js, name: name, holder: holderID, ttl: ttl, o: o}, nil
}

// Name returns the lease name; Holder this process's holder id.
func (l *Lease) Name() string   { return l.name }
func (l *Lease) Holder() string { return l.holder }

func (l *Lease) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	if l.kv != nil {
		return l.kv, nil
	}
	kv, err := ensureKV(ctx, l.js, LeaseBucketSpec(l.o.bucket, l.o.replicas).KeyValueConfig, l.o.kv.LoggingTo(l.o.logger))
	if err != nil {
		return nil, err
	}
	l.kv = kv
	return kv, nil
}

func (l *Lease) value(now time.Time) []byte {
	since := l.since
	if since.IsZero() {
		since = now
	}
	b, _ := json.Marshal(leaseValue{Holder: l.holder, AcquiredAt: since, RenewedAt: now, TTLMillis: l.ttl.Milliseconds()})
	return b
}

// Held reports whether this process holds the lease (and its ttl has not run out).
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked()
}

func (l *Lease) heldLocked() bool { return l.rev != 0 && time.Since(l.sentAt) < l.ttl }

// Acquire tries once, without blocking on other holders: it returns true if
// this process now holds the lease (renewing it if it already did). A lease
// held by another is taken over only after its revision stayed unchanged
// for ttl, as seen by this Lease across calls: call Acquire again later (or
// use Hold, which does).
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acquireLocked(ctx)
}

func (l *Lease) acquireLocked(ctx context.Context) (bool, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return false, err
	}
	if l.rev != 0 {
		if l.heldLocked() {
			return l.renewLocked(ctx, kv)
		}
		l.rev = 0 // expired while we were away: compete like anyone else
	}
	e, err := kv.Get(ctx, l.name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		sent := time.Now()
		l.since = sent
		val := l.value(sent)
		rev, err := kv.Create(ctx, l.name, val)
		if isConflict(err) {
			if rev, ok := l.ownWrite(ctx, kv, val); ok {
				l.rev, l.sentAt, l.seenRev = rev, sent, 0
				return true, nil
			}
			return false, nil // another process won the race
		}
		if err != nil {
			return false, fmt.Errorf("fleet: lease %s: create: %w", l.name, err)
		}
		l.rev, l.sentAt, l.seenRev = rev, sent, 0
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("fleet: lease %s: get: %w", l.name, err)
	}
	if e.Revision() != l.seenRev {
		l.seenRev, l.seenAt = e.Revision(), time.Now()
		return false, nil
	}
	if time.Since(l.seenAt) < l.ttl {
		return false, nil
	}
	var prev leaseValue
	_ = json.Unmarshal(e.Value(), &prev)
	sent := time.Now()
	l.since = sent
	val := l.value(sent)
	rev, err := kv.Update(ctx, l.name, val, e.Revision())
	if isConflict(err) {
		var ok bool
		if rev, ok = l.ownWrite(ctx, kv, val); !ok {
			return false, nil
		}
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("fleet: lease %s: take over: %w", l.name, err)
	}
	l.o.logger.Info("fleet: lease taken over from a holder that stopped renewing",
		"lease", l.name, "holder", l.holder, "previous_holder", prev.Holder, "ttl", l.ttl)
	l.rev, l.sentAt, l.seenRev = rev, sent, 0
	return true, nil
}

// renewLocked extends a held lease. A revision mismatch means someone took
// it over: the lease is lost. Other errors keep the lease until its ttl runs out.
func (l *Lease) renewLocked(ctx context.Context, kv jetstream.KeyValue) (bool, error) {
	if time.Since(l.sentAt) >= l.ttl {
		l.rev = 0
		return false, nil
	}
	sent := time.Now()
	val := l.value(sent)
	rev, err := kv.Update(ctx, l.name, val, l.rev)
	if isConflict(err) {
		var ok bool
		if rev, ok = l.ownWrite(ctx, kv, val); ok {
			err = nil
		}
	}
	if isConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
		l.rev = 0
		return false, nil
	}
	if err != nil {
		return l.heldLocked(), fmt.Errorf("fleet: lease %s: renew: %w", l.name, err)
	}
	l.rev, l.sentAt = rev, sent
	return true, nil
}

// ownWrite tells a conflict caused by our own write apart from a lost race.
// The KV retries a write that got no answer; if the first attempt landed,
// the retry conflicts with it. The key then holds exactly the bytes we sent
// (holder and nanosecond timestamps make them unique to this write), so its
// revision is ours. Ownership still counts from when that write was sent,
// and anyone timing the revision saw it after that: the protocol holds.
func (l *Lease) ownWrite(ctx context.Context, kv jetstream.KeyValue, val []byte) (uint64, bool) {
	e, err := kv.Get(ctx, l.name)
	if err != nil || !bytes.Equal(e.Value(), val) {
		return 0, false
	}
	l.o.logger.Info("fleet: lease write landed although its answer was lost", "lease", l.name, "holder", l.holder)
	return e.Revision(), true
}

// Release gives the lease up if this process holds it. It is conditioned on
// our revision: a lease already taken over by another is left alone.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return nil
	}
	rev := l.rev
	l.rev = 0
	kv, err := l.bucket(ctx)
	if err != nil {
		return err
	}
	err = kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
	if err != nil && !isConflict(err) {
		return fmt.Errorf("fleet: lease %s: release: %w", l.name, err)
	}
	return nil
}

// Hold blocks until the lease is acquired (or ctx ends: ctx.Err()), runs fn
// with a context that is cancelled (cause ErrLeaseLost) if the lease is lost,
// renews every ttl/3 meanwhile, and releases when fn returns. It returns nil,
// or ErrLeaseLost if the lease was lost while fn ran. fn must return
// promptly once its context is done: exclusion relies on it.
func (l *Lease) Hold(ctx context.Context, fn func(ctx context.Context)) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopped := make(chan struct{})
	renewerDone := make(chan struct{})
	go func() {
		defer close(renewerDone)
		l.renewLoop(fctx, cancel, stopped)
	}()
	fn(fctx)
	close(stopped)
	<-renewerDone
	lost := errors.Is(context.Cause(fctx), ErrLeaseLost)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.timeout)
	defer rcancel()
	if err := l.Release(rctx); err != nil {
		l.o.logger.Warn("fleet: lease release failed; it expires after its ttl", "lease", l.name, "err", err)
	}
	if lost {
		return ErrLeaseLost
	}
	return nil
}

// wait loops on Acquire, woken by changes of the key (a release shows up at
// once) or by the moment the observed revision would become stale.
func (l *Lease) wait(ctx context.Context) error {
	l.mu.Lock()
	kv, err := l.bucket(ctx)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	// Watch before the first try so that a release between a failed try and
	// the wait is not missed.
	w, err := kv.Watch(ctx, l.name, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("fleet: lease %s: watch: %w", l.name, err)
	}
	defer func() { _ = w.Stop() }()
	failures := 0
	for {
		l.mu.Lock()
		ok, err := l.acquireLocked(ctx)
		next := l.ttl / 3
		if err == nil && l.seenRev != 0 {
			next = max(time.Until(l.seenAt.Add(l.ttl)), time.Millisecond)
		}
		l.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			next = min(time.Duration(failures)*l.ttl/10, l.ttl)
			l.o.logger.Warn("fleet: lease acquire failed, retrying", "lease", l.name, "err", err, "retry_in", next)
		} else {
			failures = 0
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-w.Updates():
		case <-t.C:
		}
		t.Stop()
	}
}

// renewLoop renews every ttl/3 and cancels fctx with ErrLeaseLost when a
// renewal is refused or the ttl runs out without a successful one.
func (l *Lease) renewLoop(fctx context.Context, cancel context.CancelCauseFunc, stopped <-chan struct{}) {
	interval := l.ttl / 3
	next := interval
	failing := false
	for {
		l.mu.Lock()
		deadline := l.sentAt.Add(l.ttl)
		l.mu.Unlock()
		wake := min(next, time.Until(deadline))
		t := time.NewTimer(max(wake, 0))
		select {
		case <-stopped:
			t.Stop()
			return
		case <-fctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			l.lose(cancel, "ttl ran out without a successful renewal")
			return
		}
		// A renewal must not outlive the lease itself.
		rctx, rcancel := context.WithDeadline(context.WithoutCancel(fctx), deadline)
		l.mu.Lock()
		kv := l.kv
		held, err := l.renewLocked(rctx, kv)
		l.mu.Unlock()
		rcancel()
		switch {
		case !held:
			l.lose(cancel, "renewal refused: taken over")
			return
		case err != nil:
			if !failing { // one line per outage, not per retry
				l.o.logger.Warn("fleet: lease renewal failed, retrying until the ttl runs out", "lease", l.name, "err", err)
			}
			failing = true
			next = max(interval/4, time.Millisecond)
		default:
			failing = false
			next = interval
		}
	}
}

func (l *Lease) lose(cancel context.CancelCauseFunc, why string) {
	l.mu.Lock()
	l.rev = 0
	l.mu.Unlock()
	l.o.logger.Warn("fleet: lease lost", "lease", l.name, "holder", l.holder, "reason", why)
	cancel(ErrLeaseLost)
}
