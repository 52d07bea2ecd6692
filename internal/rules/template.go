package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	exprast "github.com/expr-lang/expr/ast"
)

// value is a compiled `with:` input: a constant, an exact `${expr}` (keeps
// the expression's type), an interpolated string, a map or a list.
type value interface {
	eval(ev *evaluator) (any, error)
}

type constValue struct{ v any }

type exprValue struct {
	c   *compiled
	pos pos
}

type interpValue struct {
	lits  []string // len(lits) == len(exprs)+1
	exprs []*exprValue
}

type mapValue struct {
	keys []string
	vals []value
}

type listValue struct{ items []value }

type pos struct{ line, col int }

// evaluator evaluates values for one step. unknown holds the ids of steps
// whose output a dry run cannot know: expressions touching them render as
// "<source>" instead of failing.
type evaluator struct {
	env     *exprEnv
	unknown map[string]bool
}

func (c constValue) eval(*evaluator) (any, error) { return copyConst(c.v), nil }

// copyConst hands the executor fresh maps and lists, so an executor that
// edits its inputs cannot change the loaded rule.
func copyConst(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyConst(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = copyConst(e)
		}
		return l
	}
	return v
}

func (e *exprValue) eval(ev *evaluator) (any, error) {
	if ev.touchesUnknown(e.c) {
		return "<" + strings.TrimSpace(e.c.src) + ">", nil
	}
	v, err := e.c.run(ev.env)
	if err != nil {
		return nil, &evalError{where: fmt.Sprintf("${%s}", e.c.src), err: err}
	}
	return v, nil
}

func (ev *evaluator) touchesUnknown(c *compiled) bool {
	for _, s := range c.steps {
		if ev.unknown[s] {
			return true
		}
	}
	return false
}

func (t *interpValue) eval(ev *evaluator) (any, error) {
	var b strings.Builder
	for i, l := range t.lits {
		b.WriteString(l)
		if i < len(t.exprs) {
			v, err := t.exprs[i].eval(ev)
			if err != nil {
				return nil, err
			}
			b.WriteString(stringify(v))
		}
	}
	return b.String(), nil
}

func (m *mapValue) eval(ev *evaluator) (any, error) {
	out := make(map[string]any, len(m.keys))
	for i, k := range m.keys {
		v, err := m.vals[i].eval(ev)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func (l *listValue) eval(ev *evaluator) (any, error) {
	out := make([]any, len(l.items))
	for i, it := range l.items {
		v, err := it.eval(ev)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// templatePart is one piece of a string split by splitTemplate.
type templatePart struct {
	lit    string
	expr   string
	offset int // rune offset of expr inside the string
	isExpr bool
}

// splitTemplate splits s into literal text and ${...} expressions. `$${` and
// `\${` produce a literal `${`. The closing brace is found by counting
// braces outside string literals, so map literals work inside ${...}.
func splitTemplate(s string) ([]templatePart, error) {
	var parts []templatePart
	var lit strings.Builder
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		switch {
		case r[i] == '$' && i+2 < len(r) && r[i+1] == '$' && r[i+2] == '{':
			lit.WriteString("${")
			i += 2
		case r[i] == '\\' && i+2 < len(r) && r[i+1] == '$' && r[i+2] == '{':
			lit.WriteString("${")
			i += 2
		case r[i] == '$' && i+1 < len(r) && r[i+1] == '{':
			end, err := closingBrace(r, i+2)
			if err != nil {
				return nil, fmt.Errorf("%w at offset %d", err, i)
			}
			if lit.Len() > 0 {
				parts = append(parts, templatePart{lit: lit.String()})
				lit.Reset()
			}
			parts = append(parts, templatePart{expr: string(r[i+2 : end]), offset: i + 2, isExpr: true})
			i = end
		default:
			lit.WriteRune(r[i])
		}
	}
	if lit.Len() > 0 || len(parts) == 0 {
		parts = append(parts, templatePart{lit: lit.String()})
	}
	return parts, nil
}

func closingBrace(r []rune, from int) (int, error) {
	depth := 0
	var quote rune
	for i := from; i < len(r); i++ {
		c := r[i]
		if quote != 0 {
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'', '`':
			quote = c
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i, nil
			}
			depth--
		}
	}
	return 0, fmt.Errorf("unclosed ${")
}

// coqlLiteral renders v as one COQL literal, so a value read from Zoho (a
// record field, a webhook value) can never change the shape of a query:
//
//   - a string is quoted with single quotes; a quote inside it is doubled,
//     which is the escape Zoho documents for COQL ("add another single
//     quote", Kaizen #171: FAQs on COQL API). Zoho does not document how its
//     parser reads a backslash, so a backslash is doubled too: whether Zoho
//     reads `\\` as an escape or as two characters, no quote ever ends the
//     literal early. Newlines, `)` and any Unicode stay inside the quotes.
//   - numbers, true/false and null are written as COQL literals; a time is
//     quoted in RFC 3339 form.
//   - a list becomes `('a', 'b')` for `in` / `not in`; its items follow the
//     rules above.
//
// A map (a lookup such as record.Account_Name), a nested list, an empty
// list and a non-finite number are errors: quoting them could only produce
// a query Zoho refuses or one that means something else.
func coqlLiteral(v any) (string, error) {
	if l, ok := coqlList(v); ok {
		if len(l) == 0 {
			return "", fmt.Errorf("coql: an empty list has no COQL form (in () is a syntax error); guard the step with a when")
		}
		var b strings.Builder
		b.WriteByte('(')
		for i, it := range l {
			if _, nested := coqlList(it); nested {
				return "", fmt.Errorf("coql: list item %d is a list: only flat lists become (a, b)", i)
			}
			s, err := coqlScalar(it)
			if err != nil {
				return "", fmt.Errorf("coql: list item %d: %w", i, err)
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(s)
		}
		b.WriteByte(')')
		return b.String(), nil
	}
	s, err := coqlScalar(v)
	if err != nil {
		return "", fmt.Errorf("coql: %w", err)
	}
	return s, nil
}

// coqlList reports the lists expressions produce ([]any from literals and
// JSON, []string for event.changed_fields).
func coqlList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

func coqlScalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "null", nil
	case string:
		return coqlQuote(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int8, int16, int32, int64:
		return fmt.Sprint(x), nil
	case uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	case float32:
		return coqlFloat(float64(x))
	case float64:
		return coqlFloat(x)
	case json.Number:
		// A json.Number holds whatever text it was given: only a number
		// may go in unquoted.
		if _, err := strconv.ParseFloat(x.String(), 64); err != nil {
			return "", fmt.Errorf("%q is not a number", x.String())
		}
		return x.String(), nil
	case time.Time:
		return coqlQuote(x.Format(time.RFC3339)), nil
	case map[string]any:
		return "", fmt.Errorf("cannot quote a map (a lookup? use its .id or .name)")
	}
	return "", fmt.Errorf("cannot quote a %T", v)
}

func coqlFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("%v has no COQL form", f)
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

// coqlQuote quotes s as a COQL string literal (see coqlLiteral).
func coqlQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	// Bytes, not runes: both escaped characters are ASCII, and a string
	// that is not valid UTF-8 keeps its bytes.
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// coqlSafety classifies one ${...} of a crm.coql query for `rules check`:
// quoted when the expression is a coql(...) call (its result is one
// literal), constant when it reads nothing but vars (the rule author's own
// text, not Zoho data). Anything else puts data into the query unquoted.
func coqlSafety(c *compiled) (quoted, constant bool) {
	node := c.prog.Node()
	if call, ok := node.(*exprast.CallNode); ok {
		if id, ok := call.Callee.(*exprast.IdentifierNode); ok && id.Value == "coql" {
			return true, false
		}
	}
	v := &varsOnlyVisitor{only: true}
	exprast.Walk(&node, v)
	return false, v.only
}

// varsOnlyVisitor clears only when an expression names anything but vars
// (event, record, steps, a function, a let variable).
type varsOnlyVisitor struct{ only bool }

func (v *varsOnlyVisitor) Visit(n *exprast.Node) {
	switch x := (*n).(type) {
	case *exprast.IdentifierNode:
		if x.Value != "vars" {
			v.only = false
		}
	case *exprast.CallNode, *exprast.PointerNode, *exprast.VariableDeclaratorNode:
		v.only = false
	}
}
