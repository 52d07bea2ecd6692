package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads and parses a rules file.
func Load(path string, opts ...Option) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(path, data, opts...)
}

var (
	ruleNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)
	stepIDRE   = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	varNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hookOpRE   = regexp.MustCompile(`^[a-z0-9_.-]+$`)
	// expr keywords cannot follow `steps.`.
	reservedIDs = []string{"in", "not", "and", "or", "matches", "contains", "let", "if", "else", "nil", "true", "false"}
)

var (
	topKeys    = []string{"version", "vars", "rules"}
	ruleKeys   = []string{"name", "description", "disabled", "on", "record", "load_record", "when", "on_missing", "steps"}
	onKeys     = []string{"source", "sources", "connection", "connections", "module", "modules", "operation", "operations", "changed", "changed_unknown"}
	recordKeys = []string{"fields"}
	stepKeys   = []string{"id", "description", "action", "with", "when", "on_failure", "in_doubt"}
	crmOps     = []string{"create", "update", "delete"}
)

// templateStr marks a string holding ${...} in the literal view of a value:
// its content is only known at run time, so literal checks skip it.
type templateStr string

type loader struct {
	file     string
	problems []Problem
	// warnings do not refuse the file: steps whose exactly-once guarantee
	// has a hole the rule's author can close.
	warnings []Problem
	anchors  map[string]ast.Node
	opts     []expr.Option
	rule     string // current rule name, for problems
	// recordReported: "uses record but does not load it" is said once per rule.
	recordReported bool
	vars           map[string]any
	actions        map[string]*actionDef
	vms            *sync.Pool
}

func (l *loader) errAt(p pos, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: p.line, Col: p.col, Rule: l.rule, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) errf(n ast.Node, format string, args ...any) {
	l.errAt(nodePos(n), format, args...)
}

func (l *loader) warnf(n ast.Node, format string, args ...any) {
	p := nodePos(n)
	l.warnings = append(l.warnings, Problem{File: l.file, Line: p.line, Col: p.col, Rule: l.rule, Message: fmt.Sprintf(format, args...)})
}

func nodePos(n ast.Node) pos {
	if n == nil {
		return pos{}
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && !m.IsFlowStyle {
		return nodePos(m.Values[0].Key)
	}
	if mv, ok := n.(*ast.MappingValueNode); ok {
		return nodePos(mv.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{tk.Position.Line, tk.Position.Column}
}

// Parse parses rules from data; file names the source in problems.
func Parse(file string, data []byte, opts ...Option) (*Set, error) {
	o := buildOptions(opts)
	l := &loader{file: file, anchors: map[string]ast.Node{}, opts: exprOptions(&o), actions: actionTable(), vms: newVMPool()}
	set := &Set{file: file, opts: o, vars: map[string]any{}}
	sum := sha256.Sum256(data)
	set.version = hex.EncodeToString(sum[:6])

	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		p := Problem{File: file, Message: err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			p.Message = "YAML: " + ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				p.Line, p.Col = tk.Position.Line, tk.Position.Column
			}
		}
		return nil, &LoadError{Problems: []Problem{p}}
	}
	var body ast.Node
	for i, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if body != nil {
			l.errf(d.Body, "only one YAML document is allowed (found another at document %d)", i+1)
			continue
		}
		body = d.Body
	}
	if body == nil {
		l.errAt(pos{1, 1}, "empty rules file: want version: 1 and rules:")
		return nil, &LoadError{Problems: l.problems}
	}
	l.loadTop(body, set)
	if len(l.problems) > 0 {
		e := &LoadError{Problems: l.problems}
		e.sort()
		return nil, e
	}
	set.buildIndex()
	set.warnings = l.warnings
	return set, nil
}

// entry is one key/value of a mapping, merge keys expanded.
type entry struct {
	key    string
	keyN   ast.Node
	value  ast.Node
	merged bool // came from a `<<:` merge key: explicit keys override it
}

// unwrap strips tags and anchors and resolves aliases.
func (l *loader) unwrap(n ast.Node) ast.Node {
	for depth := 0; n != nil && depth < 100; depth++ {
		switch x := n.(type) {
		case *ast.TagNode:
			n = x.Value
		case *ast.AnchorNode:
			if name := x.Name; name != nil {
				l.anchors[name.String()] = x.Value
			}
			n = x.Value
		case *ast.AliasNode:
			if x.Value == nil {
				return nil
			}
			target, ok := l.anchors[x.Value.String()]
			if !ok {
				l.errf(x, "unknown alias *%s", x.Value.String())
				return nil
			}
			n = target
		default:
			return n
		}
	}
	return n
}

// mapping returns the entries of a mapping node; wantWhat names the
// mapping in the error when n is something else.
func (l *loader) mapping(n ast.Node, wantWhat string) ([]entry, bool) {
	u := l.unwrap(n)
	if u == nil {
		l.errf(n, "%s: want a mapping, got null", wantWhat)
		return nil, false
	}
	if _, ok := u.(*ast.NullNode); ok {
		l.errf(n, "%s: want a mapping, got null", wantWhat)
		return nil, false
	}
	var out []entry
	var add func(m ast.Node, depth int) bool
	add = func(m ast.Node, depth int) bool {
		var values []*ast.MappingValueNode
		switch x := l.unwrap(m).(type) {
		case *ast.MappingNode:
			values = x.Values
		case *ast.MappingValueNode:
			values = []*ast.MappingValueNode{x}
		default:
			l.errf(m, "%s: want a mapping, got %s", wantWhat, nodeKind(l.unwrap(m)))
			return false
		}
		for _, mv := range values {
			if _, ok := mv.Key.(*ast.MergeKeyNode); ok && depth < 10 {
				if seq, ok := l.unwrap(mv.Value).(*ast.SequenceNode); ok {
					for _, it := range seq.Values {
						add(it, depth+1)
					}
				} else {
					add(mv.Value, depth+1)
				}
				continue
			}
			k := l.scalar(mv.Key)
			out = append(out, entry{key: fmt.Sprint(k), keyN: mv.Key, value: mv.Value, merged: depth > 0})
		}
		return true
	}
	if !add(n, 0) {
		return nil, false
	}
	// Explicit keys override merged ones; a key written twice is an error.
	explicit := map[string]ast.Node{}
	for _, e := range out {
		if e.merged {
			continue
		}
		if prev, ok := explicit[e.key]; ok {
			l.errf(e.keyN, "duplicate key %q (first at line %d)", e.key, nodePos(prev).line)
			continue
		}
		explicit[e.key] = e.keyN
	}
	seen := map[string]bool{}
	dedup := make([]entry, 0, len(out))
	for _, e := range out {
		if seen[e.key] || e.merged && explicit[e.key] != nil {
			continue
		}
		seen[e.key] = true
		dedup = append(dedup, e)
	}
	return dedup, true
}

func nodeKind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return n.Type().String()
}

// checkKeys reports keys not in allowed, with a suggestion.
func (l *loader) checkKeys(es []entry, allowed []string, where string) {
	for _, e := range es {
		if !slices.Contains(allowed, e.key) {
			l.errf(e.keyN, "unknown key %q in %s%s", e.key, where, didYouMean(e.key, allowed))
		}
	}
}

func find(es []entry, key string) *entry {
	for i := range es {
		if es[i].key == key {
			return &es[i]
		}
	}
	return nil
}

// scalar converts a scalar node to a Go value (nil for non-scalars).
func (l *loader) scalar(n ast.Node) any {
	switch x := l.unwrap(n).(type) {
	case *ast.StringNode:
		return x.Value
	case *ast.LiteralNode:
		if x.Value != nil {
			return x.Value.Value
		}
		return ""
	case *ast.IntegerNode:
		switch v := x.Value.(type) {
		case int64:
			return v
		case uint64:
			if v <= math.MaxInt64 {
				return int64(v)
			}
			return v
		case int:
			return int64(v)
		}
		return x.Value
	case *ast.FloatNode:
		return x.Value
	case *ast.InfinityNode:
		return x.Value
	case *ast.NanNode:
		return math.NaN()
	case *ast.BoolNode:
		return x.Value
	case *ast.NullNode:
		return nil
	case *ast.MappingKeyNode:
		return l.scalar(x.Value)
	}
	return nil
}

// toGo converts any node to plain Go values (map[string]any, []any,
// scalars). Strings are returned as they are (no template handling).
func (l *loader) toGo(n ast.Node, depth int) any {
	if depth > 100 {
		l.errf(n, "value nested too deeply")
		return nil
	}
	u := l.unwrap(n)
	switch x := u.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		es, ok := l.mapping(x, "value")
		if !ok {
			return nil
		}
		m := make(map[string]any, len(es))
		for _, e := range es {
			m[e.key] = l.toGo(e.value, depth+1)
		}
		return m
	case *ast.SequenceNode:
		out := make([]any, 0, len(x.Values))
		for _, it := range x.Values {
			out = append(out, l.toGo(it, depth+1))
		}
		return out
	}
	return l.scalar(u)
}

func (l *loader) str(n ast.Node, what string) (string, bool) {
	v := l.scalar(n)
	s, ok := v.(string)
	if !ok || isCollection(l.unwrap(n)) {
		l.errf(n, "%s: want a string, got %s", what, nodeKind(l.unwrap(n)))
		return "", false
	}
	return s, true
}

func isCollection(n ast.Node) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
		return true
	}
	return false
}

// strList reads a string or a list of strings.
func (l *loader) strList(n ast.Node, what string) []string {
	items := l.strItems(n, what)
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.s
	}
	return out
}

type strItem struct {
	s string
	n ast.Node
}

// strItems is strList keeping each item's node, for positioned problems.
func (l *loader) strItems(n ast.Node, what string) []strItem {
	u := l.unwrap(n)
	if seq, ok := u.(*ast.SequenceNode); ok {
		out := make([]strItem, 0, len(seq.Values))
		for _, it := range seq.Values {
			if s, ok := l.str(it, what); ok {
				out = append(out, strItem{s, it})
			}
		}
		if len(seq.Values) == 0 {
			l.errf(n, "%s: empty list", what)
		}
		return out
	}
	if s, ok := l.str(n, what); ok {
		return []strItem{{s, n}}
	}
	return nil
}

func (l *loader) loadTop(body ast.Node, set *Set) {
	es, ok := l.mapping(body, "rules file")
	if !ok {
		return
	}
	l.checkKeys(es, topKeys, "the rules file")
	if v := find(es, "version"); v == nil {
		l.errf(body, "missing key \"version\" (want version: 1)")
	} else if n, ok := l.scalar(v.value).(int64); !ok || n != 1 {
		l.errf(v.value, "unsupported version %v (want 1)", l.scalar(v.value))
	}
	if v := find(es, "vars"); v != nil {
		if ves, ok := l.mapping(v.value, "vars"); ok {
			for _, e := range ves {
				if !varNameRE.MatchString(e.key) {
					l.errf(e.keyN, "var name %q: want letters, digits and _ (usable as vars.NAME)", e.key)
				}
				set.vars[e.key] = l.toGo(e.value, 0)
			}
		}
	}
	l.vars = set.vars
	rv := find(es, "rules")
	if rv == nil {
		l.errf(body, "missing key \"rules\"")
		return
	}
	seq, ok := l.unwrap(rv.value).(*ast.SequenceNode)
	if !ok {
		l.errf(rv.value, "rules: want a list of rules, got %s", nodeKind(l.unwrap(rv.value)))
		return
	}
	names := map[string]int{}
	for i, rn := range seq.Values {
		r := l.loadRule(rn, set)
		if r == nil {
			continue
		}
		r.pos = i
		if first, dup := names[r.Name]; dup && r.Name != "" {
			l.rule = r.Name
			l.errAt(pos{r.Line, nodePos(rn).col}, "duplicate rule name (first at line %d)", first)
			l.rule = ""
		} else {
			names[r.Name] = r.Line
		}
		set.rules = append(set.rules, r)
	}
}

func (l *loader) loadRule(n ast.Node, set *Set) *Rule {
	l.rule, l.recordReported = "", false
	defer func() { l.rule = "" }()
	es, ok := l.mapping(n, "rule")
	if !ok {
		return nil
	}
	r := &Rule{set: set, Line: nodePos(n).line, ChangedUnknown: "match"}
	if e := find(es, "name"); e == nil {
		l.errf(n, "rule without name")
	} else if s, ok := l.str(e.value, "name"); ok {
		r.Name = s
		if !ruleNameRE.MatchString(s) {
			l.errf(e.value, "rule name %q: use lowercase letters, digits, - and _", s)
		}
	}
	l.rule = r.Name
	l.checkKeys(es, ruleKeys, "rule")
	if e := find(es, "description"); e != nil {
		r.Description, _ = l.str(e.value, "description")
	}
	if e := find(es, "disabled"); e != nil {
		b, ok := l.scalar(e.value).(bool)
		if !ok {
			l.errf(e.value, "disabled: want true or false")
		}
		r.Disabled = b
	}
	r.OnMissing = OnMissingSkip
	if e := find(es, "on_missing"); e != nil {
		if s, ok := l.oneOf(e.value, "on_missing", OnMissingSkip, OnMissingDeadLetter); ok {
			r.OnMissing = s
		}
	}
	if e := find(es, "on"); e == nil {
		l.errf(n, "missing key \"on\" (the trigger: source, modules, operations)")
	} else {
		l.loadOn(e.value, r)
	}
	l.loadRecord(es, r)
	// Collect step ids first so a reference to a later step says "later",
	// not "unknown".
	stepIDs := map[string]int{} // id -> index
	stepsE := find(es, "steps")
	var stepNodes []ast.Node
	if stepsE != nil {
		if seq, ok := l.unwrap(stepsE.value).(*ast.SequenceNode); ok {
			stepNodes = seq.Values
		}
	}
	for i, sn := range stepNodes {
		if ses, ok := l.peekMapping(sn); ok {
			if id := find(ses, "id"); id != nil {
				if s, ok := l.scalar(id.value).(string); ok {
					if _, dup := stepIDs[s]; !dup {
						stepIDs[s] = i
					}
				}
			}
		}
	}
	if e := find(es, "when"); e != nil {
		r.when = l.compileWhen(e.value, r, stepIDs, -1)
	}
	switch {
	case stepsE == nil:
		l.errf(n, "missing key \"steps\"")
	case len(stepNodes) == 0:
		l.errf(stepsE.value, "steps: want a non-empty list of steps")
	default:
		seen := map[string]bool{}
		for i, sn := range stepNodes {
			if st := l.loadStep(sn, i, r, stepIDs, seen); st != nil {
				r.Steps = append(r.Steps, st)
			}
		}
	}
	return r
}

// peekMapping reads a mapping's entries without reporting problems.
func (l *loader) peekMapping(n ast.Node) ([]entry, bool) {
	saved := len(l.problems)
	es, ok := l.mapping(n, "step")
	l.problems = l.problems[:saved]
	return es, ok
}

func (l *loader) loadOn(n ast.Node, r *Rule) {
	es, ok := l.mapping(n, "on")
	if !ok {
		return
	}
	l.checkKeys(es, onKeys, "on")
	pair := func(one, many string) *entry {
		a, b := find(es, one), find(es, many)
		if a != nil && b != nil {
			l.errf(b.keyN, "use either %q or %q, not both", one, many)
		}
		if a != nil {
			return a
		}
		return b
	}
	if e := pair("source", "sources"); e == nil {
		l.errf(n, "missing key \"source\" (one of %s)", strings.Join(knownSources, ", "))
	} else {
		for _, it := range l.strItems(e.value, e.key) {
			s := it.s
			if !slices.Contains(knownSources, s) {
				l.errf(it.n, "unknown source %q (want %s)%s", s, strings.Join(knownSources, ", "), didYouMean(s, knownSources))
				continue
			}
			r.Sources = append(r.Sources, s)
		}
	}
	if e := pair("connection", "connections"); e != nil {
		r.Connections = l.strList(e.value, e.key)
	}
	if e := pair("module", "modules"); e != nil {
		for _, it := range l.strItems(e.value, e.key) {
			m := it.s
			if strings.TrimSpace(m) == "" {
				l.errf(it.n, "empty module name")
				continue
			}
			r.Modules = append(r.Modules, m)
		}
		if slices.Contains(r.Modules, "*") {
			r.Modules = nil
		}
	}
	if e := pair("operation", "operations"); e != nil {
		for _, it := range l.strItems(e.value, e.key) {
			op := strings.ToLower(strings.TrimSpace(it.s))
			if op == "*" {
				r.Operations = nil
				break
			}
			onlyCRM := len(r.Sources) > 0 && !slices.ContainsFunc(r.Sources, func(s string) bool { return s != SourceCRMNotify })
			switch {
			case onlyCRM && !slices.Contains(crmOps, op):
				hint := didYouMean(op, crmOps)
				if op == "insert" {
					hint = ` (Zoho's "insert" arrives as create)`
				} else if op == "edit" {
					hint = ` (Zoho's "edit" arrives as update)`
				}
				l.errf(it.n, "operation %q is not valid for crm.notify (want create, update or delete)%s", op, hint)
			case !hookOpRE.MatchString(op):
				l.errf(it.n, "operation %q: use lowercase letters, digits, _, . and -", op)
			default:
				r.Operations = append(r.Operations, op)
			}
		}
	}
	if e := find(es, "changed"); e != nil {
		r.Changed = l.strList(e.value, "changed")
	}
	if e := find(es, "changed_unknown"); e != nil {
		s, _ := l.scalar(e.value).(string)
		if s != "match" && s != "skip" {
			l.errf(e.value, "changed_unknown: want match or skip")
		} else {
			r.ChangedUnknown = s
		}
		if r.Changed == nil {
			l.errf(e.keyN, "changed_unknown without changed")
		}
	}
}

func (l *loader) loadRecord(es []entry, r *Rule) {
	rec, lr := find(es, "record"), find(es, "load_record")
	if rec != nil && lr != nil {
		l.errf(lr.keyN, "use either \"record\" or \"load_record\", not both")
	}
	if lr != nil {
		b, ok := l.scalar(lr.value).(bool)
		if !ok {
			l.errf(lr.value, "load_record: want true or false")
		}
		r.LoadRecord = b
	}
	if rec == nil {
		return
	}
	switch x := l.unwrap(rec.value).(type) {
	case *ast.StringNode:
		if x.Value != "all" {
			l.errf(rec.value, "record: want all, true, false, a list of fields or {fields: [...]}, got %q", x.Value)
		}
		r.LoadRecord = true
	case *ast.BoolNode:
		r.LoadRecord = x.Value
	case *ast.SequenceNode:
		r.LoadRecord = true
		r.RecordFields = l.strList(x, "record")
	default:
		res, ok := l.mapping(rec.value, "record")
		if !ok {
			return
		}
		l.checkKeys(res, recordKeys, "record")
		r.LoadRecord = true
		if f := find(res, "fields"); f != nil {
			r.RecordFields = l.strList(f.value, "record.fields")
		}
	}
}

func (l *loader) loadStep(n ast.Node, i int, r *Rule, stepIDs map[string]int, seen map[string]bool) *Step {
	es, ok := l.mapping(n, "step")
	if !ok {
		return nil
	}
	l.checkKeys(es, stepKeys, fmt.Sprintf("step %d", i+1))
	st := &Step{Index: i, OnFailure: OnFailureRetry, InDoubt: InDoubtResend, Line: nodePos(n).line}
	if e := find(es, "id"); e != nil {
		if s, ok := l.str(e.value, "id"); ok {
			switch {
			case !stepIDRE.MatchString(s):
				l.errf(e.value, "step id %q: use lowercase letters, digits and _ (it is used as steps.%s)", s, s)
			case slices.Contains(reservedIDs, s):
				l.errf(e.value, "step id %q is a reserved word of expressions", s)
			case seen[s]:
				l.errf(e.value, "duplicate step id %q", s)
			}
			seen[s] = true
			st.ID = s
		}
	}
	var def *actionDef
	if e := find(es, "action"); e == nil {
		l.errf(n, "step %s: missing key \"action\"", st.ref())
	} else if s, ok := l.str(e.value, "action"); ok {
		st.Action = s
		def = l.actions[s]
		if def == nil {
			l.errf(e.value, "unknown action %q%s", s, didYouMean(s, actionNames(l.actions)))
		}
	}
	if e := find(es, "on_failure"); e != nil {
		if s, ok := l.oneOf(e.value, "on_failure", OnFailureRetry, OnFailureSkip, OnFailureStop); ok {
			st.OnFailure = s
		}
	}
	var inDoubt *entry
	if e := find(es, "in_doubt"); e != nil {
		inDoubt = e
		if s, ok := l.oneOf(e.value, "in_doubt", InDoubtResend, InDoubtDeadLetter); ok {
			st.InDoubt = s
		}
	}
	if e := find(es, "when"); e != nil {
		st.when = l.compileWhen(e.value, r, stepIDs, i)
	}
	var with []entry
	if e := find(es, "with"); e != nil {
		with, _ = l.mapping(e.value, "with")
	}
	st.with = &mapValue{}
	given := map[string]bool{}
	lits := map[string]any{}
	for _, w := range with {
		given[w.key] = true
		v, lit := l.compileValue(w.value, r, stepIDs, i, 0)
		lits[w.key] = lit
		if st.Action == "crm.coql" && w.key == "query" {
			l.warnCOQL(w.value, st, v)
		}
		st.with.keys = append(st.with.keys, w.key)
		st.with.vals = append(st.with.vals, v)
		if def == nil {
			continue
		}
		allowed := append(slices.Clone(def.spec.Required), def.spec.Optional...)
		if !slices.Contains(allowed, w.key) {
			l.errf(w.keyN, "%s: unknown input %q%s", st.Action, w.key, didYouMean(w.key, allowed))
			continue
		}
		if _, dynamic := lit.(templateStr); dynamic {
			continue
		}
		if k, ok := def.kinds[w.key]; ok {
			if msg := checkLiteral(k, stripTemplates(lit)); msg != "" {
				l.errf(w.value, "%s: input %q: %s", st.Action, w.key, msg)
			}
		}
	}
	if def != nil {
		for _, req := range def.spec.Required {
			if !given[req] {
				l.errf(n, "step %s: %s needs input %q", st.ref(), st.Action, req)
			}
		}
		for _, group := range def.spec.OneOf {
			var have []string
			for _, g := range group {
				if given[g] {
					have = append(have, g)
				}
			}
			if len(have) == 0 {
				l.errf(n, "step %s: %s needs one of %s", st.ref(), st.Action, strings.Join(group, ", "))
			} else if len(have) > 1 {
				l.errf(n, "step %s: %s takes only one of %s (got %s)", st.ref(), st.Action, strings.Join(group, ", "), strings.Join(have, " and "))
			}
		}
		if st.Action == "crm.add_attachment" && !given["url"] && !given["file_name"] {
			l.errf(n, "step %s: crm.add_attachment needs input \"file_name\" (required unless url)", st.ref())
		}
		if inDoubt != nil && readAction(st.Action, lits) {
			l.errf(inDoubt.keyN, "step %s: in_doubt applies to steps that change Zoho; %s only reads", st.ref(), st.Action)
		}
		if inDoubt == nil {
			l.warnInDoubt(n, st, given, lits)
		}
	}
	return st
}

// booksReferenced are the Books entities with a reference_number the
// worker can look an interrupted create up by.
var booksReferenced = []string{"invoices", "estimates", "salesorders", "purchaseorders", "bills", "creditnotes",
	"customerpayments", "vendorpayments", "retainerinvoices"}

// oneOf reads a word that must be one of words, refusing anything else
// with the list and a suggestion.
func (l *loader) oneOf(n ast.Node, key string, words ...string) (string, bool) {
	want := strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
	v := l.scalar(l.unwrap(n))
	s, isStr := v.(string)
	switch {
	case v == nil && !isStr:
		l.errf(n, "%s: want %s, got %s", key, want, nodeKind(l.unwrap(n)))
	case !slices.Contains(words, s):
		l.errf(n, "%s: want %s, got %v%s", key, want, v, didYouMean(s, words))
	default:
		return s, true
	}
	return "", false
}

// readAction reports steps that change nothing in Zoho, so are never in
// doubt: the read actions, and raw requests with a literal GET.
func readAction(action string, lits map[string]any) bool {
	m, _ := lits["method"].(string)
	return ReadOnly(action, m)
}

// ReadOnly reports actions that change nothing in Zoho; method matters
// for raw requests only (GET reads). The worker marks no journal entry
// before them: repeating a read changes nothing.
func ReadOnly(action, method string) bool {
	switch action {
	case "crm.get_record", "crm.get_records", "crm.get_attachments", "crm.coql", "books.get_record", "books.get_records":
		return true
	case "crm.raw_request", "books.raw_request":
		return strings.EqualFold(method, "GET")
	}
	return false
}

// warnInDoubt warns about writes the worker could not recognise after a
// crash between Zoho's answer and the journal write, and so would send
// again, when the rule can give it the key to find them or say that a
// human should decide (in_doubt: dead_letter). A step that sets in_doubt
// has decided and gets no warning.
func (l *loader) warnInDoubt(n ast.Node, st *Step, given map[string]bool, lits map[string]any) {
	switch st.Action {
	case "crm.create_record":
		if !given["duplicate_check_fields"] && !given["upsert"] {
			l.warnf(n, "step %s: crm.create_record without duplicate_check_fields: a create interrupted by a crash "+
				"(Zoho created the record, the worker died before recording it) is sent again and makes a duplicate; "+
				"name the fields that identify the record in duplicate_check_fields and the retry becomes an upsert "+
				"(or set in_doubt: dead_letter to leave the decision to a human)", st.ref())
		}
	case "crm.raw_request", "books.raw_request":
		if m, ok := lits["method"].(string); ok && (strings.EqualFold(m, "POST") || strings.EqualFold(m, "PATCH")) {
			l.warnf(n, "step %s: %s %s: a request interrupted after it may have reached Zoho is sent again, "+
				"and the worker cannot look up what it did; set in_doubt: dead_letter if doing it twice would harm "+
				"(the event then waits in the dead letters for a human), or in_doubt: resend to accept it", st.ref(), st.Action, strings.ToUpper(m))
		}
	case "books.create_record":
		entity, _ := lits["entity"].(string)
		data, literal := lits["data"].(map[string]any)
		if literal && !given["parent_id"] && slices.Contains(booksReferenced, entity) && data["reference_number"] == nil {
			l.warnf(n, "step %s: books.create_record of %s without data.reference_number: a create interrupted by a "+
				"crash cannot be found again and is sent again; set reference_number (for example \"${event.id}\") "+
				"and the worker looks it up before creating", st.ref(), entity)
		}
	}
}

// warnCOQL warns about a crm.coql query that puts a value into the query
// text without coql(): Zoho data is typed by users, and a value such as
// `x' or Email != 'y` would change what the query selects. Expressions
// that read only vars are exempt (constants the rule's author wrote), and
// so is a query without ${...}. It also warns about '${coql(x)}': coql adds
// the quotes itself, so quotes around it break the query.
func (l *loader) warnCOQL(n ast.Node, st *Step, v value) {
	var exprs []*exprValue
	var lits []string
	switch x := v.(type) {
	case *exprValue:
		exprs = []*exprValue{x}
	case *interpValue:
		exprs, lits = x.exprs, x.lits
	default:
		return
	}
	for i, e := range exprs {
		src := strings.TrimSpace(e.c.src)
		quoted, constant := coqlSafety(e.c)
		switch {
		case quoted && lits != nil && strings.HasSuffix(lits[i], "'") && strings.HasPrefix(lits[i+1], "'"):
			l.warnf(n, "step %s: crm.coql: '${%s}' is quoted twice: coql() adds the quotes itself, remove the ' around ${...}", st.ref(), src)
		case quoted, constant:
		default:
			l.warnf(n, "step %s: crm.coql: the query puts ${%s} into COQL unquoted: a value containing a quote "+
				"(x' or Email != 'y) changes what the query selects; write ${coql(%s)}, which renders one quoted, "+
				"escaped literal (and drop any ' around it)", st.ref(), src, src)
		}
	}
}

// stripTemplates turns templateStr leaves into "" plain strings so literal
// checks accept them where a string is allowed.
func stripTemplates(v any) any {
	switch x := v.(type) {
	case templateStr:
		return string(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = stripTemplates(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripTemplates(e)
		}
		return out
	}
	return v
}

// compileWhen compiles a condition. stepIdx is the step the condition
// belongs to (-1 for the rule's own condition, which runs before any step).
func (l *loader) compileWhen(n ast.Node, r *Rule, stepIDs map[string]int, stepIdx int) *compiled {
	u := l.unwrap(n)
	var src string
	switch x := l.scalar(u).(type) {
	case string:
		src = x
	case bool:
		src = fmt.Sprint(x)
	default:
		l.errf(n, "when: want an expression, got %s", nodeKind(u))
		return nil
	}
	if strings.TrimSpace(src) == "" {
		l.errf(n, "when: empty expression")
		return nil
	}
	if t := strings.TrimSpace(src); strings.HasPrefix(t, "${") && strings.HasSuffix(t, "}") {
		l.errf(n, "when: write the expression without ${...}")
		return nil
	}
	c, refs, msg, at := compileExpr(src, l.opts, l.vms, true)
	msg = friendlyExprMessage(msg)
	if c == nil {
		l.errAt(exprPos(u, 0, at, src), "when: %s", msg)
		return nil
	}
	l.checkRefs(u, 0, src, refs, r, stepIDs, stepIdx)
	return c
}

// exprPos is the file position of rune offset `at` of an expression that
// starts at rune `start` of the scalar n. Offsets are added only for
// one-line scalars, where they are exact (modulo escapes).
func exprPos(n ast.Node, start, at int, src string) pos {
	p := nodePos(n)
	tk := n.GetToken()
	if at < 0 || tk == nil || strings.Contains(src, "\n") {
		return p
	}
	if _, ok := n.(*ast.StringNode); !ok {
		return p
	}
	if tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType {
		p.col++
	}
	p.col += start + at
	return p
}

func (l *loader) checkRefs(n ast.Node, start int, src string, refs []exprRef, r *Rule, stepIDs map[string]int, stepIdx int) {
	ids := make([]string, 0, len(stepIDs))
	for id := range stepIDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, ref := range refs {
		p := exprPos(n, start, ref.from, src)
		switch ref.root {
		case "steps":
			idx, ok := stepIDs[ref.name]
			switch {
			case !ok:
				l.errAt(p, "unknown step %q in steps.%s%s", ref.name, ref.name, didYouMean(ref.name, ids))
			case stepIdx < 0:
				l.errAt(p, "the rule's when runs before any step: steps.%s is not available", ref.name)
			case idx == stepIdx:
				l.errAt(p, "step %q cannot use its own output", ref.name)
			case idx > stepIdx:
				l.errAt(p, "step %q runs later (step %d): only earlier steps can be used", ref.name, idx+1)
			}
		case "vars":
			if _, ok := l.vars[ref.name]; !ok {
				names := make([]string, 0, len(l.vars))
				for k := range l.vars {
					names = append(names, k)
				}
				sort.Strings(names)
				l.errAt(p, "unknown var %q%s", ref.name, didYouMean(ref.name, names))
			}
		case "record":
			if len(r.RecordFields) > 0 && ref.name != "id" && !slices.Contains(r.RecordFields, ref.name) {
				l.errAt(p, "record.%s is not loaded: add it to record.fields%s", ref.name, didYouMean(ref.name, r.RecordFields))
			}
		}
	}
	// A rule that reads `record` must ask for it, or it would always see nil.
	for _, ref := range refs {
		if ref.root == "record" && !r.LoadRecord && !l.recordReported {
			l.recordReported = true
			l.errAt(exprPos(n, start, ref.from, src), "uses record but the rule does not load it (add record: all or record: {fields: [...]})")
			break
		}
	}
}

// compileValue compiles an input value. It returns the compiled value and
// its literal view (templateStr for template strings).
func (l *loader) compileValue(n ast.Node, r *Rule, stepIDs map[string]int, stepIdx, depth int) (value, any) {
	if depth > 50 {
		l.errf(n, "value nested too deeply")
		return constValue{}, nil
	}
	u := l.unwrap(n)
	switch x := u.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		es, ok := l.mapping(x, "value")
		if !ok {
			return constValue{}, nil
		}
		mv := &mapValue{}
		lit := make(map[string]any, len(es))
		allConst := true
		for _, e := range es {
			v, lv := l.compileValue(e.value, r, stepIDs, stepIdx, depth+1)
			mv.keys = append(mv.keys, e.key)
			mv.vals = append(mv.vals, v)
			lit[e.key] = lv
			_, c := v.(constValue)
			allConst = allConst && c
		}
		if allConst {
			return constValue{v: lit}, lit
		}
		return mv, lit
	case *ast.SequenceNode:
		lv := &listValue{}
		lit := make([]any, 0, len(x.Values))
		allConst := true
		for _, it := range x.Values {
			v, li := l.compileValue(it, r, stepIDs, stepIdx, depth+1)
			lv.items = append(lv.items, v)
			lit = append(lit, li)
			_, c := v.(constValue)
			allConst = allConst && c
		}
		if allConst {
			return constValue{v: lit}, lit
		}
		return lv, lit
	}
	sv := l.scalar(u)
	s, ok := sv.(string)
	if !ok || !strings.Contains(s, "{") {
		return constValue{v: sv}, sv
	}
	parts, err := splitTemplate(s)
	if err != nil {
		l.errf(n, "template: %v", err)
		return constValue{}, templateStr(s)
	}
	if len(parts) == 1 && !parts[0].isExpr {
		return constValue{v: parts[0].lit}, parts[0].lit
	}
	compileOne := func(p templatePart) *exprValue {
		c, refs, msg, at := compileExpr(p.expr, l.opts, l.vms, false)
		msg = friendlyExprMessage(msg)
		if c == nil {
			l.errAt(exprPos(u, p.offset, at, s), "expression ${%s}: %s", strings.TrimSpace(p.expr), msg)
			return nil
		}
		l.checkRefs(u, p.offset, s, refs, r, stepIDs, stepIdx)
		return &exprValue{c: c, pos: nodePos(u)}
	}
	if len(parts) == 1 {
		if ev := compileOne(parts[0]); ev != nil {
			return ev, templateStr(s)
		}
		return constValue{}, templateStr(s)
	}
	iv := &interpValue{}
	cur := ""
	for _, p := range parts {
		if !p.isExpr {
			cur += p.lit
			continue
		}
		ev := compileOne(p)
		if ev == nil {
			continue
		}
		iv.lits = append(iv.lits, cur)
		iv.exprs = append(iv.exprs, ev)
		cur = ""
	}
	iv.lits = append(iv.lits, cur)
	return iv, templateStr(s)
}

var eventFields = []string{"id", "source", "connection", "module", "operation", "record_id", "changed_fields",
	"values", "channel_id", "hook", "received_at", "payload"}

// friendlyExprMessage rewrites expr's Go-flavoured messages about the
// environment types into the names rule authors write.
func friendlyExprMessage(msg string) string {
	const noField = "type rules.exprEvent has no field "
	if i := strings.Index(msg, noField); i >= 0 {
		name := strings.Fields(msg[i+len(noField):])[0]
		return fmt.Sprintf("event has no field %q (fields: %s)%s", name, strings.Join(eventFields, ", "), didYouMean(name, eventFields))
	}
	if strings.Contains(msg, "unknown name ") {
		return msg + " (names: event, record, steps, vars, and functions)"
	}
	return strings.ReplaceAll(msg, "rules.exprEvent", "event")
}
