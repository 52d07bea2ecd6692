package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// Message is one delivered event.
type Message struct {
	Envelope  *events.Envelope
	Subject   string
	Sequence  uint64 // stream sequence
	Delivered int    // 1 on first delivery
	// Attempt counts handler runs within this delivery (the Runner retries
	// rate-limited failures in-process); 1 on the first.
	Attempt   int
	Partition int
	msg       jetstream.Msg
	// retryAt: when JetStream redelivers it after a nak for a retry; its
	// record's queued events are released after it at shutdown.
	retryAt time.Time
	// journal and entry: the event's journal entry, loaded once per handler
	// run (Entry).
	journal *Journal
	entry   *Entry
	// Report: what the handler says about its run (rules matched, why
	// skipped), for the outcome record and the console. Optional.
	Report *Report
	// err: the run's error, for the outcome record.
	err error
	// received: when this delivery reached the process.
	received time.Time
}

// Report is what a handler tells about one run of an event.
type Report struct {
	// Outcome refines "acked": done, no_rule, condition_false,
	// self_caused, record_missing, ... (the handler's words).
	Outcome string `json:"outcome,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Rules that matched the event.
	Rules []string `json:"rules,omitempty"`
	// Calls: Zoho calls actually sent in this run.
	Calls int `json:"calls"`
}

// NewMessage builds a message for handlers run outside a Runner (tests,
// dry runs): j may be nil (no journal).
func NewMessage(env *events.Envelope, j *Journal) *Message {
	return &Message{Envelope: env, Delivered: 1, Attempt: 1, journal: j}
}

// ErrNoJournal: the message was not delivered with a journal.
var ErrNoJournal = errors.New("worker: message has no journal")

// Entry returns the event's journal entry, reading it on first use in a
// handler run.
func (m *Message) Entry(ctx context.Context) (*Entry, error) {
	if m.entry != nil {
		return m.entry, nil
	}
	if m.journal == nil {
		return nil, ErrNoJournal
	}
	e, err := m.journal.Load(ctx, m.Envelope.ID)
	if err != nil {
		return nil, err
	}
	m.entry = e
	return e, nil
}

// InProgress tells JetStream the event is still being worked on, resetting
// its ack timer. The Runner already does this periodically.
func (m *Message) InProgress() error {
	if m.msg == nil {
		return nil
	}
	return m.msg.InProgress()
}

// Handler processes one event. Returning nil acknowledges it.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// Middleware wraps a Handler.
type Middleware func(Handler) Handler

// Chain applies middlewares so that the first one listed is the outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// ErrPermanent marks failures that retrying cannot fix (a rule error, Zoho
// refusing the data). Wrap it, or implement Permanent() bool.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the Runner dead-letters the event at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// IsPermanent reports whether err must not be retried.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrPermanent) {
		return true
	}
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// RetryAfter extracts a wait the failure asked for (for example Zoho's
// rate-limit reset), or 0.
func RetryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// IsRateLimited reports failures caused by a rate limit (Zoho's 429, Books
// code 44): the Runner waits and retries them in-process instead of spending
// the event's deliveries. Errors say so with a RateLimited() bool method.
func IsRateLimited(err error) bool {
	var rl interface{ RateLimited() bool }
	return errors.As(err, &rl) && rl.RateLimited()
}
