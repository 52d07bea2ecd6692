package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/zohook/zohook/internal/tracing"
)

// PublishResult tells, per envelope, whether JetStream stored it now or had
// already stored it (a duplicate within the duplicate window).
type PublishResult struct {
	ID        string
	Subject   string
	Sequence  uint64
	Duplicate bool
}

// attemptTimeout bounds one publish attempt; Publish retries within its
// overall timeout.
const attemptTimeout = 2 * time.Second

// Publisher writes envelopes to the events stream.
type Publisher struct {
	js         jetstream.JetStream
	stream     string
	partitions int
	timeout    time.Duration
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithPublishTimeout bounds how long Publish keeps retrying before it reports
// ErrUnavailable. Default 10s: long enough to ride out a stream leader
// election (4-6 s measured), short enough for Zoho's webhook timeout.
func WithPublishTimeout(d time.Duration) PublisherOption {
	return func(p *Publisher) { p.timeout = d }
}

// NewPublisher returns a Publisher for the stream described by cfg.
func NewPublisher(js jetstream.JetStream, cfg StreamConfig, opts ...PublisherOption) *Publisher {
	cfg = cfg.WithDefaults()
	p := &Publisher{js: js, stream: cfg.Name, partitions: cfg.Partitions, timeout: 10 * time.Second}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Publish stores every envelope and returns only when JetStream acknowledged
// all of them. Envelopes are published concurrently; each is retried with
// backoff until the publish timeout. If any envelope could not be stored the
// error wraps ErrUnavailable, and the results of the others are still
// returned: re-publishing them later is safe because their ids de-duplicate.
func (p *Publisher) Publish(ctx context.Context, envs []*Envelope) ([]PublishResult, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	results := make([]PublishResult, len(envs))
	errs := make([]error, len(envs))
	if len(envs) == 1 {
		results[0], errs[0] = p.publishOne(ctx, envs[0])
	} else {
		var wg sync.WaitGroup
		for i, e := range envs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = p.publishOne(ctx, e)
			}()
		}
		wg.Wait()
	}
	return results, errors.Join(errs...)
}

func (p *Publisher) publishOne(ctx context.Context, e *Envelope) (res PublishResult, err error) {
	// One producer span per event; its context travels in the headers, so
	// the worker's span for the event is its child (tracing off: no-op).
	ctx, span := tracing.Start(ctx, trace.SpanKindProducer, "publish ", p.stream)
	defer func() { endPublishSpan(span, p.stream, e, res, err) }()
	data, err := Encode(e)
	if err != nil {
		return PublishResult{}, err
	}
	subj := Subject(e, p.partitions)
	msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(e))
	tracing.Inject(ctx, msg.Header)

	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// Bound each attempt: a publish in flight to a node that dies would
		// otherwise use the whole timeout on one attempt.
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := p.js.PublishMsg(actx, msg, jetstream.WithExpectStream(p.stream))
		cancel()
		if err == nil {
			return PublishResult{ID: e.ID, Subject: subj, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return PublishResult{}, fmt.Errorf("%w: event %s is %d bytes: %v", ErrTooLarge, e.ID, len(data), err)
		}
		if isStoreFull(err) {
			// Retrying within a request cannot help: the backlog drains at
			// the workers' pace, minutes rather than seconds.
			return PublishResult{}, fmt.Errorf("%w: event %s: %v", ErrFull, e.ID, err)
		}
		if !retryablePublishError(err) {
			return PublishResult{}, fmt.Errorf("events: publish %s: %w", e.ID, err)
		}
		// Full jitter so many receivers do not hammer a recovering cluster in step.
		sleep := time.Duration(rand.Int64N(int64(wait))) + time.Millisecond
		select {
		case <-ctx.Done():
			return PublishResult{}, fmt.Errorf("%w: event %s not stored after %d attempts: %v", ErrUnavailable, e.ID, attempt, err)
		case <-time.After(sleep):
		}
		wait = min(wait*2, time.Second)
	}
}

// endPublishSpan ends publishOne's span: the event's id and kind and what
// JetStream said (never the event's values).
func endPublishSpan(span trace.Span, stream string, e *Envelope, res PublishResult, err error) {
	if span.IsRecording() {
		span.SetAttributes(tracing.MessagingSystem.String("nats"), tracing.MessagingOperation.String("send"),
			tracing.MessagingDestination.String(stream), tracing.EventID.String(e.ID),
			tracing.Source.String(string(e.Source)), tracing.Module.String(e.Module), tracing.Operation.String(e.Operation),
			tracing.Sequence.Int64(int64(res.Sequence)), tracing.Duplicate.Bool(res.Duplicate))
		if err != nil {
			span.SetStatus(codes.Error, "not stored")
		}
	}
	span.End()
}

// JetStream's error for a stream at its limits with discard new.
const errCodeStoreFull = 10077

func isStoreFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFull
}

// retryablePublishError: anything but a definite refusal by the stream
// (wrong stream, bad subject) may succeed on a later attempt.
func retryablePublishError(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500 && apiErr.Code != 408 {
		return false
	}
	return !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse)
}
