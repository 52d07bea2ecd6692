package rulescmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/zohook/zohook/internal/rules"
)

// report is what a dry run found for one event: every rule's verdict and,
// for the rules that match, what each step did and would send. Rule tests
// compare it with their expectations; `rules test --event` prints it.
type report struct {
	Note   string       `json:"note,omitempty"`
	Event  *rules.Event `json:"event"`
	Record *recordNeed  `json:"record,omitempty"`
	Rules  []ruleReport `json:"rules"`
}

// recordNeed says what the worker would load before the conditions.
type recordNeed struct {
	Fields []string `json:"fields,omitempty"` // empty: all fields
	Given  bool     `json:"given"`            // the run had a record
}

type ruleReport struct {
	Rule    string       `json:"rule"`
	Matched bool         `json:"matched"`
	Stage   string       `json:"stage,omitempty"` // where a rule that does not match stopped
	Reason  string       `json:"reason,omitempty"`
	Hint    string       `json:"hint,omitempty"`
	Steps   []stepReport `json:"steps,omitempty"`
	Error   string       `json:"error,omitempty"` // the rule failed: the worker would retry or dead-letter
}

type stepReport struct {
	Key     string `json:"key"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"` // ran, skipped, failed, failed-skipped, stopped
	// Note: a condition the run could not evaluate (it read an unknown
	// output) and assumed true.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
	// Inputs are the resolved inputs with zohook's defaults.
	Inputs   map[string]any `json:"inputs,omitempty"`
	Requests []wireRequest  `json:"requests,omitempty"`
	// Unplanned says why a step that ran shows no request.
	Unplanned string `json:"unplanned,omitempty"`
}

// failed reports what makes a dry run exit 1: a condition or a step that
// failed the way the worker would retry or dead-letter.
func (r *report) failed() bool {
	for _, x := range r.Rules {
		if x.Error != "" || x.Stage == "condition" && strings.HasPrefix(x.Reason, "condition error") {
			return true
		}
	}
	return false
}

// evaluate runs every rule of set on the event as the worker would
// (trigger, record, condition, steps in order), with exec standing in for
// Zoho.
func evaluate(ctx context.Context, set *rules.Set, ev *rules.Event, record map[string]any, exec *wireExec) (*report, error) {
	rep := &report{Event: ev}
	if load, fields := set.RecordNeeds(set.Match(ev)); load {
		rep.Record = &recordNeed{Fields: fields, Given: record != nil}
	}
	for _, x := range set.Explain(ev, record) {
		rr := ruleReport{Rule: x.Rule, Matched: x.Matched, Stage: x.Stage, Reason: x.Reason}
		if !x.Matched {
			if x.Stage == "condition" && record == nil && set.Rule(x.Rule).LoadRecord {
				rr.Hint = "record is null in this run; give the record Zoho would return"
			}
			rep.Rules = append(rep.Rules, rr)
			continue
		}
		res, err := set.Rule(x.Rule).Run(ctx, rules.Input{Event: ev, Record: record}, exec)
		if err != nil {
			rr.Error = err.Error()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("rule %s: %w", x.Rule, ctx.Err())
			}
		}
		for _, st := range res.Steps {
			sr := stepReport{Key: st.Key, Action: st.Action, Outcome: st.Outcome, Note: st.Note, Error: st.Error}
			if st.Outcome != rules.OutcomeSkipped {
				if pc, ok := exec.call(st.Key); ok {
					sr.Inputs, sr.Unplanned = pc.Inputs, pc.Unplanned
					for _, p := range pc.Requests {
						w, err := toWire(p)
						if err != nil {
							return nil, fmt.Errorf("step %s: %w", st.Key, err)
						}
						sr.Requests = append(sr.Requests, w)
					}
				} else {
					sr.Inputs = st.Inputs
				}
			}
			rr.Steps = append(rr.Steps, sr)
		}
		rep.Rules = append(rep.Rules, rr)
	}
	return rep, nil
}

// printText writes a report for a person.
func printText(b *strings.Builder, rep *report) {
	ev := rep.Event
	if rep.Note != "" {
		fmt.Fprintf(b, "note: %s\n", rep.Note)
	}
	fmt.Fprintf(b, "event: source=%s connection=%s module=%s operation=%s record_id=%s", ev.Source, orDefault(ev.Connection), ev.Module, ev.Operation, ev.RecordID)
	if len(ev.ChangedFields) > 0 {
		fmt.Fprintf(b, " changed=%s", strings.Join(ev.ChangedFields, ","))
	}
	if ev.Hook != "" {
		fmt.Fprintf(b, " hook=%s", ev.Hook)
	}
	b.WriteString("\n")
	if rep.Record != nil {
		what := "all fields"
		if len(rep.Record.Fields) > 0 {
			what = strings.Join(rep.Record.Fields, ", ")
		}
		src := "from --record"
		if !rep.Record.Given {
			src = "not given (--record): record is null"
		}
		fmt.Fprintf(b, "record: the worker would load %s; %s\n", what, src)
	}
	for _, x := range rep.Rules {
		if !x.Matched {
			fmt.Fprintf(b, "\nrule %s: no (%s: %s)\n", x.Rule, x.Stage, x.Reason)
			if x.Hint != "" {
				fmt.Fprintf(b, "  hint: %s\n", x.Hint)
			}
			continue
		}
		fmt.Fprintf(b, "\nrule %s: MATCHES\n", x.Rule)
		for _, st := range x.Steps {
			fmt.Fprintf(b, "  step %s: %s", st.Key, st.Action)
			switch st.Outcome {
			case rules.OutcomeSkipped:
				b.WriteString(" - skipped (its when is false)\n")
				continue
			case rules.OutcomeFailed:
				fmt.Fprintf(b, " - ERROR: %s\n", st.Error)
			case rules.OutcomeFailedSkipped:
				fmt.Fprintf(b, " - failed, skipped (on_failure: skip): %s\n", st.Error)
			case rules.OutcomeStopped:
				fmt.Fprintf(b, " - failed, rule stopped (on_failure: stop): %s\n", st.Error)
			default:
				b.WriteString("\n")
			}
			if st.Note != "" {
				fmt.Fprintf(b, "    # %s\n", st.Note)
			}
			for _, w := range st.Requests {
				printRequest(b, w, "    ")
			}
			if st.Unplanned != "" {
				fmt.Fprintf(b, "    # not shown as sent: %s; the inputs:\n", st.Unplanned)
				b.WriteString(indent(render(st.Inputs, "yaml"), "    "))
			}
		}
		if x.Error != "" {
			fmt.Fprintf(b, "  error: %s\n", x.Error)
		}
	}
	if strings.Contains(b.String(), placeholderOrg) {
		fmt.Fprintf(b, "\nnote: %s stands for your Books organization id (--organization-id or ZOHOOK_ZOHO_BOOKS_ORG_ID)\n", placeholderOrg)
	}
}

// printJSON writes a report for a program: the same content, requests
// with their bodies as sent.
func printJSON(b *strings.Builder, rep *report) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // bodies show <, > and & as written
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("rules test: %w", err)
	}
	b.Write(buf.Bytes())
	return nil
}
