package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// DeadLetterer stores an event that will not be retried, with the reason.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m *Message, cause error) error
}

// Observer receives the outcome of each delivery (metrics). Optional.
type Observer interface {
	Outcome(m *Message, outcome string, d time.Duration)
}

// Outcomes reported to the Observer.
const (
	OutcomeAcked        = "acked"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeInvalid      = "invalid"      // not an envelope
	OutcomeRateLimited  = "rate_limited" // waited in-process for a rate limit
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	JS       jetstream.JetStream // required
	Stream   events.StreamConfig
	Consumer events.ConsumerConfig
	Handler  Handler // required
	// Concurrency: events handled at once across all partitions. Default 8.
	Concurrency int
	// RetryBase and RetryMax bound the exponential nak delay (with full
	// jitter) of retryable failures. Defaults 1s and 5m. A wait asked for by
	// the failure (RetryAfter) takes precedence when longer.
	RetryBase, RetryMax time.Duration
	// DeadLetter receives permanent failures and events out of deliveries.
	// Nil terminates them in JetStream with the reason (logged).
	DeadLetter DeadLetterer
	// RateLimitPatience: how long one delivery may wait in-process for a
	// rate limit to clear (retrying after each wait) before it is nak'ed like
	// any retryable failure. Waiting in-process keeps a 429 storm from using
	// up the event's deliveries. Default 10m.
	RateLimitPatience time.Duration
	// ShutdownGrace: how long in-flight events may finish after Run's context
	// ends before they are cancelled (and so nak'ed). Default 30s.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	Observer      Observer
}

// Runner pulls events and runs the Handler on them.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	lanes *lanes
	sem   chan struct{}
	wg    sync.WaitGroup
	// mu orders lane admissions (and their wg.Add) before the shutdown's
	// wg.Wait: once stopping is set nothing new starts.
	mu       sync.Mutex
	stopping bool
	// rctx is Run's context: when it ends, no event starts any more.
	rctx context.Context
	// hctx is the handlers' context: it outlives Run's context by the grace
	// period so in-flight events can finish.
	hctx    context.Context
	hcancel context.CancelFunc
}

// NewRunner validates cfg and applies defaults.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.JS == nil || cfg.Handler == nil {
		return nil, errors.New("worker: Config.JS and Config.Handler are required")
	}
	cfg.Stream = cfg.Stream.WithDefaults()
	cfg.Consumer = cfg.Consumer.WithDefaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	if cfg.RateLimitPatience <= 0 {
		cfg.RateLimitPatience = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: cfg.Logger, lanes: newLanes(), sem: make(chan struct{}, cfg.Concurrency)}, nil
}

// Run consumes until ctx ends, then stops pulling and lets in-flight events
// finish within the grace period.
func (r *Runner) Run(ctx context.Context) error {
	cons, err := events.EnsureConsumers(ctx, r.cfg.JS, r.cfg.Stream, r.cfg.Consumer)
	if err != nil {
		return err
	}
	r.rctx = ctx
	r.hctx, r.hcancel = context.WithCancel(context.WithoutCancel(ctx))
	defer r.hcancel()
	var ccs []jetstream.ConsumeContext
	for p, c := range cons {
		cc, err := c.Consume(func(msg jetstream.Msg) { r.dispatch(p, msg) },
			jetstream.PullPriorityGroup(events.PriorityGroup),
			jetstream.PullMaxMessages(max(1, r.cfg.Concurrency)),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				r.log.Debug("consume", "partition", p, "err", err)
			}))
		if err != nil {
			for _, cc := range ccs {
				cc.Stop()
			}
			return fmt.Errorf("worker: consume partition %d: %w", p, err)
		}
		ccs = append(ccs, cc)
	}
	r.log.Info("worker consuming", "stream", r.cfg.Stream.Name, "partitions", len(cons), "concurrency", r.cfg.Concurrency)
	// Queued events are kept alive until the very end, through the grace
	// period too: they are released (nak'ed) only once the events of their
	// records that are still running here have settled.
	stopKeep := make(chan struct{})
	kept := make(chan struct{})
	go func() { defer close(kept); r.keepHeldAlive(stopKeep) }()
	<-ctx.Done()
	grace, graceCancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	defer graceCancel()
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	for _, cc := range ccs {
		cc.Stop()
	}
	// Stop does not wait for a consume callback in progress; Closed does.
	for _, cc := range ccs {
		select {
		case <-cc.Closed():
		case <-grace.Done():
		}
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-grace.Done():
		r.log.Warn("shutdown grace elapsed; cancelling in-flight events (they will be redelivered)")
		r.hcancel()
		<-done
	}
	close(stopKeep)
	<-kept
	// Release events still queued behind a blocked record to whichever
	// worker holds the partition next, after their blocker: redelivered
	// before it, they would run first there and overtake it.
	for _, h := range r.lanes.release() {
		_ = h.m.msg.NakWithDelay(max(time.Until(h.after), 0) + releaseMargin)
	}
	r.log.Info("worker stopped")
	return nil
}

// releaseMargin: how long after its blocker's redelivery a released queued
// event comes back, so the next worker sees the blocker first.
const releaseMargin = time.Second

// keepHeldAlive sends in-progress acks for queued events until stop is
// closed, so JetStream does not redeliver what this process is holding in
// order.
func (r *Runner) keepHeldAlive(stop <-chan struct{}) {
	t := time.NewTicker(r.cfg.Consumer.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			for _, m := range r.lanes.held() {
				_ = m.InProgress()
			}
		}
	}
}

func (r *Runner) dispatch(partition int, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	env, err := events.Decode(msg.Data())
	if err != nil {
		r.log.Error("poison message: not an envelope", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "err", err)
		_ = msg.TermWithReason("not a zohook envelope")
		r.observe(&Message{Envelope: &events.Envelope{}, Sequence: meta.Sequence.Stream}, OutcomeInvalid, 0)
		return
	}
	m := &Message{Envelope: env, Subject: msg.Subject(), Sequence: meta.Sequence.Stream,
		Delivered: int(meta.NumDelivered), Partition: partition, msg: msg}
	key := events.RecordKey(env)
	r.mu.Lock()
	adm := r.lanes.admit(key, m, r.stopping)
	if adm == admitRun {
		r.wg.Add(1)
	}
	r.mu.Unlock()
	switch adm {
	case admitRun:
		go r.runLane(key, m)
	case admitRefuse:
		// Shutting down: another worker takes it now rather than after the
		// ack wait.
		_ = msg.Nak()
	}
}

// runLane handles m and then every message queued behind it for the record.
func (r *Runner) runLane(key string, m *Message) {
	defer r.wg.Done()
	for m != nil {
		m = r.lanes.done(key, m, r.handle(m))
	}
}

// handle runs one delivery and settles it; it reports whether the event was
// nak'ed for a retry (which blocks its record's lane).
func (r *Runner) handle(m *Message) (retry bool) {
	// Kept alive while it waits for a slot too: a wait longer than the ack
	// wait would otherwise get it redelivered while this process holds it.
	stop := r.keepAlive(m)
	acquired := false
	select {
	case r.sem <- struct{}{}:
		acquired = true
	case <-r.rctx.Done():
	}
	if r.rctx.Err() != nil {
		// Shutting down: only handlers already running may finish. Started
		// now, it could still run when the worker that takes the partition
		// gets it too; released now, only that worker runs it.
		if acquired {
			<-r.sem
		}
		stop()
		_ = m.msg.Nak()
		m.retryAt = time.Now()
		return true
	}
	defer func() { <-r.sem }()
	// The ack timer restarts now, not at the next keep-alive tick.
	_ = m.InProgress()

	start := time.Now()
	err := r.handleWithPatience(m)
	stop()
	d := time.Since(start)

	switch {
	case err == nil:
		// Double ack: the handler's effects are done, so make sure JetStream
		// recorded the ack before we forget the event.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if aerr := m.msg.DoubleAck(ctx); aerr != nil {
			r.log.Warn("ack not confirmed; the event may be redelivered (its completed steps will not repeat)",
				"event_id", m.Envelope.ID, "err", aerr)
		}
		r.observe(m, OutcomeAcked, d)
		return false
	// The delivery limit is ours alone (the consumer has none): past it the
	// event is dead-lettered, and redelivered until that succeeds. A rate
	// limit (or a refused token refresh) does not exhaust it: Zoho only said
	// "later", and dead-lettering every waiting event would leave a mass
	// replay to do once the quota or the token is back.
	case IsPermanent(err) || !IsRateLimited(err) && m.Delivered >= r.cfg.Consumer.MaxDeliver && r.cfg.Consumer.MaxDeliver > 0:
		if !r.deadLetter(m, err) {
			// Not stored: it comes back (nak'ed), and the newer events of
			// its record wait for it as for any retry.
			r.observe(m, OutcomeRetried, d)
			return true
		}
		r.observe(m, OutcomeDeadLettered, d)
		return false
	default:
		delay := r.backoff(m.Delivered, RetryAfter(err))
		m.retryAt = time.Now().Add(delay)
		if nerr := m.msg.NakWithDelay(delay); nerr != nil {
			r.log.Warn("nak failed; JetStream will redeliver after the ack wait", "event_id", m.Envelope.ID, "err", nerr)
		}
		r.log.Info("event will be retried", "event_id", m.Envelope.ID, "delivery", m.Delivered, "retry_in", delay.Round(time.Millisecond), "err", err)
		r.observe(m, OutcomeRetried, d)
		return true
	}
}

// handleWithPatience runs the handler; while it fails only because of a
// rate limit, it waits (what Zoho asked, else backoff) and tries again, up
// to RateLimitPatience. Completed steps are journaled, so a retry resumes.
func (r *Runner) handleWithPatience(m *Message) error {
	var waited time.Duration
	for try := 1; ; try++ {
		m.Attempt = try
		err := r.cfg.Handler.Handle(r.hctx, m)
		if err == nil || !IsRateLimited(err) || waited >= r.cfg.RateLimitPatience {
			return err
		}
		wait := min(r.backoff(try, RetryAfter(err)), r.cfg.RateLimitPatience-waited)
		r.log.Info("rate limited; waiting before trying again", "event_id", m.Envelope.ID, "wait", wait.Round(time.Millisecond))
		r.observe(m, OutcomeRateLimited, wait)
		select {
		case <-r.hctx.Done():
			return err
		case <-r.rctx.Done():
			// Shutting down: do not hold the grace period for a wait;
			// the retry resumes from the journal.
			return err
		case <-time.After(wait):
		}
		waited += wait
	}
}

// deadLetter stores or terminates m; it reports false when the dead-letter
// write failed and m was nak'ed to try again.
func (r *Runner) deadLetter(m *Message, cause error) (settled bool) {
	reason := "permanent failure"
	if !IsPermanent(cause) {
		reason = "out of deliveries (" + strconv.Itoa(m.Delivered) + ")"
	}
	if r.cfg.DeadLetter != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.cfg.DeadLetter.DeadLetter(ctx, m, cause); err != nil {
			// Not stored in the DLQ: keep the event in the main stream for a
			// later retry rather than lose it. The consumer has no server-side
			// delivery limit, so JetStream does redeliver it.
			r.log.Error("dead letter failed; event stays for redelivery", "event_id", m.Envelope.ID, "err", err)
			m.retryAt = time.Now().Add(r.cfg.RetryMax)
			_ = m.msg.NakWithDelay(r.cfg.RetryMax)
			return false
		}
		_ = m.msg.Ack()
		r.log.Warn("event dead-lettered", "event_id", m.Envelope.ID, "reason", reason, "err", cause)
		return true
	}
	_ = m.msg.TermWithReason(reason)
	r.log.Error("event terminated", "event_id", m.Envelope.ID, "reason", reason, "err", cause)
	return true
}

// keepAlive sends in-progress acks so a long event is not redelivered to
// another worker while it still runs.
func (r *Runner) keepAlive(m *Message) (stop func()) {
	every := r.cfg.Consumer.AckWait / 3
	t := time.NewTicker(every)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				_ = m.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// backoff: exponential with equal jitter (half fixed, half random), and at
// least what the failure asked for.
func (r *Runner) backoff(delivered int, asked time.Duration) time.Duration {
	exp := r.cfg.RetryBase << min(max(delivered-1, 0), 20)
	if exp <= 0 || exp > r.cfg.RetryMax {
		exp = r.cfg.RetryMax
	}
	d := exp/2 + time.Duration(rand.Int64N(int64(exp/2)+1))
	return max(d, asked)
}

func (r *Runner) observe(m *Message, outcome string, d time.Duration) {
	if r.cfg.Observer != nil {
		r.cfg.Observer.Outcome(m, outcome, d)
	}
}
