package rules

import (
	"fmt"
	"strings"
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
