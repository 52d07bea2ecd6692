package rules

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// indexKey finds rules by trigger; "*" stands for any module or operation.
type indexKey struct {
	source, module, operation string
}

func (s *Set) buildIndex() {
	s.index = map[indexKey][]*Rule{}
	for _, r := range s.rules {
		if r.Disabled {
			continue
		}
		mods := lowerAll(r.Modules)
		if len(mods) == 0 {
			mods = []string{"*"}
		}
		ops := r.Operations
		if len(ops) == 0 {
			ops = []string{"*"}
		}
		for _, src := range r.Sources {
			for _, m := range mods {
				for _, op := range ops {
					k := indexKey{src, m, op}
					if !slices.Contains(s.index[k], r) {
						s.index[k] = append(s.index[k], r)
					}
				}
			}
		}
	}
}

func lowerAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

// Match returns the enabled rules whose trigger, connection and changed
// fields fit the event, in file order. The `when` condition is not
// evaluated here: it may need the record (see RecordNeeds, Rule.Run).
func (s *Set) Match(ev *Event) []*Rule {
	if ev == nil {
		return nil
	}
	mod, op := strings.ToLower(ev.Module), strings.ToLower(ev.Operation)
	var out []*Rule
	// Four lookups whatever the number of rules: exact, any operation, any
	// module, any both.
	for _, k := range [4]indexKey{{ev.Source, mod, op}, {ev.Source, mod, "*"}, {ev.Source, "*", op}, {ev.Source, "*", "*"}} {
		for _, r := range s.index[k] {
			if r.connectionOK(ev) && r.changedOK(ev) == "" && !slices.Contains(out, r) {
				if out == nil {
					out = make([]*Rule, 0, 4)
				}
				out = append(out, r)
			}
		}
	}
	if len(out) > 1 {
		slices.SortFunc(out, func(a, b *Rule) int { return a.pos - b.pos })
	}
	return out
}

func (r *Rule) connectionOK(ev *Event) bool {
	return len(r.Connections) == 0 || slices.Contains(r.Connections, connectionOf(ev))
}

// changedOK returns "" when the changed-fields filter passes, or why not.
func (r *Rule) changedOK(ev *Event) string {
	if len(r.Changed) == 0 {
		return ""
	}
	changed := ev.ChangedFields
	if len(changed) == 0 {
		for k := range ev.Values {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		if r.ChangedUnknown == "skip" {
			return "the event names no changed fields and changed_unknown is skip"
		}
		return ""
	}
	for _, c := range r.Changed {
		for _, f := range changed {
			if strings.EqualFold(c, f) {
				return ""
			}
		}
	}
	return fmt.Sprintf("none of the changed fields %v is in changed %v", changed, r.Changed)
}

// RecordNeeds is the union of what the rules need loaded: load reports
// whether any rule needs the record, fields which fields (nil with load =
// all fields).
func (s *Set) RecordNeeds(rules []*Rule) (load bool, fields []string) {
	all := false
	for _, r := range rules {
		if !r.LoadRecord {
			continue
		}
		load = true
		if len(r.RecordFields) == 0 {
			all = true
			continue
		}
		for _, f := range r.RecordFields {
			if !slices.Contains(fields, f) {
				fields = append(fields, f)
			}
		}
	}
	if all || !load {
		return load, nil
	}
	sort.Strings(fields)
	return load, fields
}

// Explanation says whether a rule would run for an event, and if not why.
type Explanation struct {
	Rule    string
	Matched bool   // trigger, filters and condition all pass
	Stage   string // where it stopped: disabled|source|module|operation|connection|changed|condition; "" when matched
	Reason  string
}

// Explain evaluates every rule against the event and record, for `rules
// test`.
func (s *Set) Explain(ev *Event, record map[string]any) []Explanation {
	if ev == nil {
		ev = &Event{}
	}
	out := make([]Explanation, 0, len(s.rules))
	for _, r := range s.rules {
		out = append(out, r.explain(ev, record))
	}
	return out
}

func (r *Rule) explain(ev *Event, record map[string]any) Explanation {
	x := Explanation{Rule: r.Name}
	no := func(stage, format string, args ...any) Explanation {
		x.Stage, x.Reason = stage, fmt.Sprintf(format, args...)
		return x
	}
	switch {
	case r.Disabled:
		return no("disabled", "the rule is disabled")
	case !slices.Contains(r.Sources, ev.Source):
		return no("source", "source %q is not %s", ev.Source, strings.Join(r.Sources, " or "))
	case len(r.Modules) > 0 && !slices.ContainsFunc(r.Modules, func(m string) bool { return strings.EqualFold(m, ev.Module) }):
		return no("module", "module %q is not %s", ev.Module, strings.Join(r.Modules, " or "))
	case len(r.Operations) > 0 && !slices.Contains(r.Operations, strings.ToLower(ev.Operation)):
		return no("operation", "operation %q is not %s", ev.Operation, strings.Join(r.Operations, " or "))
	case !r.connectionOK(ev):
		return no("connection", "connection %q is not %s", connectionOf(ev), strings.Join(r.Connections, " or "))
	}
	if why := r.changedOK(ev); why != "" {
		return no("changed", "%s", why)
	}
	ok, err := r.Condition(ev, record)
	if err != nil {
		return no("condition", "condition error: %v", err)
	}
	if !ok {
		return no("condition", "when %q is false", strings.TrimSpace(r.when.src))
	}
	x.Matched = true
	return x
}

// Condition evaluates the rule's when (true when the rule has none). A
// failure wraps ErrEvaluation.
func (r *Rule) Condition(ev *Event, record map[string]any) (bool, error) {
	if r.when == nil {
		return true, nil
	}
	env := &exprEnv{Event: toExprEvent(ev), Record: record, Vars: r.set.vars}
	return r.evalBool(r.when, env, "when")
}

func (r *Rule) evalBool(c *compiled, env *exprEnv, where string) (bool, error) {
	v, err := c.run(env)
	if err != nil {
		return false, &evalError{where: where, err: err}
	}
	b, ok := v.(bool)
	if !ok {
		return false, &evalError{where: where, err: fmt.Errorf("want true or false, got %T", v)}
	}
	return b, nil
}

// When is the source of the rule's condition ("" when none).
func (r *Rule) When() string {
	if r.when == nil {
		return ""
	}
	return r.when.src
}
