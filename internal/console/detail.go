package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
)

// EventDetail is everything the console knows about one event: the
// envelope (secrets redacted), the rules that matched and why the others
// did not, each step with its journal state and the Zoho exchanges it
// made, every run and attempt.
type EventDetail struct {
	Event EventSummary `json:"event"`
	// InIndex: the event is in the console's index (else it was found as a
	// dead letter only).
	InIndex  bool            `json:"in_index"`
	Envelope json.RawMessage `json:"envelope"`
	// Record is the record snapshot the rules used (journaled once per event).
	Record json.RawMessage `json:"record,omitempty"`
	Rules  RulesView       `json:"rules"`
	Steps  []StepView      `json:"steps"`
	// Runs are the worker's outcome records of this event, oldest first.
	Runs []RunView `json:"runs"`
	// Attempts are the failed (and final) runs the journal keeps.
	Attempts   []worker.Attempt `json:"attempts,omitempty"`
	DeadLetter *DeadLetterView  `json:"dead_letter,omitempty"`
	// Timing: FirstRun and LastRun (start of the first run, end of the
	// last), Handling (the runs' durations added up) and Elapsed (received
	// to the end of the last run).
	FirstRun time.Time     `json:"first_run,omitzero"`
	LastRun  time.Time     `json:"last_run,omitzero"`
	Handling time.Duration `json:"handling_ns"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	// Related: other events of the same record, newest first.
	Related []EventSummary `json:"related,omitempty"`
	// Warnings: parts that could not be read (the rest is shown).
	Warnings []string `json:"warnings,omitempty"`
}

// RulesView says which rules ran and how the current rules judge the event.
type RulesView struct {
	Version string `json:"version,omitempty"`
	// Matched: the rules that matched at the last run (the worker's word).
	Matched []string `json:"matched_at_last_run,omitempty"`
	// Explanations: every rule of the current rules against this event and
	// its record snapshot.
	Explanations []Explanation `json:"explanations,omitempty"`
}

// Explanation is one rule's verdict on the event.
type Explanation struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	Stage   string `json:"stage,omitempty"` // where it stopped: disabled|source|module|operation|connection|changed|condition
	Reason  string `json:"reason,omitempty"`
}

// StepView is one step of a matched rule with its journal state.
type StepView struct {
	Rule   string `json:"rule"`
	Step   string `json:"step"`
	Key    string `json:"key"`
	Action string `json:"action"`
	// State: done, refused (Zoho refused it; not in doubt), in_doubt
	// (started, answer never recorded), not_run (no journal entry: its
	// when was false, the rule stopped before it, or it never ran).
	State    string          `json:"state"`
	Attempts int             `json:"attempts,omitempty"`
	At       time.Time       `json:"at,omitzero"`
	Started  time.Time       `json:"started,omitzero"`
	Calls    []CallView      `json:"calls,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
}

// CallView is one HTTP exchange with Zoho: the request as sent (secrets
// redacted) and Zoho's answer.
type CallView struct {
	API      string          `json:"api,omitempty"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Query    string          `json:"query,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	BodyText string          `json:"body_text,omitempty"`
	BodySize int             `json:"body_size,omitempty"`
	Status   int             `json:"status"`
	Code     string          `json:"code,omitempty"`
	Message  string          `json:"message,omitempty"`
	Duration time.Duration   `json:"duration_ns"`
	Attempt  int             `json:"attempt,omitempty"`
}

// RunView is one handler run as the worker reported it.
type RunView struct {
	At       time.Time     `json:"at"`
	Worker   string        `json:"worker,omitempty"`
	Delivery int           `json:"delivery"`
	Outcome  string        `json:"outcome"`
	Status   string        `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Rules    []string      `json:"rules,omitempty"`
	Calls    int           `json:"zoho_calls"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// ErrEventNotFound: neither the index nor the dead letters know the id.
var ErrEventNotFound = errors.New("event not found")

// Event assembles an event's detail.
func (c *Console) Event(ctx context.Context, id string) (*EventDetail, error) {
	d := &EventDetail{Steps: []StepView{}, Runs: []RunView{}}
	var env *events.Envelope
	if sum, ok := c.ix.Lookup(id); ok {
		d.Event, d.InIndex = sum, true
		raw, err := c.historyMsg(ctx, sum.Seq)
		switch {
		case err == nil:
			if env, err = events.Decode(raw); err != nil {
				d.Warnings = append(d.Warnings, "stored envelope: "+err.Error())
			}
			d.Envelope = redactJSON(raw)
		default:
			d.Warnings = append(d.Warnings, fmt.Sprintf("history message %d: %v", sum.Seq, err))
		}
	}
	dl, err := c.cfg.DLQ.Get(ctx, id)
	switch {
	case err == nil:
		v := c.deadLetterView(ctx, dl)
		d.DeadLetter = &v
		if env == nil && dl.Event != nil {
			env = dl.Event
			if b, err := json.Marshal(dl.Event); err == nil {
				d.Envelope = redactJSON(b)
			}
		}
	case !errors.Is(err, worker.ErrNotFound):
		d.Warnings = append(d.Warnings, "dead letters: "+err.Error())
	}
	if env == nil && !d.InIndex {
		return nil, fmt.Errorf("%w: %s", ErrEventNotFound, id)
	}
	if env != nil && !d.InIndex {
		d.Event = EventSummary{ID: env.ID, ReceivedAt: env.ReceivedAt, Source: string(env.Source), Connection: env.Connection,
			Module: env.Module, Operation: env.Operation, RecordID: env.RecordID, Status: StatusWaiting}
		if d.DeadLetter != nil {
			d.Event.Status = StatusDeadLettered
		}
	}
	rec, err := c.cfg.Journal.Get(ctx, id)
	if err != nil {
		d.Warnings = append(d.Warnings, "journal: "+err.Error())
	}
	var record map[string]any
	if rec != nil {
		record = rec.Record
		if rec.HasRecord {
			d.Record = redactMap(rec.Record)
		}
		d.Attempts = rec.Attempts
		for i := range d.Attempts {
			d.Attempts[i].Error = redactText(d.Attempts[i].Error)
		}
	}
	if env != nil {
		runs, err := c.outcomeRuns(ctx, env)
		if err != nil {
			d.Warnings = append(d.Warnings, "outcome records: "+err.Error())
		}
		d.Runs = runs
		d.Related = c.related(env)
	}
	for _, r := range d.Runs {
		if d.FirstRun.IsZero() || r.At.Add(-r.Duration).Before(d.FirstRun) {
			d.FirstRun = r.At.Add(-r.Duration)
		}
		d.LastRun = maxTime(d.LastRun, r.At)
		d.Handling += r.Duration
	}
	if len(d.Runs) == 0 && rec != nil {
		for _, a := range rec.Attempts {
			d.Handling += a.Duration
			d.LastRun = maxTime(d.LastRun, a.At)
		}
	}
	if !d.LastRun.IsZero() && !d.Event.ReceivedAt.IsZero() {
		d.Elapsed = d.LastRun.Sub(d.Event.ReceivedAt)
	}
	var set *rules.Set
	if c.cfg.Rules != nil {
		set = c.cfg.Rules.Current()
	}
	if len(d.Runs) > 0 {
		d.Rules.Matched = d.Runs[len(d.Runs)-1].Rules
	}
	if set != nil && env != nil {
		d.Rules.Version = set.Version()
		for _, x := range set.Explain(engine.ToRulesEvent(env), record) {
			d.Rules.Explanations = append(d.Rules.Explanations, Explanation{Rule: x.Rule, Matched: x.Matched, Stage: x.Stage, Reason: x.Reason})
		}
	}
	d.Steps = stepViews(set, d.Rules, rec)
	return d, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// stepViews lists the steps of the rules that matched (at the last run, or
// now), in file order, then any journaled step those rules no longer have.
func stepViews(set *rules.Set, rv RulesView, rec *worker.EventRecord) []StepView {
	out := []StepView{}
	var steps map[string]*worker.StepRecord
	if rec != nil {
		steps = rec.Steps
	}
	shown := map[string]bool{}
	matched := slices.Clone(rv.Matched)
	if len(matched) == 0 {
		for _, x := range rv.Explanations {
			if x.Matched {
				matched = append(matched, x.Rule)
			}
		}
	}
	if set != nil {
		for _, r := range set.Rules() {
			if !slices.Contains(matched, r.Name) {
				continue
			}
			for _, s := range r.Steps {
				key := s.Key(r.Name)
				shown[key] = true
				name := s.ID
				if name == "" {
					name = fmt.Sprintf("#%d", s.Index)
				}
				out = append(out, stepView(r.Name, name, key, s.Action, steps[key]))
			}
		}
	}
	var rest []string
	for k := range steps {
		if !shown[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		rule, step := k, ""
		if i := strings.LastIndex(k, "/"); i >= 0 {
			rule, step = k[:i], k[i+1:]
		}
		out = append(out, stepView(rule, step, k, steps[k].Action, steps[k]))
	}
	return out
}

func stepView(rule, step, key, action string, s *worker.StepRecord) StepView {
	v := StepView{Rule: rule, Step: step, Key: key, Action: action, State: "not_run"}
	if s == nil {
		return v
	}
	v.Attempts, v.At, v.Started = s.Attempts, s.At, s.Started
	switch s.State {
	case worker.StepStarted:
		v.State = "in_doubt"
	default:
		v.State = s.State
	}
	if s.Action != "" {
		v.Action = s.Action
	}
	if s.Output != nil {
		out := redactMap(s.Output)
		if len(out) > maxShownOutput {
			b, _ := json.Marshal(string(out[:maxShownOutput]) + "\n… (truncated)")
			out = b
		}
		v.Output = out
	}
	v.Calls = callViews(s.Calls)
	return v
}

// maxShownOutput bounds a step output on the page (COQL answers can be large).
const maxShownOutput = 32 << 10

func callViews(raw json.RawMessage) []CallView {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var calls []worker.CallRecord
	if err := json.Unmarshal(raw, &calls); err != nil {
		return []CallView{{Method: "?", Path: "(unreadable exchange record)", Body: redactJSON(raw)}}
	}
	out := make([]CallView, 0, len(calls))
	for _, c := range calls {
		v := CallView{API: c.API, Method: c.Method, Path: c.Path, Query: redactQuery(c.Query), BodySize: c.BodySize,
			Status: c.Status, Code: c.Code, Message: c.Message, Duration: c.Duration, Attempt: c.Attempt}
		if len(c.Body) > 0 {
			v.Body = redactJSON(c.Body)
		}
		if c.BodyText != "" {
			v.BodyText = redactText(c.BodyText)
		}
		out = append(out, v)
	}
	return out
}

// historyMsg reads one message of the history stream.
func (c *Console) historyMsg(ctx context.Context, seq uint64) ([]byte, error) {
	st, err := c.cfg.JS.Stream(ctx, c.cfg.Stream.HistoryName)
	if err != nil {
		return nil, err
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// maxRunsRead bounds the outcome records read for one event page.
const maxRunsRead = 5000

// outcomeRuns reads the outcome records of env's record (the record id is
// a subject token, so JetStream reads only those) since it was received,
// and keeps env's.
func (c *Console) outcomeRuns(ctx context.Context, env *events.Envelope) ([]RunView, error) {
	filter := worker.OutcomeSubjectPrefix + ".*.*.*." + events.Token(env.Connection) + "." + events.Token(events.ModuleKey(env.Module)) +
		".*." + events.Token(env.RecordID)
	start := env.ReceivedAt.Add(-time.Minute)
	runs := []RunView{}
	err := readStream(ctx, c.cfg.JS, worker.DefaultOutcomesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
	}, maxRunsRead, func(m jetstream.Msg) {
		var r worker.OutcomeRecord
		if json.Unmarshal(m.Data(), &r) != nil || r.EventID != env.ID {
			return
		}
		runs = append(runs, RunView{At: r.At, Worker: r.Worker, Delivery: r.Delivery, Outcome: r.Outcome, Status: statusNames[statusCode(r.Outcome, r.Detail)],
			Detail: r.Detail, Reason: r.Reason, Rules: r.Rules, Calls: r.Calls, Error: redactText(r.Error), Duration: r.Duration})
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return runs, nil
	}
	slices.SortStableFunc(runs, func(a, b RunView) int { return a.At.Compare(b.At) })
	return runs, err
}

// related lists other events of env's record from the index.
func (c *Console) related(env *events.Envelope) []EventSummary {
	p := c.ix.List(Filter{RecordID: env.RecordID, Connection: env.Connection, Module: env.Module}, 0, 0, 11)
	out := []EventSummary{}
	for _, e := range p.Events {
		if e.ID != env.ID && len(out) < 10 {
			out = append(out, e)
		}
	}
	return out
}

// readStream reads a stream through an ordered consumer up to its end as
// it is now (at most limit messages), calling fn for each.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, limit int, fn func(jetstream.Msg)) error {
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return err
	}
	left := info.NumPending
	read := 0
	for left > 0 && read < limit {
		batch, err := cons.Fetch(int(min(left, 256, uint64(limit-read))), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			read++
			if meta, err := m.Metadata(); err == nil {
				left = meta.NumPending
			}
			fn(m)
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			break
		}
	}
	return nil
}
