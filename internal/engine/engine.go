package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/rules/ruleevent"
	"github.com/zohook/zohook/internal/tracing"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// RuleSource yields the current rule set; *rules.Watcher implements it.
type RuleSource interface {
	Current() *rules.Set
}

// Actors gives the Zoho actor of a connection.
type Actors interface {
	For(connection string) (Actor, error)
}

// StaticActors maps connection names to actors.
type StaticActors map[string]Actor

// For returns the actor of a connection.
func (s StaticActors) For(connection string) (Actor, error) {
	if a, ok := s[connection]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no Zoho connection named %q is configured", connection)
}

// Config configures an Engine.
type Config struct {
	Rules  RuleSource // required
	Actors Actors     // required
	// Loops prevents self-triggering; nil disables it.
	Loops    *LoopGuard
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Engine is the worker.Handler that runs the rules.
type Engine struct {
	cfg Config
	log *slog.Logger
	obs *metrics
}

var _ worker.Handler = (*Engine)(nil)

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Rules == nil || cfg.Actors == nil {
		return nil, errors.New("engine: Rules and Actors are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, log: cfg.Logger, obs: newMetrics(cfg.Registry)}, nil
}

// Observer returns the engine's metrics as a worker.Observer (nil without a
// registry).
func (e *Engine) Observer() worker.Observer {
	if e.obs == nil {
		return nil
	}
	return e.obs
}

// RulesReloaded records a reload in the metrics; wire it to the watcher.
// A failure is not logged here: the watcher already logged it once, with
// the file's real name and every problem (a second line per bad save, with
// a made-up file name, only confused).
func (e *Engine) RulesReloaded(set *rules.Set, err error) {
	e.obs.reload(err == nil)
	if err != nil {
		return
	}
	e.log.Info("rules loaded", "file", set.File(), "version", set.Version(), "rules", len(set.Rules()), "warnings", len(set.Warnings()))
	for _, w := range set.Warnings() {
		e.log.Warn("rules warning", "problem", w.String())
	}
}

// ToRulesEvent converts an envelope into what rules see.
func ToRulesEvent(env *events.Envelope) *rules.Event { return ruleevent.FromEnvelope(env) }

// Handle runs every matching rule on the event.
func (e *Engine) Handle(ctx context.Context, m *worker.Message) error {
	set := e.cfg.Rules.Current()
	ev := ToRulesEvent(m.Envelope)
	log := tracing.Logger(ctx, e.log).With("event_id", ev.ID, "rules_version", set.Version())
	matched := set.Match(ev)
	rep := &worker.Report{Outcome: "no_rule"}
	m.Report = rep
	if len(matched) == 0 {
		log.Debug("no rule matches", "source", ev.Source, "module", ev.Module, "operation", ev.Operation)
		e.obs.skip("no_rule")
		return nil
	}
	for _, r := range matched {
		rep.Rules = append(rep.Rules, r.Name)
	}
	actor, err := e.cfg.Actors.For(connectionOf(ev))
	if err != nil {
		return worker.Permanent(err)
	}
	// Two reads at once, one wait: the event's journal (one read for the
	// whole event; its writes claim the event, see worker.Journal) and the
	// loop guard's state of the record (CRM notifications only).
	var rs *RecordState
	var rsErr error
	rsDone := make(chan struct{})
	if e.cfg.Loops != nil && ev.Source == rules.SourceCRMNotify {
		go func() {
			defer close(rsDone)
			rs, rsErr = e.cfg.Loops.Read(ctx, connectionOf(ev), ev.Module, ev.RecordID)
		}()
	} else {
		close(rsDone)
	}
	entry, err := m.Entry(ctx)
	<-rsDone
	if err != nil {
		return err
	}
	if rsErr != nil {
		return rsErr
	}
	defer rs.Flush()
	change, reconciled := changeOf(m.Envelope)
	if other := rs.HandledElsewhere(change, reconciled, ev.ID); other != "" {
		// One CRM change, found by reconciliation and notified too: it was
		// handled as the other event.
		log.Info("this change was already handled as another event (notified and reconciled); rules skipped",
			"other_event_id", other, "module", ev.Module, "record_id", ev.RecordID)
		e.obs.skip("duplicate_change")
		rep.Outcome, rep.Reason = "duplicate", "the same change was handled as event "+other
		return nil
	}
	x := &executor{eventID: ev.ID, connection: connectionOf(ev), actor: actor,
		journal: entry, loops: e.cfg.Loops, log: log, obs: e.obs,
		own: rs, ownModule: events.ModuleKey(ev.Module), ownID: ev.RecordID}
	defer func() { rep.Calls = x.calls }()

	record, err := e.loadRecord(ctx, x, entry, set, matched, ev)
	missing := false
	if err != nil {
		if !errors.Is(err, rules.ErrRecordMissing) {
			return err
		}
		// Deleted since the notification (edit-then-delete is everyday
		// traffic): each rule that needs the record follows its on_missing.
		missing = true
	}
	if self, err := e.selfCaused(ctx, ev, m.Envelope, rs, record, actor); err != nil {
		return err
	} else if self {
		log.Info("event caused by zohook's own write; rules skipped", "module", ev.Module, "record_id", ev.RecordID)
		e.obs.skip("self_caused")
		rep.Outcome, rep.Reason = "self_caused", "zohook's own write caused this notification"
		rs.Handled(change, reconciled, ev.ID)
		return nil
	}

	rep.Outcome = "done"
	ran := 0
	var retryErr, permErr error
	for _, r := range matched {
		e.obs.match(r.Name)
		rlog := log.With("rule", r.Name)
		if missing && r.LoadRecord {
			if r.OnMissing == rules.OnMissingDeadLetter {
				rep.Outcome = "failed"
				permErr = errors.Join(permErr, worker.Permanent(&worker.Failure{Rule: r.Name, Step: "_load", Action: "load record", Err: err}))
				rlog.Warn("the event's record does not exist in Zoho; on_missing: dead_letter", "module", ev.Module, "record_id", ev.RecordID)
				continue
			}
			rlog.Info("the event's record no longer exists in Zoho; rule skipped (on_missing: skip)", "module", ev.Module, "record_id", ev.RecordID)
			e.obs.skip("record_missing")
			if rep.Outcome == "done" {
				rep.Outcome, rep.Reason = "record_missing", "the record no longer exists in Zoho"
			}
			continue
		}
		rctx, span := tracing.Start(ctx, trace.SpanKindInternal, "rule ", r.Name)
		res, err := r.Run(rctx, rules.Input{Event: ev, Record: record}, ruleExecutor{x: x, log: rlog})
		endRuleSpan(span, r.Name, res, err)
		if errors.Is(err, worker.ErrClaimed) {
			// Another process runs this event: stop here, send nothing more.
			return err
		}
		if err != nil {
			rep.Outcome = "failed"
			f := toFailure(r.Name, err)
			if errors.Is(err, rules.ErrEvaluation) || worker.IsPermanent(err) {
				permErr = errors.Join(permErr, worker.Permanent(f))
			} else {
				retryErr = errors.Join(retryErr, f)
			}
			rlog.Warn("rule failed", "err", err)
			continue
		}
		if !res.ConditionFalse {
			ran++
		}
		for _, sr := range res.Steps {
			switch sr.Outcome {
			case rules.OutcomeFailedSkipped, rules.OutcomeStopped, rules.OutcomeMissing:
				// Zoho's answer, not just a count: the step was given up.
				rlog.Warn("step failed; "+map[string]string{rules.OutcomeFailedSkipped: "skipped (on_failure: skip)",
					rules.OutcomeStopped: "rule stopped (on_failure: stop)", rules.OutcomeMissing: "its record is gone; rule stopped (on_missing: skip)"}[sr.Outcome],
					append([]any{"step", sr.Key, "action", sr.Action}, zohoFields(x.lastErr[sr.Key])...)...)
				if sr.Outcome == rules.OutcomeMissing {
					e.obs.skip("record_missing")
				}
			}
		}
		rlog.Info("rule done", "result", summary(res, x))
	}
	if ran == 0 && rep.Outcome == "done" {
		rep.Outcome, rep.Reason = "condition_false", "every matching rule's when was false"
	}
	if rep.Outcome == "done" && x.calls == 0 && x.journaled > 0 {
		rep.Outcome, rep.Reason = "replayed", "every step was done earlier (from the journal); nothing sent"
	}
	if retryErr != nil {
		// Retry the whole event: rules that succeeded have every step
		// journaled and do not repeat anything.
		return retryErr
	}
	// Settled (done or dead-lettered): the same change arriving through
	// the other path is not handled again.
	rs.Handled(change, reconciled, ev.ID)
	return permErr
}

// changeOf is when the event's CRM change happened, and whether
// reconciliation (rather than a notification) found it.
func changeOf(env *events.Envelope) (time.Time, bool) {
	if env.Source != events.SourceCRMNotify || env.ServerTime <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(env.ServerTime), env.ChannelID == events.ReconcileChannelID
}

// toFailure keeps the rule/step/action for the dead-letter record.
func toFailure(rule string, err error) *worker.Failure {
	var se *rules.StepError
	if errors.As(err, &se) {
		// se.Err, not err: Failure names the rule, step and action itself.
		return &worker.Failure{Rule: se.Rule, Step: se.Step, Action: se.Action, Err: se.Err}
	}
	return &worker.Failure{Rule: rule, Err: err}
}

// ruleExecutor adapts the journaled executor to rules.Executor.
type ruleExecutor struct {
	x   *executor
	log *slog.Logger
}

func (r ruleExecutor) Execute(ctx context.Context, call rules.Call) (map[string]any, error) {
	out, err := r.execute(ctx, call)
	if err != nil {
		if r.x.lastErr == nil {
			r.x.lastErr = map[string]error{}
		}
		r.x.lastErr[call.Key] = err
	}
	return out, err
}

func (r ruleExecutor) execute(ctx context.Context, call rules.Call) (map[string]any, error) {
	// Rules of one event run one after another, so swapping the logger is safe.
	saved := r.x.log
	r.x.log = r.log
	defer func() { r.x.log = saved }()
	ctx, span := tracing.Start(ctx, trace.SpanKindInternal, "step ", call.Action)
	sent := r.x.calls
	out, err := r.x.execute(ctx, call.Key, call.Action, call.Inputs, call.InDoubt)
	endStepSpan(span, call, r.x.calls > sent, err)
	if err != nil && !worker.IsPermanent(err) {
		// Only a refusal may be skipped or stop the rule (on_failure): a
		// rate limit, 5xx, timeout or journal failure retries the event.
		err = rules.Transient(err)
	}
	return out, err
}

func connectionOf(ev *rules.Event) string {
	if ev.Connection == "" {
		return "default"
	}
	return ev.Connection
}

// loadRecord loads the event's record once for all matched rules, with the
// union of the fields they need. It uses the values that came with the
// event when they cover those fields, and journals the loaded record so a
// redelivered event sees the same snapshot its earlier steps used.
func (e *Engine) loadRecord(ctx context.Context, x *executor, entry *worker.Entry, set *rules.Set, matched []*rules.Rule, ev *rules.Event) (map[string]any, error) {
	load, fields := set.RecordNeeds(matched)
	if !load || ev.Operation == events.OpDelete {
		return ev.Values, nil
	}
	if len(fields) > 0 && covers(ev.Values, fields) {
		return ev.Values, nil
	}
	if rec, ok := entry.Record(); ok && covers(rec, fields) {
		// An earlier run of this event loaded it: its steps used this
		// snapshot, so the rest of them must too.
		return rec, nil
	}
	var action string
	in := map[string]any{"id": ev.RecordID}
	switch ev.Source {
	case rules.SourceBooksWebhook:
		action = "books.get_record"
		in["entity"] = booksCollection(ev.Module)
	default:
		action = "crm.get_record"
		in["module"] = ev.Module
		if len(fields) > 0 {
			fields = append(slices.Clone(fields), "Modified_Time")
			in["fields"] = fields
		}
	}
	start := time.Now()
	var exch zoho.Exchanges
	out, err := x.actor.RunAction(zoho.WithExchanges(ctx, &exch), action, in)
	x.calls++
	x.obs.zohoCall(action, err, time.Since(start), exch.List())
	if err != nil {
		return nil, &worker.Failure{Rule: "(load record)", Step: "_load", Action: action, Err: classify(err)}
	}
	rec, ok := out["record"].(map[string]any)
	if !ok {
		if rec, ok = out[ev.Module].(map[string]any); !ok { // Books: {"invoice": {...}}
			rec = out
		}
	}
	// Journaled with the event's first write (the snapshot matters only
	// once a step used it): no round trip of its own.
	entry.SetRecord(rec)
	return rec, nil
}

func covers(values map[string]any, fields []string) bool {
	for _, f := range fields {
		if _, ok := values[f]; !ok {
			return false
		}
	}
	return true
}

// booksCollection turns a Books webhook entity ("invoice") into its API
// collection ("invoices").
func booksCollection(entity string) string {
	switch entity {
	case "payment", "customerpayment":
		return "customerpayments"
	}
	if strings.HasSuffix(entity, "s") {
		return entity
	}
	return entity + "s"
}

func (e *Engine) selfCaused(ctx context.Context, ev *rules.Event, env *events.Envelope, rs *RecordState, record map[string]any, actor Actor) (bool, error) {
	// Only notifications loop: they report every write, while zohook's
	// writes fire no workflow (trigger: []) and so no workflow webhook.
	if rs == nil || ev.Operation != events.OpUpdate || ev.Source != rules.SourceCRMNotify {
		return false, nil
	}
	current := func(ctx context.Context) (string, error) {
		out, err := actor.RunAction(ctx, "crm.get_record", map[string]any{"module": ev.Module, "id": ev.RecordID, "fields": []any{"Modified_Time"}})
		if err != nil {
			return "", classify(err)
		}
		rec, _ := out["record"].(map[string]any)
		s, _ := rec["Modified_Time"].(string)
		return s, nil
	}
	n := Notification{Changed: ev.ChangedFields, Values: ev.Values}
	if env.ServerTime > 0 {
		n.ServerTime = time.UnixMilli(env.ServerTime)
	}
	return rs.SelfCaused(ctx, n, record, current)
}

// summary says in a few words what a rule did, for the log: steps that
// came from the journal say so (nothing was sent for them).
func summary(res *rules.Result, x *executor) string {
	if res.ConditionFalse {
		return "condition false"
	}
	fromJournal := x.takeJournaled()
	counts := map[string]int{}
	for _, s := range res.Steps {
		counts[s.Outcome]++
	}
	parts := make([]string, 0, len(counts))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	out := strings.Join(parts, ", ")
	if fromJournal > 0 {
		out += fmt.Sprintf(" (%d replayed from the journal, not sent again)", fromJournal)
	}
	if res.Stopped {
		out += " (stopped)"
	}
	return out
}

// endRuleSpan ends a rule's span with what the rule did (names only).
func endRuleSpan(span trace.Span, rule string, res *rules.Result, err error) {
	if span.IsRecording() {
		outcome := "done"
		switch {
		case err != nil:
			outcome = "failed"
			span.SetStatus(codes.Error, "rule failed")
		case res.ConditionFalse:
			outcome = "condition_false"
		case res.Stopped, res.Missing:
			outcome = "stopped"
		}
		span.SetAttributes(tracing.Rule.String(rule), tracing.Outcome.String(outcome))
	}
	span.End()
}

// endStepSpan ends a step's span: journaled when it came from the
// journal (nothing sent to Zoho), refused when Zoho refused it, retry
// when the event will be retried for it. Never its inputs or outputs.
func endStepSpan(span trace.Span, call rules.Call, sent bool, err error) {
	if span.IsRecording() {
		outcome := "ok"
		switch {
		case err != nil && worker.IsPermanent(err):
			outcome = "refused"
		case err != nil:
			outcome = "retry"
		case !sent:
			outcome = "journaled"
		}
		if err != nil {
			span.SetStatus(codes.Error, "step "+outcome)
		}
		span.SetAttributes(tracing.Rule.String(call.Rule), tracing.Step.String(call.Key), tracing.Action.String(call.Action),
			tracing.Outcome.String(outcome))
	}
	span.End()
}
