package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/tracing"
)

// DeadLetterer stores an event that will not be retried, with the reason.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m *Message, cause error) error
	// DeadLetterRaw stores a stored message that is not a valid envelope.
	DeadLetterRaw(ctx context.Context, subject string, seq uint64, data []byte, cause error) error
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
	OutcomeInvalid      = "invalid"      // not an envelope (dead-lettered raw)
	OutcomeRateLimited  = "rate_limited" // waited in-process for a rate limit
	OutcomeHeld         = "held"         // newer envelope than this worker understands, or claimed elsewhere
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	JS       jetstream.JetStream // required
	Stream   events.StreamConfig
	Consumer events.ConsumerConfig
	Handler  Handler // required
	// Journal counts failures and holds each event's steps; handlers read
	// it through Message.Entry. Nil: failures are counted by deliveries.
	Journal *Journal
	// Members shares the partitions with the other worker processes. Nil:
	// this process consumes every partition.
	Members *Membership
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
	// ShutdownGrace: how long in-flight events of a partition may finish
	// when it is released (shutdown, or moved to another worker) before
	// they are cancelled (and so retried). Default 30s.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	Observer      Observer
	// Outcomes publishes a record of every run (the console's index).
	// Optional.
	Outcomes *Outcomes
}

// Runner pulls events from the partitions this process holds and runs the
// Handler on them.
//
// Order per record: events of one record run one at a time in stream order
// (lanes). Across processes, a partition is consumed by one process at a
// time (its consumer pins one), and a process that takes a partition over
// is "fenced" until every event delivered before it took over is settled:
// meanwhile it runs an event only when the work stream holds no older event
// of the same record (one leader read per event; the work stream keeps an
// event exactly until it is acknowledged). So an event that another
// process still holds, or that waits for its retry, is never overtaken.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	lanes *lanes
	sem   chan struct{}
	// waiting bounds the lanes started but not yet holding a handler slot
	// (see dispatch); a token is taken by dispatch and given back by the
	// lane once it holds a slot or starts waiting for an older event.
	waiting chan struct{}
	stream  jetstream.Stream
	// rctx is Run's context: when it ends, no event starts any more.
	rctx context.Context

	mu    sync.Mutex
	parts map[int]*partition
	// spans: *Message → trace.Span of its handler run in progress, ended
	// by observe with the outcome (tracing on only).
	spans sync.Map
	// alive: messages running or waiting for a slot, kept alive by
	// keepHeldAlive.
	alive sync.Map
}

// partition is one partition this process consumes.
type partition struct {
	p    int
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
	wg   sync.WaitGroup // lane runs of this partition
	// stop: closed when the partition is being released; nothing new starts.
	stop chan struct{}
	// hctx: the handlers' context; cancelled when a release outlives the grace.
	hctx    context.Context
	hcancel context.CancelFunc

	mu sync.Mutex
	// fenced: events delivered before this process took the partition may
	// still be unsettled (held elsewhere, or waiting for a retry).
	fenced   bool
	fenceSeq uint64 // last stream sequence delivered before the takeover (MaxUint64: unknown yet)
	pinID    string
	checked  time.Time
}

// handlerCtx is the context handlers of the partition run with.
func (pt *partition) handlerCtx() context.Context {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.hctx
}

// cancelHandlers cancels the running handlers; renew gives later ones a
// fresh context.
func (pt *partition) cancelHandlers(renew bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.hcancel()
	if renew {
		pt.hctx, pt.hcancel = context.WithCancel(context.WithoutCancel(pt.hctx))
	}
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
	return &Runner{cfg: cfg, log: cfg.Logger, lanes: newLanes(), sem: make(chan struct{}, cfg.Concurrency),
		waiting: make(chan struct{}, waitingLanes(cfg.Concurrency)), parts: map[int]*partition{}}, nil
}

// Run consumes the partitions assigned to this process until ctx ends,
// following the assignment as workers come and go; then it releases every
// partition, letting in-flight events finish within the grace period.
func (r *Runner) Run(ctx context.Context) error {
	cons, err := events.PartitionConsumers(ctx, r.cfg.JS, r.cfg.Stream, r.cfg.Consumer)
	if err != nil {
		return err
	}
	if r.stream, err = r.cfg.JS.Stream(ctx, r.cfg.Stream.Name); err != nil {
		return fmt.Errorf("worker: stream %s: %w", r.cfg.Stream.Name, err)
	}
	r.rctx = ctx
	r.log.Info("worker consuming", "stream", r.cfg.Stream.Name, "partitions", len(cons), "concurrency", r.cfg.Concurrency,
		"shared", r.cfg.Members != nil)
	// Queued events are kept alive until they run or are released.
	stopKeep := make(chan struct{})
	kept := make(chan struct{})
	go func() { defer close(kept); r.keepHeldAlive(stopKeep) }()
	go r.watchConnection(ctx)

	for {
		want, changed := r.assignment(len(cons))
		r.apply(ctx, cons, want)
		select {
		case <-ctx.Done():
		case <-changed:
			continue
		}
		break
	}
	// Shutdown: release every partition at once.
	r.apply(context.WithoutCancel(ctx), cons, nil)
	fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
	r.cfg.Outcomes.Flush(fctx)
	fcancel()
	close(stopKeep)
	<-kept
	if r.cfg.Members != nil {
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := r.cfg.Members.Leave(lctx); err != nil {
			r.log.Warn("leaving the worker group failed; others take over after the member ttl", "err", err)
		}
		cancel()
	}
	r.log.Info("worker stopped")
	return nil
}

// assignment returns the partitions to consume and a channel closed when
// that changes (nil: never).
func (r *Runner) assignment(n int) ([]int, <-chan struct{}) {
	if r.cfg.Members == nil {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	return r.cfg.Members.Assigned()
}

// apply starts the partitions in want that are not running and releases
// the running ones not in want (those in parallel, each within the grace).
func (r *Runner) apply(ctx context.Context, cons []jetstream.Consumer, want []int) {
	r.mu.Lock()
	var drop []*partition
	for p, pt := range r.parts {
		if !slices.Contains(want, p) {
			drop = append(drop, pt)
			delete(r.parts, p)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, pt := range drop {
		wg.Add(1)
		go func() { defer wg.Done(); r.release(pt) }()
	}
	wg.Wait()
	for _, p := range want {
		r.mu.Lock()
		_, running := r.parts[p]
		r.mu.Unlock()
		if running || ctx.Err() != nil {
			continue
		}
		if err := r.acquire(ctx, cons[p], p); err != nil {
			r.log.Error("cannot consume partition; retrying at the next assignment change", "partition", p, "err", err)
		}
	}
	r.reportHeld()
}

func (r *Runner) reportHeld() {
	if r.cfg.Members == nil {
		return
	}
	r.mu.Lock()
	held := make([]int, 0, len(r.parts))
	for p := range r.parts {
		held = append(held, p)
	}
	r.mu.Unlock()
	r.cfg.Members.SetHeld(held)
}

// acquire starts consuming partition p.
func (r *Runner) acquire(ctx context.Context, c jetstream.Consumer, p int) error {
	pt := &partition{p: p, cons: c, stop: make(chan struct{}), fenced: true, fenceSeq: math.MaxUint64}
	pt.hctx, pt.hcancel = context.WithCancel(context.WithoutCancel(ctx))
	if r.cfg.Members != nil && !r.cfg.Members.HeldByOther(p) {
		// No live worker holds it: a pin left by a dead one would keep this
		// process waiting until the pinned TTL ran out.
		uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = r.stream.UnpinConsumer(uctx, r.cfg.Consumer.ConsumerName(p), events.PriorityGroup)
		cancel()
	}
	cc, err := c.Consume(func(msg jetstream.Msg) { r.dispatch(pt, msg) },
		jetstream.PullPriorityGroup(events.PriorityGroup),
		jetstream.PullMaxMessages(max(1, r.cfg.Concurrency)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Debug("consume", "partition", p, "err", err)
		}))
	if err != nil {
		pt.hcancel()
		return fmt.Errorf("worker: consume partition %d: %w", p, err)
	}
	pt.cc = cc
	r.mu.Lock()
	r.parts[p] = pt
	r.mu.Unlock()
	r.log.Debug("partition acquired", "partition", p)
	return nil
}

// release stops consuming pt: no new event starts, running ones finish
// within the grace (then they are cancelled and retried), queued ones go
// back to JetStream after their record's blocker, and the pin is dropped so
// the partition's next holder gets it at once.
func (r *Runner) release(pt *partition) {
	close(pt.stop)
	pt.cc.Stop()
	grace, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	defer cancel()
	select {
	case <-pt.cc.Closed():
	case <-grace.Done():
	}
	done := make(chan struct{})
	go func() { pt.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-grace.Done():
		r.log.Warn("grace elapsed; cancelling in-flight events of the partition (they will be retried)", "partition", pt.p)
		pt.cancelHandlers(false)
		<-done
	}
	pt.cancelHandlers(false)
	for _, h := range r.lanes.release(pt.p) {
		_ = h.m.msg.NakWithDelay(max(time.Until(h.after), 0) + releaseMargin)
	}
	uctx, ucancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ucancel()
	_ = r.stream.UnpinConsumer(uctx, r.cfg.Consumer.ConsumerName(pt.p), events.PriorityGroup)
	r.log.Debug("partition released", "partition", pt.p)
}

// releaseMargin: how long after its blocker's redelivery a released queued
// event comes back, so the next holder sees the blocker first.
const releaseMargin = time.Second

// watchConnection cancels the running handlers when NATS has been
// unreachable for half the ack wait: their in-progress acks no longer
// reach JetStream, which will hand the events to another worker; a handler
// that went on could send a step that worker sends too. (The journal's
// compare-and-set stops a second claim; this stops the first holder from
// carrying on blind.) Partitions are consumed again once NATS is back.
func (r *Runner) watchConnection(ctx context.Context) {
	nc := r.cfg.JS.Conn()
	if nc == nil {
		return
	}
	t := time.NewTicker(max(r.cfg.Consumer.AckWait/10, 100*time.Millisecond))
	defer t.Stop()
	var lost time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if nc.IsConnected() {
			lost = time.Time{}
			continue
		}
		if lost.IsZero() {
			lost = time.Now()
			continue
		}
		if time.Since(lost) < r.cfg.Consumer.AckWait/2 {
			continue
		}
		r.mu.Lock()
		for _, pt := range r.parts {
			pt.cancelHandlers(true)
		}
		r.mu.Unlock()
		r.log.Warn("NATS unreachable for half the ack wait: running events cancelled (they will be redelivered; journaled steps do not repeat)",
			"since", lost.Format(time.RFC3339))
		lost = time.Now()
	}
}

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
			r.alive.Range(func(k, _ any) bool {
				_ = k.(*Message).InProgress()
				return true
			})
		}
	}
}

func (r *Runner) dispatch(pt *partition, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	r.notePin(pt, msg)
	env, err := events.Decode(msg.Data())
	if errors.Is(err, events.ErrUnsupportedVersion) {
		// A newer zohook stored it (rolling upgrade): leave it for a worker
		// that understands it, without spending a failure.
		r.log.Warn("event written by a newer zohook; leaving it for an upgraded worker", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "err", err)
		_ = msg.NakWithDelay(unsupportedWait)
		r.observe(&Message{Envelope: &events.Envelope{}, Sequence: meta.Sequence.Stream, Partition: pt.p}, OutcomeHeld, 0)
		return
	}
	if err != nil {
		r.poison(msg, meta, pt.p, err)
		return
	}
	m := &Message{Envelope: env, Subject: msg.Subject(), Sequence: meta.Sequence.Stream,
		Delivered: int(meta.NumDelivered), Partition: pt.p, msg: msg, journal: r.cfg.Journal, received: time.Now()}
	key := events.RecordKey(env)
	stopping := r.rctx.Err() != nil || isClosed(pt.stop)
	adm := r.lanes.admit(key, m, stopping)
	switch adm {
	case admitRun:
		pt.wg.Add(1)
		go r.runLane(pt, key, m, r.awaitWaitingRoom(pt))
	case admitRefuse:
		// Releasing the partition: its next holder takes it now rather than
		// after the ack wait.
		_ = msg.Nak()
	}
}

// unsupportedWait: how long an event from a newer zohook waits before it is
// offered again.
const unsupportedWait = time.Minute

// poison dead-letters a stored message that is not a valid envelope, with
// its raw bytes, so it is seen and never silently counted away.
func (r *Runner) poison(msg jetstream.Msg, meta *jetstream.MsgMetadata, p int, cause error) {
	r.log.Error("poison message: not a valid envelope; dead-lettering it as stored", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "err", cause)
	r.observe(&Message{Envelope: &events.Envelope{}, Sequence: meta.Sequence.Stream, Partition: p}, OutcomeInvalid, 0)
	if r.cfg.DeadLetter == nil {
		_ = msg.TermWithReason("not a zohook envelope")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cfg.DeadLetter.DeadLetterRaw(ctx, msg.Subject(), meta.Sequence.Stream, msg.Data(), Permanent(cause)); err != nil {
		r.log.Error("dead letter failed; the message stays for redelivery", "seq", meta.Sequence.Stream, "err", err)
		_ = msg.NakWithDelay(r.cfg.RetryMax)
		return
	}
	_ = msg.Ack()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// notePin re-fences the partition when the server pinned another client id
// to it: events may have gone to another process meanwhile.
func (r *Runner) notePin(pt *partition, msg jetstream.Msg) {
	id := msg.Headers().Get("Nats-Pin-Id")
	if id == "" {
		return
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.pinID != "" && pt.pinID != id {
		pt.fenced, pt.fenceSeq = true, math.MaxUint64
	}
	pt.pinID = id
}

// runLane handles m and then every message queued behind it for the record.
func (r *Runner) runLane(pt *partition, key string, m *Message, token bool) {
	defer pt.wg.Done()
	w := &waitToken{r: r, held: token}
	defer w.release()
	for m != nil {
		if next := r.awaitOlder(pt, key, m, w); next != nil {
			m = next // an older event of the record arrived here: run it first
			continue
		}
		m = r.lanes.done(key, m, r.handle(pt, m, w))
	}
}

// waitingLanes is how many lanes may wait for a handler slot before
// dispatch slows down: enough to keep every slot busy.
func waitingLanes(concurrency int) int { return max(16, 2*concurrency) }

// maxDispatchWait bounds how long dispatch holds a delivery back while the
// waiting room is full; past it the lane starts anyway. Well under the
// pinned TTL (30 s) and the consumer's missed-heartbeat time: a consume
// callback that stalls for long stops pulling, and a partition's pin
// lapses without pulls. So the bound holds while handlers end within
// seconds; when they hang on Zoho, one more lane per partition may start
// every 5 s.
const maxDispatchWait = 5 * time.Second

// awaitWaitingRoom takes a waiting token, giving up after maxDispatchWait
// or when the worker stops or lets pt go (the lane then releases m).
//
// Why: a delivery no lane holds starts a goroutine that waits for a
// handler slot. Unbounded, a worker behind its load held every partition's
// MaxAckPending of them (4,096 goroutines by default, measured), whose
// stacks and events the garbage collector scanned on every cycle, while
// the server tracked as many acks. Holding the consume callback back
// instead makes JetStream keep the backlog. Only deliveries that would
// start a lane wait: one queued behind its record's lane costs no
// goroutine, and a lane waiting for an older event gives its token back,
// so what dispatch waits for is running handlers, which always end.
func (r *Runner) awaitWaitingRoom(pt *partition) bool {
	select {
	case r.waiting <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(maxDispatchWait)
	defer t.Stop()
	select {
	case r.waiting <- struct{}{}:
		return true
	case <-t.C:
	case <-r.rctx.Done():
	case <-pt.stop:
	}
	return false
}

// waitToken is a lane's waiting token (awaitWaitingRoom), given back once.
type waitToken struct {
	r    *Runner
	held bool
}

func (w *waitToken) release() {
	if w.held {
		w.held = false
		<-w.r.waiting
	}
}

// awaitOlder holds m while its partition is fenced and the work stream
// holds an older event of m's record that this process does not hold. It
// returns the message to run instead when such an older event arrives in
// m's lane (m goes back in the queue).
func (r *Runner) awaitOlder(pt *partition, key string, m *Message, w *waitToken) *Message {
	var stopKeep func()
	defer func() {
		if stopKeep != nil {
			stopKeep()
		}
	}()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		if !r.fenced(pt) {
			return nil
		}
		older, err := r.olderPending(pt, m)
		switch {
		case err != nil:
			r.logFor(m).Warn("cannot check for older events of the record; waiting", "event_id", m.Envelope.ID, "err", err)
		case older == 0:
			return nil
		case r.lanes.queuedSeq(key, older):
			return r.lanes.yield(key, m)
		}
		if stopKeep == nil {
			w.release() // this wait is not for a handler slot
			r.logFor(m).Info("event waits for an older event of its record held elsewhere or waiting for its retry",
				"event_id", m.Envelope.ID, "seq", m.Sequence, "older_seq", older)
			stopKeep = r.keepAlive(m)
		}
		select {
		case <-pt.stop:
			return nil // released: handle() gives it back
		case <-r.rctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// fenced reports whether pt is still fenced, learning the fence (the last
// sequence delivered before this process took over) and the ack floor from
// the consumer at most twice a second.
func (r *Runner) fenced(pt *partition) bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if !pt.fenced {
		return false
	}
	if time.Since(pt.checked) < 500*time.Millisecond {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ci, err := pt.cons.Info(ctx)
	pt.checked = time.Now()
	if err != nil {
		return true
	}
	if pt.fenceSeq == math.MaxUint64 {
		pt.fenceSeq = ci.Delivered.Stream
	}
	if ci.AckFloor.Stream >= pt.fenceSeq {
		pt.fenced = false
		r.log.Debug("partition unfenced: everything delivered before the takeover is settled", "partition", pt.p)
	}
	return pt.fenced
}

// olderPending returns the sequence of the oldest event of m's record
// still in the work stream if it is older than m, else 0.
func (r *Runner) olderPending(pt *partition, m *Message) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := r.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(events.RecordFilter(m.Envelope)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if got.Sequence < m.Sequence {
		return got.Sequence, nil
	}
	return 0, nil
}

// handle runs one delivery and settles it; it reports whether the event was
// nak'ed for a retry (which blocks its record's lane).
func (r *Runner) handle(pt *partition, m *Message, w *waitToken) (retry bool) {
	// Kept alive while it waits for a slot too: a wait longer than the ack
	// wait would otherwise get it redelivered while this process holds it.
	stop := r.keepAlive(m)
	acquired := false
	select {
	case r.sem <- struct{}{}:
		acquired = true
	case <-r.rctx.Done():
	case <-pt.stop:
	}
	w.release()
	if r.rctx.Err() != nil || isClosed(pt.stop) {
		// Releasing: only handlers already running may finish. Started now,
		// it could still run when the partition's next holder gets it too;
		// released now, only that worker runs it.
		if acquired {
			<-r.sem
		}
		stop()
		_ = m.msg.Nak()
		m.retryAt = time.Now()
		return true
	}
	defer func() { <-r.sem }()
	growStack(0)
	if time.Since(m.received) > r.cfg.Consumer.AckWait/4 {
		// It waited (for a slot, or behind its record): restart the ack
		// timer now, not at the next keep-alive tick. A fresh delivery
		// needs no extra message.
		_ = m.InProgress()
	}

	start := time.Now()
	m.entry, m.Report = nil, nil
	err := r.handleWithPatience(pt, m)
	stop()
	d := time.Since(start)
	m.err = err

	switch {
	case err == nil:
		// A plain ack: what Zoho accepted is journaled, so if this ack is
		// lost the redelivery repeats nothing.
		if aerr := m.msg.Ack(); aerr != nil {
			r.logFor(m).Warn("ack not sent; the event may be redelivered (its completed steps will not repeat)",
				"event_id", m.Envelope.ID, "err", aerr)
		}
		r.observe(m, OutcomeAcked, d)
		return false
	case errors.Is(err, ErrClaimed):
		// Another process wrote this event's journal meanwhile: it runs
		// the event. Come back after it had time to finish (its ack makes
		// this redelivery moot); no failure counted.
		r.logFor(m).Warn("another worker is handling this event; leaving it to it", "event_id", m.Envelope.ID, "err", err)
		m.retryAt = time.Now().Add(r.cfg.Consumer.AckWait)
		_ = m.msg.NakWithDelay(r.cfg.Consumer.AckWait)
		r.observe(m, OutcomeHeld, d)
		return true
	case IsPermanent(err):
		return r.deadLetterOrRetry(m, err, d)
	case IsRateLimited(err):
		// Zoho only said "later": this never uses up deliveries, and
		// dead-lettering every waiting event would leave a mass replay to
		// do once the quota or the token is back.
		return r.retryLater(m, err, d, m.Delivered)
	}
	failures := m.Delivered
	if e, jerr := m.Entry(context.Background()); jerr == nil {
		jctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		failures, jerr = e.Failed(jctx, Attempt{At: start.UTC(), Delivery: m.Delivered, Outcome: OutcomeRetried, Error: errString(err), Duration: d})
		cancel()
		if jerr != nil {
			r.logFor(m).Warn("journal: could not count the failure; counting deliveries", "event_id", m.Envelope.ID, "err", jerr)
			failures = m.Delivered
		}
	}
	if r.cfg.Consumer.MaxDeliver > 0 && failures >= r.cfg.Consumer.MaxDeliver {
		return r.deadLetterOrRetry(m, fmt.Errorf("%w (failed %d times)", err, failures), d)
	}
	return r.retryLater(m, err, d, failures)
}

// retryLater naks m with backoff; it blocks m's lane.
func (r *Runner) retryLater(m *Message, err error, d time.Duration, failures int) bool {
	delay := r.backoff(max(failures, 1), RetryAfter(err))
	m.retryAt = time.Now().Add(delay)
	if nerr := m.msg.NakWithDelay(delay); nerr != nil {
		r.logFor(m).Warn("nak failed; JetStream will redeliver after the ack wait", "event_id", m.Envelope.ID, "err", nerr)
	}
	r.logFor(m).Info("event will be retried", "event_id", m.Envelope.ID, "failures", failures, "retry_in", delay.Round(time.Millisecond), "err", err)
	r.observe(m, OutcomeRetried, d)
	return true
}

// deadLetterOrRetry dead-letters m; if that fails m is retried later.
func (r *Runner) deadLetterOrRetry(m *Message, err error, d time.Duration) bool {
	if !r.deadLetter(m, err) {
		// Not stored: it comes back (nak'ed), and the newer events of its
		// record wait for it as for any retry.
		r.observe(m, OutcomeRetried, d)
		return true
	}
	if e, jerr := m.Entry(context.Background()); jerr == nil {
		// Refresh the journal entry's age and note the outcome: a dead
		// letter replayed weeks later still finds its done steps.
		jctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if jerr := e.Finished(jctx, Attempt{At: time.Now().UTC(), Delivery: m.Delivered, Outcome: OutcomeDeadLettered, Error: errString(err), Duration: d}); jerr != nil {
			r.logFor(m).Warn("journal: could not refresh the dead-lettered event's entry", "event_id", m.Envelope.ID, "err", jerr)
		}
		cancel()
	}
	r.observe(m, OutcomeDeadLettered, d)
	return false
}

// handleWithPatience runs the handler; while it fails only because of a
// rate limit, it waits (what Zoho asked, else backoff) and tries again, up
// to RateLimitPatience. Completed steps are journaled, so a retry resumes.
func (r *Runner) handleWithPatience(pt *partition, m *Message) error {
	var waited time.Duration
	for try := 1; ; try++ {
		m.Attempt = try
		m.entry = nil // each run reads the journal afresh
		hctx := pt.handlerCtx()
		err := r.cfg.Handler.Handle(r.startRunSpan(hctx, m), m)
		if err == nil || !IsRateLimited(err) || waited >= r.cfg.RateLimitPatience {
			return err
		}
		wait := min(r.backoff(try, RetryAfter(err)), r.cfg.RateLimitPatience-waited)
		r.logFor(m).Info("rate limited; waiting before trying again", "event_id", m.Envelope.ID, "wait", wait.Round(time.Millisecond))
		r.observe(m, OutcomeRateLimited, wait)
		select {
		case <-hctx.Done():
			return err
		case <-pt.stop:
			// Releasing: do not hold the grace period for a wait; the
			// retry resumes from the journal.
			return err
		case <-r.rctx.Done():
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
		reason = "out of retries"
	}
	if r.cfg.DeadLetter != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.cfg.DeadLetter.DeadLetter(ctx, m, cause); err != nil {
			// Not stored in the DLQ: keep the event in the work stream for a
			// later retry rather than lose it.
			r.logFor(m).Error("dead letter failed; event stays for redelivery", "event_id", m.Envelope.ID, "err", err)
			m.retryAt = time.Now().Add(r.cfg.RetryMax)
			_ = m.msg.NakWithDelay(r.cfg.RetryMax)
			return false
		}
		_ = m.msg.Ack()
		r.logFor(m).Warn("event dead-lettered", "event_id", m.Envelope.ID, "reason", reason, "err", cause)
		return true
	}
	_ = m.msg.TermWithReason(reason)
	r.logFor(m).Error("event terminated", "event_id", m.Envelope.ID, "reason", reason, "err", cause)
	return true
}

// keepAlive has m kept alive (in-progress acks, by keepHeldAlive's loop)
// until stop, so a long event is not redelivered to another worker while it
// still runs. One loop for every message: no goroutine or timer per event.
func (r *Runner) keepAlive(m *Message) (stop func()) {
	r.alive.Store(m, struct{}{})
	return func() { r.alive.Delete(m) }
}

// backoff: exponential with equal jitter (half fixed, half random), and at
// least what the failure asked for.
func (r *Runner) backoff(failures int, asked time.Duration) time.Duration {
	exp := r.cfg.RetryBase << min(max(failures-1, 0), 20)
	if exp <= 0 || exp > r.cfg.RetryMax {
		exp = r.cfg.RetryMax
	}
	d := exp/2 + time.Duration(rand.Int64N(int64(exp/2)+1))
	return max(d, asked)
}

func (r *Runner) observe(m *Message, outcome string, d time.Duration) {
	if s, ok := r.spans.LoadAndDelete(m); ok {
		endRunSpan(s.(trace.Span), m, outcome)
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.Outcome(m, outcome, d)
	}
	r.cfg.Outcomes.Record(m, outcome, d)
}

// startRunSpan starts the span of one handler run as a child of the trace
// context stored in the event's headers (the receiver's publish), and
// returns the context the handler runs with. Tracing off: ctx itself.
func (r *Runner) startRunSpan(ctx context.Context, m *Message) context.Context {
	if !tracing.On() || m.msg == nil {
		return ctx
	}
	ctx, span := tracing.Start(tracing.Extract(ctx, m.msg.Headers()), trace.SpanKindConsumer, "handle ", string(m.Envelope.Source))
	if span.IsRecording() {
		span.SetAttributes(tracing.MessagingSystem.String("nats"), tracing.MessagingOperation.String("process"),
			tracing.MessagingDestination.String(r.cfg.Stream.Name), tracing.EventID.String(m.Envelope.ID),
			tracing.Source.String(string(m.Envelope.Source)), tracing.Module.String(m.Envelope.Module),
			tracing.Operation.String(m.Envelope.Operation), tracing.Partition.Int(m.Partition),
			tracing.Sequence.Int64(int64(m.Sequence)), tracing.Delivery.Int(m.Delivered), tracing.Attempt.Int(m.Attempt))
	}
	r.spans.Store(m, span)
	return ctx
}

// endRunSpan ends a handler run's span with the outcome observe reports.
func endRunSpan(span trace.Span, m *Message, outcome string) {
	span.SetAttributes(tracing.Outcome.String(outcome))
	if m.Report != nil && m.Report.Outcome != "" {
		span.SetAttributes(tracing.Result.String(m.Report.Outcome))
	}
	switch outcome {
	case OutcomeRetried, OutcomeDeadLettered:
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// logFor is r.log with the event's trace_id (from its headers) when
// tracing is on: every line about an event names its trace.
func (r *Runner) logFor(m *Message) *slog.Logger {
	if !tracing.On() || m.msg == nil {
		return r.log
	}
	return tracing.Logger(tracing.Extract(context.Background(), m.msg.Headers()), r.log)
}

// Held returns the partitions this process consumes now, sorted.
func (r *Runner) Held() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, 0, len(r.parts))
	for p := range r.parts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// growStack grows the calling goroutine's stack to 64 KiB in one step,
// while it is still shallow. A handler (rules, the Zoho client, JSON) needs
// about that much, and every event runs on a new goroutine: grown by
// doubling as calls deepen, each step copying the frames already in use,
// growth was 8-9% of a worker's CPU in a profile. Called only once a slot
// is held, so just the running handlers (-concurrency) hold such stacks,
// not the events waiting for a slot. The same trick as CockroachDB's
// util/growstack.
//
//go:noinline
func growStack(i int) byte {
	var buf [32 << 10]byte
	return buf[i&(len(buf)-1)]
}
