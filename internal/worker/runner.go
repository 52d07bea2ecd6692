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
	r.keepHeldAlive(ctx)
	for _, cc := range ccs {
		cc.Stop()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		r.log.Warn("shutdown grace elapsed; cancelling in-flight events (they will be redelivered)")
		r.hcancel()
		<-done
	}
	// Release events still queued behind a blocked record: redelivered to
	// whichever worker holds the partition next.
	for _, m := range r.lanes.held() {
		_ = m.msg.Nak()
	}
	r.log.Info("worker stopped")
	return nil
}

// keepHeldAlive sends in-progress acks for queued events until ctx ends, so
// JetStream does not redeliver what this process is holding in order.
func (r *Runner) keepHeldAlive(ctx context.Context) {
	t := time.NewTicker(r.cfg.Consumer.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
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
	if r.lanes.admit(key, m) {
		r.wg.Add(1)
		go r.runLane(key, m)
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
	select {
	case r.sem <- struct{}{}:
	case <-r.hctx.Done():
		_ = m.msg.Nak()
		return true
	}
	defer func() { <-r.sem }()

	start := time.Now()
	stop := r.keepAlive(m)
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
	case IsPermanent(err) || m.Delivered >= r.cfg.Consumer.MaxDeliver && r.cfg.Consumer.MaxDeliver > 0:
		r.deadLetter(m, err)
		r.observe(m, OutcomeDeadLettered, d)
		return false
	default:
		delay := r.backoff(m.Delivered, RetryAfter(err))
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
		case <-time.After(wait):
		}
		waited += wait
	}
}

func (r *Runner) deadLetter(m *Message, cause error) {
	reason := "permanent failure"
	if !IsPermanent(cause) {
		reason = "out of deliveries (" + strconv.Itoa(m.Delivered) + ")"
	}
	if r.cfg.DeadLetter != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.cfg.DeadLetter.DeadLetter(ctx, m, cause); err != nil {
			// Not stored in the DLQ: keep the event in the main stream for a
			// later retry rather than lose it.
			r.log.Error("dead letter failed; event stays for redelivery", "event_id", m.Envelope.ID, "err", err)
			_ = m.msg.NakWithDelay(r.cfg.RetryMax)
			return
		}
		_ = m.msg.Ack()
		r.log.Warn("event dead-lettered", "event_id", m.Envelope.ID, "reason", reason, "err", cause)
		return
	}
	_ = m.msg.TermWithReason(reason)
	r.log.Error("event terminated", "event_id", m.Envelope.ID, "reason", reason, "err", cause)
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
