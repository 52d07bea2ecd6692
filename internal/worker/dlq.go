package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// DeadLetter is what the dead-letter stream keeps about an event that will
// not be retried: the event itself and why it died.
type DeadLetter struct {
	Event      *events.Envelope `json:"event"` // nil for a stored message that was not a valid envelope (see Raw)
	Rule       string           `json:"rule,omitempty"`
	Step       string           `json:"step,omitempty"`
	Action     string           `json:"action,omitempty"`
	Error      string           `json:"error"`
	Permanent  bool             `json:"permanent"`   // false: it ran out of deliveries
	Attempts   int              `json:"attempts"`    // deliveries it had
	Subject    string           `json:"subject"`     // where it lived in the events stream
	StreamSeq  uint64           `json:"stream_seq"`  // its sequence there
	ReceivedAt time.Time        `json:"received_at"` // when the receiver got it
	DeadAt     time.Time        `json:"dead_at"`
	Sequence   uint64           `json:"-"` // sequence in the DLQ stream (filled on read)
	// Raw: the stored bytes of a message that was not a valid envelope.
	Raw []byte `json:"raw,omitempty"`
}

// ID names the dead letter: its event's id, or "seq-N" for a raw message.
func (dl *DeadLetter) ID() string {
	if dl.Event != nil {
		return dl.Event.ID
	}
	return "seq-" + strconv.FormatUint(dl.StreamSeq, 10)
}

// DLQConfig configures the dead-letter stream. Zero fields take defaults.
type DLQConfig struct {
	// Stream name. Default "ZOHOOK_DLQ".
	Stream string
	// MaxAge of dead letters. Default DefaultDLQMaxAge (90 days): long
	// enough to notice and fix.
	MaxAge time.Duration
	// Replicas. Default 1.
	Replicas int
}

const dlqSubjectPrefix = "zohook.dlq."

// DefaultDLQMaxAge is how long dead letters are kept by default. The step
// journal must keep its entries at least as long (JournalTTL): a dead letter
// replayed after its journal entries expired would repeat its done steps.
const DefaultDLQMaxAge = 90 * 24 * time.Hour

// JournalTTL is the journal TTL that covers both ways an event comes back:
// a replay from the events stream (streamMaxAge) and a dead-letter replay.
func JournalTTL(streamMaxAge time.Duration) time.Duration {
	return max(streamMaxAge, DefaultDLQMaxAge)
}

// DLQ stores dead letters in their own stream, one subject per event id
// (keeping the latest dead letter of an event), and replays them.
type DLQ struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string
	events *events.Publisher
}

var _ DeadLetterer = (*DLQ)(nil)

// ErrNotAnEvent: the dead letter holds a stored message that was not a
// valid envelope; there is nothing to replay.
var ErrNotAnEvent = errors.New("the dead letter is not a valid event (its stored bytes are kept for inspection); it cannot be replayed")

// ErrNotFound: no dead letter has that id.
var ErrNotFound = errors.New("dead letter not found")

// OpenDLQ creates or updates the dead-letter stream. pub republishes
// replayed events into the events stream.
func OpenDLQ(ctx context.Context, js jetstream.JetStream, cfg DLQConfig, pub *events.Publisher) (*DLQ, error) {
	spec := DLQSpec(cfg)
	if _, err := events.EnsureStream(ctx, js, spec, events.CreateMissing); err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	s, err := js.Stream(ctx, spec.Name)
	if err != nil {
		return nil, fmt.Errorf("dlq stream %s: %w", spec.Name, err)
	}
	return &DLQ{js: js, stream: s, name: spec.Name, events: pub}, nil
}

// DLQSpec is the dead-letter stream of the NATS layout.
func DLQSpec(cfg DLQConfig) jetstream.StreamConfig {
	if cfg.Stream == "" {
		cfg.Stream = DefaultDLQStream
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultDLQMaxAge
	}
	return jetstream.StreamConfig{
		Name:              cfg.Stream,
		Description:       "zohook dead letters: events that failed permanently or ran out of deliveries",
		Subjects:          []string{dlqSubjectPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxAge:            cfg.MaxAge,
		Replicas:          max(cfg.Replicas, 1),
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	}
}

// DefaultDLQStream is the dead-letter stream's name.
const DefaultDLQStream = "ZOHOOK_DLQ"

// DeadLetter stores m with its cause. Only after JetStream acknowledged it
// does the Runner ack the event in the main stream: nothing is dropped.
func (d *DLQ) DeadLetter(ctx context.Context, m *Message, cause error) error {
	attempts := m.Delivered
	if m.entry != nil {
		attempts = max(m.entry.Failures(), 1)
	}
	dl := DeadLetter{
		Event: m.Envelope, Error: errString(cause), Permanent: IsPermanent(cause), Attempts: attempts,
		Subject: m.Subject, StreamSeq: m.Sequence, ReceivedAt: m.Envelope.ReceivedAt, DeadAt: time.Now().UTC(),
	}
	var f *Failure
	if errors.As(cause, &f) {
		dl.Rule, dl.Step, dl.Action = f.Rule, f.Step, f.Action
	}
	return d.store(ctx, &dl, m.Sequence)
}

// DeadLetterRaw stores a message of the work stream that is not a valid
// envelope (it cannot be replayed; its bytes are kept for a human).
func (d *DLQ) DeadLetterRaw(ctx context.Context, subject string, seq uint64, data []byte, cause error) error {
	dl := DeadLetter{Raw: data, Error: errString(cause), Permanent: true, Attempts: 1, Subject: subject, StreamSeq: seq, DeadAt: time.Now().UTC()}
	return d.store(ctx, &dl, seq)
}

func (d *DLQ) store(ctx context.Context, dl *DeadLetter, seq uint64) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("dlq encode: %w", err)
	}
	id := dl.ID()
	msg := &nats.Msg{Subject: dlqSubjectPrefix + events.Token(id), Data: b, Header: nats.Header{}}
	// One dead letter per delivery sequence: a retried DeadLetter call after a
	// lost ack does not store it twice.
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq/%s/%d", id, seq))
	if _, err := d.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(d.name)); err != nil {
		return fmt.Errorf("dlq publish: %w", err)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "unknown"
	}
	return err.Error()
}

// List yields the dead letters, oldest first.
func (d *DLQ) List(ctx context.Context) iter.Seq2[*DeadLetter, error] {
	return func(yield func(*DeadLetter, error) bool) {
		info, err := d.stream.Info(ctx)
		if err != nil {
			yield(nil, fmt.Errorf("dlq info: %w", err))
			return
		}
		if info.State.Msgs == 0 {
			return
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			raw, err := d.stream.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // superseded or removed
			}
			if err != nil {
				yield(nil, fmt.Errorf("dlq get %d: %w", seq, err))
				return
			}
			dl, err := decodeDeadLetter(raw)
			if !yield(dl, err) {
				return
			}
		}
	}
}

// Get returns the dead letter of an event id.
func (d *DLQ) Get(ctx context.Context, eventID string) (*DeadLetter, error) {
	raw, err := d.stream.GetLastMsgForSubject(ctx, dlqSubjectPrefix+events.Token(eventID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, eventID)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq get %s: %w", eventID, err)
	}
	return decodeDeadLetter(raw)
}

func decodeDeadLetter(raw *jetstream.RawStreamMsg) (*DeadLetter, error) {
	var dl DeadLetter
	if err := json.Unmarshal(raw.Data, &dl); err != nil {
		return nil, fmt.Errorf("dlq entry %d: %w", raw.Sequence, err)
	}
	dl.Sequence = raw.Sequence
	return &dl, nil
}

// Replay re-publishes the event into the events stream (a new message id,
// the same event id, so journaled steps are not repeated and the current
// rules run the rest), then removes the dead letter. If the removal fails the
// event may be replayed twice; its journal keeps the effects single.
func (d *DLQ) Replay(ctx context.Context, eventID string) error {
	dl, err := d.Get(ctx, eventID)
	if err != nil {
		return err
	}
	if dl.Event == nil {
		return fmt.Errorf("replay %s: %w", eventID, ErrNotAnEvent)
	}
	ev := *dl.Event
	ev.Replay = time.Now().UnixNano()
	if _, err := d.events.Publish(ctx, []*events.Envelope{&ev}); err != nil {
		return fmt.Errorf("replay %s: %w", eventID, err)
	}
	if err := d.stream.DeleteMsg(ctx, dl.Sequence); err != nil {
		// The replayed event may already have failed again: its new dead
		// letter replaced this one (one per event), so it is gone, which
		// is all the deletion was for.
		if _, gerr := d.stream.GetMsg(ctx, dl.Sequence); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return nil
		}
		return fmt.Errorf("replay %s: republished, but removing the dead letter failed: %w", eventID, err)
	}
	return nil
}

// Operator decisions for ReplayInDoubt.
const (
	InDoubtDone   = "done"   // Zoho carried the step out: record it as done
	InDoubtResend = "resend" // it did not: send it again
)

// ErrNotInDoubt: the dead letter's step is not in doubt (never started,
// already done, or refused by Zoho), so there is nothing to decide.
var ErrNotInDoubt = errors.New("step is not in doubt")

// ReplayInDoubt replays a dead letter whose step was in doubt (a step with
// in_doubt: dead_letter that was interrupted after it may have reached
// Zoho), once an operator has checked Zoho: InDoubtDone records the step as
// carried out without sending it (later steps that read its output get
// only {"in_doubt": "done by operator"}); InDoubtResend lets it be sent.
func (d *DLQ) ReplayInDoubt(ctx context.Context, j *Journal, eventID, decision string) error {
	if decision != InDoubtDone && decision != InDoubtResend {
		return fmt.Errorf("in-doubt decision %q: want %s or %s", decision, InDoubtDone, InDoubtResend)
	}
	dl, err := d.Get(ctx, eventID)
	if err != nil {
		return err
	}
	if dl.Rule == "" || dl.Step == "" {
		return fmt.Errorf("replay %s: %w: the dead letter names no step", eventID, ErrNotInDoubt)
	}
	if err := j.decide(ctx, eventID, dl.Rule+"/"+dl.Step, decision); err != nil {
		return fmt.Errorf("replay %s: %w", eventID, err)
	}
	return d.Replay(ctx, eventID)
}
