package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// OutcomeRecord is what a worker publishes after each handler run of an
// event: the index the console filters and pages (by outcome, module,
// record, time) without reading every event, and the attempts an operator
// looks at. One event has one record per run.
type OutcomeRecord struct {
	EventID    string        `json:"event_id"`
	Seq        uint64        `json:"seq"` // in the work stream
	Subject    string        `json:"subject"`
	Source     string        `json:"source"`
	Connection string        `json:"connection"`
	Module     string        `json:"module"`
	Operation  string        `json:"operation"`
	RecordID   string        `json:"record_id"`
	ReceivedAt time.Time     `json:"received_at"`
	Outcome    string        `json:"outcome"`          // acked, retried, dead_lettered, rate_limited, held
	Detail     string        `json:"detail,omitempty"` // the handler's word: done, no_rule, condition_false, self_caused, ...
	Reason     string        `json:"reason,omitempty"`
	Rules      []string      `json:"rules,omitempty"`
	Calls      int           `json:"calls"`
	Delivery   int           `json:"delivery"`
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	At         time.Time     `json:"at"`
	Worker     string        `json:"worker,omitempty"`
}

// Outcome stream defaults.
const (
	DefaultOutcomesStream = "ZOHOOK_OUTCOMES"
	OutcomeSubjectPrefix  = "zohook.outcome"
)

// OutcomesSpec is the outcome stream of the NATS layout: kept as long as
// the history it indexes.
func OutcomesSpec(replicas int, maxAge time.Duration, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DefaultOutcomesStream,
		Description: "zohook: the outcome of every handler run of every event (the console's index)",
		Subjects:    []string{OutcomeSubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}
}

// OutcomeSubject is where a record goes:
// zohook.outcome.<outcome>.<source>.<connection>.<module>.<operation>.<record>,
// so the console can ask for dead letters of one module, or every run of
// one record, with a subject filter.
func OutcomeSubject(r *OutcomeRecord) string {
	kind, sub, _ := strings.Cut(r.Source, ".")
	return strings.Join([]string{OutcomeSubjectPrefix, events.Token(r.Outcome), events.Token(kind), events.Token(sub),
		events.Token(r.Connection), events.Token(events.ModuleKey(r.Module)), events.Token(r.Operation), events.Token(r.RecordID)}, ".")
}

// Outcomes publishes outcome records without waiting for JetStream: they
// are an index, and an event's handling must not wait on (or fail
// because of) its bookkeeping. A record lost in a NATS outage is counted
// in the log, not retried.
type Outcomes struct {
	js     jetstream.JetStream
	worker string
	log    *slog.Logger
}

// NewOutcomes returns a publisher of outcome records naming worker.
func NewOutcomes(js jetstream.JetStream, worker string, log *slog.Logger) *Outcomes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outcomes{js: js, worker: worker, log: log}
}

// Record publishes one run's outcome.
func (o *Outcomes) Record(m *Message, outcome string, d time.Duration) {
	if o == nil || m.Envelope == nil || m.Envelope.ID == "" {
		return
	}
	env := m.Envelope
	r := OutcomeRecord{EventID: env.ID, Seq: m.Sequence, Subject: m.Subject, Source: string(env.Source), Connection: env.Connection,
		Module: env.Module, Operation: env.Operation, RecordID: env.RecordID, ReceivedAt: env.ReceivedAt,
		Outcome: outcome, Delivery: m.Delivered, Duration: d, At: time.Now().UTC(), Worker: o.worker}
	if m.Report != nil {
		r.Detail, r.Reason, r.Rules, r.Calls = m.Report.Outcome, m.Report.Reason, m.Report.Rules, m.Report.Calls
	}
	if m.err != nil {
		r.Error = m.err.Error()
		if len(r.Error) > 2000 {
			r.Error = r.Error[:2000] + "…"
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	msg := &nats.Msg{Subject: OutcomeSubject(&r), Data: b, Header: nats.Header{}}
	// One record per run: a run is (event, work sequence, delivery, outcome).
	msg.Header.Set(jetstream.MsgIDHeader, env.ID+"/"+strconv.FormatUint(m.Sequence, 10)+"/"+strconv.Itoa(m.Delivered)+"/"+strconv.Itoa(m.Attempt)+"/"+outcome)
	if _, err := o.js.PublishMsgAsync(msg); err != nil {
		o.log.Debug("outcome record not published", "event_id", env.ID, "err", err)
	}
}

// Flush waits (up to ctx) for published records to be acknowledged.
func (o *Outcomes) Flush(ctx context.Context) {
	if o == nil {
		return
	}
	select {
	case <-o.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
}
