package rules

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
)

// Executor runs one action. The worker implements it with the Zoho client
// and its step journal; DryRun records calls instead.
type Executor interface {
	Execute(ctx context.Context, call Call) (map[string]any, error)
}

// Call is one action a step asks for, templates resolved.
type Call struct {
	Rule   string
	StepID string // empty for a step without id
	Index  int    // position of the step in the rule
	Key    string // stable: rule name + "/" + (step id or "#index")
	Action string
	Inputs map[string]any
	// InDoubt is the step's in_doubt policy (InDoubtResend or InDoubtDeadLetter).
	InDoubt string
}

// Input is what a rule runs on. Vars come from the Set.
type Input struct {
	Event  *Event
	Record map[string]any
}

// Step outcomes.
const (
	OutcomeRan           = "ran"
	OutcomeSkipped       = "skipped"        // its when was false
	OutcomeFailedSkipped = "failed-skipped" // failed with on_failure: skip
	OutcomeStopped       = "stopped"        // failed with on_failure: stop
	OutcomeFailed        = "failed"         // failed and Run returned a *StepError
	OutcomeMissing       = "missing"        // its target record is gone; on_missing: skip stopped the rule
)

// Result is what happened when a rule ran.
type Result struct {
	Rule           string
	ConditionFalse bool // the rule's when was false: no step ran
	Stopped        bool // a step failed with on_failure: stop
	// Missing: a step's target record is gone and on_missing: skip stopped
	// the rule.
	Missing bool
	Steps   []StepResult
}

// StepResult is the outcome of one step.
type StepResult struct {
	ID      string
	Index   int
	Key     string
	Action  string
	Outcome string
	Inputs  map[string]any
	Output  map[string]any
	Error   string
	Note    string // e.g. why a dry run assumed a condition
}

// outputGuesser is implemented by executors whose outputs are placeholders
// (DryRun): expressions that read such outputs render as "<source>".
type outputGuesser interface {
	knowsOutput(call Call) bool
}

// Run evaluates the rule's condition and runs its steps in order through
// exec. It returns a *StepError when a step with on_failure retry fails
// (wrapping the executor's error) or when an expression fails (wrapping
// ErrEvaluation); the Result describes the steps so far in every case.
func (r *Rule) Run(ctx context.Context, in Input, exec Executor) (*Result, error) {
	res := &Result{Rule: r.Name}
	env := &exprEnv{Event: toExprEvent(in.Event), Record: in.Record, Steps: make(map[string]any, len(r.Steps)), Vars: r.set.vars}
	if r.when != nil {
		ok, err := r.evalBool(r.when, env, "when")
		if err != nil {
			return res, &StepError{Rule: r.Name, Step: "when", Err: err}
		}
		if !ok {
			res.ConditionFalse = true
			return res, nil
		}
	}
	guesser, _ := exec.(outputGuesser)
	ev := &evaluator{env: env}
	for _, st := range r.Steps {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		sr := StepResult{ID: st.ID, Index: st.Index, Key: st.Key(r.Name), Action: st.Action}
		if st.when != nil {
			if ev.touchesUnknown(st.when) {
				sr.Note = "condition reads outputs a dry run cannot know; assumed true"
			} else {
				ok, err := r.evalBool(st.when, env, "when")
				if err != nil {
					sr.Outcome, sr.Error = OutcomeFailed, err.Error()
					res.Steps = append(res.Steps, sr)
					return res, &StepError{Rule: r.Name, Step: st.ref(), Action: st.Action, Err: err}
				}
				if !ok {
					sr.Outcome = OutcomeSkipped
					res.Steps = append(res.Steps, sr)
					continue
				}
			}
		}
		inputs, err := st.with.eval(ev)
		if err != nil {
			sr.Outcome, sr.Error = OutcomeFailed, err.Error()
			res.Steps = append(res.Steps, sr)
			return res, &StepError{Rule: r.Name, Step: st.ref(), Action: st.Action, Err: err}
		}
		sr.Inputs = inputs.(map[string]any)
		call := Call{Rule: r.Name, StepID: st.ID, Index: st.Index, Key: sr.Key, Action: st.Action, Inputs: sr.Inputs, InDoubt: st.InDoubt}
		out, err := exec.Execute(ctx, call)
		if err != nil {
			sr.Error = err.Error()
			if errors.Is(err, ErrRecordMissing) {
				if r.OnMissing == OnMissingDeadLetter {
					sr.Outcome = OutcomeFailed
					res.Steps = append(res.Steps, sr)
					return res, &StepError{Rule: r.Name, Step: st.ref(), Action: st.Action, Err: err}
				}
				sr.Outcome = OutcomeMissing
				res.Steps = append(res.Steps, sr)
				res.Missing = true
				return res, nil
			}
			policy := st.OnFailure
			if errors.Is(err, ErrTransient) {
				policy = OnFailureRetry // skip/stop are for refusals, not for a Zoho or NATS hiccup
			}
			switch policy {
			case OnFailureSkip:
				sr.Outcome = OutcomeFailedSkipped
				res.Steps = append(res.Steps, sr)
				continue
			case OnFailureStop:
				sr.Outcome = OutcomeStopped
				res.Steps = append(res.Steps, sr)
				res.Stopped = true
				return res, nil
			default:
				sr.Outcome = OutcomeFailed
				res.Steps = append(res.Steps, sr)
				return res, &StepError{Rule: r.Name, Step: st.ref(), Action: st.Action, Err: err}
			}
		}
		sr.Outcome, sr.Output = OutcomeRan, out
		res.Steps = append(res.Steps, sr)
		if st.ID != "" {
			if out == nil {
				out = map[string]any{}
			}
			env.Steps[st.ID] = out
			if guesser != nil && !guesser.knowsOutput(call) {
				if ev.unknown == nil {
					ev.unknown = map[string]bool{}
				}
				ev.unknown[st.ID] = true
			}
		}
	}
	return res, nil
}

// DryRun is an Executor that sends nothing: it records each call and
// returns the output given in Outputs (by step key "rule/step") or, when
// none is given, a placeholder whose fields expressions render as
// "<steps.id...>". Safe for concurrent use.
type DryRun struct {
	// Outputs are known outputs by call key; optional.
	Outputs map[string]map[string]any

	mu    sync.Mutex
	calls []Call
}

var _ Executor = (*DryRun)(nil)

// Execute records the call.
func (d *DryRun) Execute(_ context.Context, call Call) (map[string]any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call)
	if out, ok := d.Outputs[call.Key]; ok {
		return maps.Clone(out), nil
	}
	return map[string]any{"dry_run": true}, nil
}

func (d *DryRun) knowsOutput(call Call) bool {
	_, ok := d.Outputs[call.Key]
	return ok
}

// Calls returns the recorded calls in order.
func (d *DryRun) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// String renders a call on one line for logs: key, action, input names.
func (c Call) String() string {
	keys := make([]string, 0, len(c.Inputs))
	for k := range c.Inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Sprintf("%s %s(%s)", c.Key, c.Action, strings.Join(keys, ", "))
}
