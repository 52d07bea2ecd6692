package zohotest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// criteria is a parsed search criteria expression (§2.9): "(Field:op:value)" groups joined by and/or, with
// parentheses, e.g. "((Last_Name:equals:Boyle)and(Email:starts_with:p))". Backslash escapes "(", ")" and ",".
type criteria struct {
	op    string // "and", "or" or "" for a comparison
	kids  []*criteria
	field string
	cmp   string
	value string
}

var errCriteria = errors.New("invalid criteria")

func parseCriteria(src string) (*criteria, error) {
	p := &critParser{s: src}
	c, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%w: unexpected %q at %d", errCriteria, p.s[p.i:], p.i)
	}
	return c, nil
}

type critParser struct {
	s string
	i int
}

func (p *critParser) expr() (*criteria, error) {
	first, err := p.group()
	if err != nil {
		return nil, err
	}
	node := first
	for {
		rest := strings.ToLower(p.s[p.i:])
		var op string
		switch {
		case strings.HasPrefix(rest, "and"):
			op = "and"
		case strings.HasPrefix(rest, "or"):
			op = "or"
		default:
			return node, nil
		}
		p.i += len(op)
		next, err := p.group()
		if err != nil {
			return nil, err
		}
		node = &criteria{op: op, kids: []*criteria{node, next}}
	}
}

func (p *critParser) group() (*criteria, error) {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return nil, fmt.Errorf("%w: expected ( at %d", errCriteria, p.i)
	}
	p.i++
	if p.i < len(p.s) && p.s[p.i] == '(' {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, fmt.Errorf("%w: expected ) at %d", errCriteria, p.i)
		}
		p.i++
		return e, nil
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '\\' && p.i+1 < len(p.s) {
			b.WriteByte(p.s[p.i+1])
			p.i += 2
			continue
		}
		if c == ')' {
			break
		}
		b.WriteByte(c)
		p.i++
	}
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("%w: unbalanced parentheses", errCriteria)
	}
	p.i++
	parts := strings.SplitN(b.String(), ":", 3)
	if len(parts) != 3 || parts[0] == "" {
		return nil, fmt.Errorf("%w: %q is not field:operator:value", errCriteria, b.String())
	}
	switch parts[1] {
	case "equals", "not_equal", "starts_with", "in", "greater_than", "greater_equal", "less_than", "less_equal", "between":
	default:
		return nil, fmt.Errorf("%w: unknown operator %q", errCriteria, parts[1])
	}
	return &criteria{field: parts[0], cmp: parts[1], value: parts[2]}, nil
}

func (c *criteria) match(rec map[string]any) bool {
	switch c.op {
	case "and":
		return c.kids[0].match(rec) && c.kids[1].match(rec)
	case "or":
		return c.kids[0].match(rec) || c.kids[1].match(rec)
	}
	got := fieldValue(rec, c.field)
	want := c.value
	if want == "${EMPTY}" {
		want = ""
	}
	gs := str(got)
	switch c.cmp {
	case "equals":
		return strings.EqualFold(gs, want)
	case "not_equal":
		return !strings.EqualFold(gs, want)
	case "starts_with":
		return strings.HasPrefix(strings.ToLower(gs), strings.ToLower(want))
	case "in":
		for _, v := range strings.Split(want, ",") {
			if strings.EqualFold(gs, strings.TrimSpace(v)) {
				return true
			}
		}
		return false
	case "between":
		lo, hi, ok := strings.Cut(want, ",")
		return ok && compareLoose(got, lo) >= 0 && compareLoose(got, hi) <= 0
	case "greater_than":
		return got != nil && compareLoose(got, want) > 0
	case "greater_equal":
		return got != nil && compareLoose(got, want) >= 0
	case "less_than":
		return got != nil && compareLoose(got, want) < 0
	case "less_equal":
		return got != nil && compareLoose(got, want) <= 0
	}
	return false
}

// fieldValue reads a field; a lookup compares by its id.
func fieldValue(rec map[string]any, f string) any {
	v := rec[f]
	if m, ok := v.(map[string]any); ok {
		return m["id"]
	}
	return v
}

// compareLoose compares a stored value with a literal: numerically when both are numbers, else as strings
// (ISO dates compare correctly as strings).
func compareLoose(got any, lit string) int {
	if gf, ok := got.(float64); ok {
		if lf, err := strconv.ParseFloat(strings.TrimSpace(lit), 64); err == nil {
			switch {
			case gf < lf:
				return -1
			case gf > lf:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(str(got), strings.TrimSpace(lit))
}
