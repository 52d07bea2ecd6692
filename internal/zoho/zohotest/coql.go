package zohotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// COQL subset (§3), parsed by recursive descent:
//
//	query   := SELECT column {"," column} FROM module [WHERE expr] [ORDER BY key {"," key}] [LIMIT n [OFFSET m]]
//	expr    := primary [(AND|OR) primary]        -- at most two operands per level: Zoho wants ((A and B) and C)
//	primary := "(" expr ")" | column cmp
//	cmp     := (=|!=|<>|<|<=|>|>=) value | [NOT] LIKE 'str' | [NOT] IN "(" value {"," value} ")"
//	         | IS [NOT] NULL | [NOT] BETWEEN value AND value
//	value   := 'string' | number | TRUE | FALSE
//
// Keywords are case-insensitive; columns may be dotted (Account_Name.Account_Name) to read through a lookup.
//
// Inside a 'string' a doubled quote is one quote: the escape Zoho documents ("add another single quote",
// https://help.zoho.com/portal/en/community/topic/kaizen-171-faqs-on-coql-api). A backslash escapes the next byte
// (so \\ is one backslash and \' one quote): UNCONFIRMED, Zoho documents nothing about backslashes. The rules'
// coql() doubles both, so its literals read the same under either reading.

const (
	coqlMaxColumns  = 50
	coqlMaxCriteria = 25
	coqlMaxIn       = 50
	coqlMaxRecords  = 100000
	coqlDefaultLim  = 200
)

// coqlError is a COQL failure with Zoho's code and details.
type coqlError struct {
	code    string
	message string
	details map[string]any
}

func (e *coqlError) Error() string { return fmt.Sprintf("%s: %s %v", e.code, e.message, e.details) }

func syntaxErr(t token) *coqlError {
	near := t.text
	if t.kind == tEOF {
		near = "<end>"
	}
	return &coqlError{code: "SYNTAX_ERROR", message: "invalid query formed", details: map[string]any{"line": 1, "column": t.pos + 1, "near": near}}
}

func clauseErr(clause string) *coqlError {
	return &coqlError{code: "SYNTAX_ERROR", message: "invalid query formed", details: map[string]any{"clause": clause}}
}

func invalidQuery(msg string, details map[string]any) *coqlError {
	return &coqlError{code: "INVALID_QUERY", message: msg, details: details}
}

func limitErr(by string, limit int) *coqlError {
	return &coqlError{code: "LIMIT_EXCEEDED", message: "limit exceeded", details: map[string]any{"by": by, "limit": limit}}
}

// ---- lexer -----------------------------------------------------------------------------------------------------

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tLParen
	tRParen
	tComma
	tOp
)

type token struct {
	kind tokKind
	text string // for tString the unquoted value
	pos  int
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func lexCOQL(src string) ([]token, *coqlError) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '\'':
			start := i
			i++
			var b strings.Builder
			closed := false
			for i < len(src) {
				switch {
				case src[i] == '\\' && i+1 < len(src):
					b.WriteByte(src[i+1])
					i += 2
				case src[i] == '\'' && i+1 < len(src) && src[i+1] == '\'':
					b.WriteByte('\'')
					i += 2
				case src[i] == '\'':
					closed = true
					i++
				default:
					b.WriteByte(src[i])
					i++
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, syntaxErr(token{tString, src[start:], start})
			}
			toks = append(toks, token{tString, b.String(), start})
		case c == '=' || c == '<' || c == '>' || c == '!':
			start := i
			i++
			if i < len(src) && (src[i] == '=' || (c == '<' && src[i] == '>')) {
				i++
			}
			op := src[start:i]
			if op == "!" {
				return nil, syntaxErr(token{tOp, op, start})
			}
			toks = append(toks, token{tOp, op, start})
		case c == '-' || (c >= '0' && c <= '9'):
			start := i
			i++
			for i < len(src) && ((src[i] >= '0' && src[i] <= '9') || src[i] == '.') {
				i++
			}
			if _, err := strconv.ParseFloat(src[start:i], 64); err != nil {
				return nil, syntaxErr(token{tNumber, src[start:i], start})
			}
			toks = append(toks, token{tNumber, src[start:i], start})
		case isIdentByte(c):
			start := i
			for i < len(src) && isIdentByte(src[i]) {
				i++
			}
			toks = append(toks, token{tIdent, src[start:i], start})
		default:
			return nil, syntaxErr(token{tOp, string(c), i})
		}
	}
	return append(toks, token{tEOF, "", len(src)}), nil
}

// ---- parser ----------------------------------------------------------------------------------------------------

type coqlQuery struct {
	columns []string
	module  string
	where   *coqlCond
	order   []coqlOrder
	limit   int
	offset  int
}

type coqlOrder struct {
	column string
	desc   bool
}

type coqlCond struct {
	op          string // "and", "or" or "" for a comparison
	left, right *coqlCond
	column      string
	cmp         string // = != < <= > >= like "not like" in "not in" "is null" "is not null" between "not between"
	values      []any  // string, float64 or bool
}

type coqlParser struct {
	toks     []token
	i        int
	criteria int
}

func (p *coqlParser) peek() token { return p.toks[p.i] }
func (p *coqlParser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *coqlParser) isKw(kw string) bool {
	t := p.peek()
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func (p *coqlParser) acceptKw(kw string) bool {
	if p.isKw(kw) {
		p.i++
		return true
	}
	return false
}

var reserved = map[string]bool{"select": true, "from": true, "where": true, "order": true, "by": true, "limit": true,
	"offset": true, "and": true, "or": true, "not": true, "like": true, "in": true, "is": true, "null": true,
	"between": true, "asc": true, "desc": true}

func (p *coqlParser) column() (string, *coqlError) {
	t := p.next()
	if t.kind != tIdent || reserved[strings.ToLower(t.text)] || strings.HasPrefix(t.text, ".") || strings.HasSuffix(t.text, ".") ||
		(t.text[0] >= '0' && t.text[0] <= '9') {
		return "", syntaxErr(t)
	}
	return t.text, nil
}

// parseCOQL parses a select_query.
func parseCOQL(src string) (*coqlQuery, *coqlError) {
	toks, err := lexCOQL(src)
	if err != nil {
		return nil, err
	}
	p := &coqlParser{toks: toks}
	if !p.acceptKw("select") {
		return nil, clauseErr("select")
	}
	q := &coqlQuery{limit: coqlDefaultLim}
	for {
		c, err := p.column()
		if err != nil {
			return nil, err
		}
		q.columns = append(q.columns, c)
		if p.peek().kind != tComma {
			break
		}
		p.next()
	}
	if !p.acceptKw("from") {
		return nil, clauseErr("from")
	}
	mod := p.next()
	if mod.kind != tIdent || reserved[strings.ToLower(mod.text)] {
		return nil, syntaxErr(mod)
	}
	q.module = mod.text
	if p.acceptKw("where") {
		if p.peek().kind == tEOF {
			return nil, clauseErr("where")
		}
		w, err := p.expr()
		if err != nil {
			return nil, err
		}
		q.where = w
	}
	if p.acceptKw("order") {
		if !p.acceptKw("by") {
			return nil, syntaxErr(p.peek())
		}
		for {
			c, err := p.column()
			if err != nil {
				return nil, err
			}
			o := coqlOrder{column: c}
			if p.acceptKw("desc") {
				o.desc = true
			} else {
				p.acceptKw("asc")
			}
			q.order = append(q.order, o)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if p.acceptKw("limit") {
		n, err := p.integer()
		if err != nil {
			return nil, err
		}
		q.limit = n
		if p.acceptKw("offset") {
			m, err := p.integer()
			if err != nil {
				return nil, err
			}
			q.offset = m
		}
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, syntaxErr(t)
	}
	return q, nil
}

func (p *coqlParser) integer() (int, *coqlError) {
	t := p.next()
	if t.kind != tNumber {
		return 0, syntaxErr(t)
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n < 0 {
		return 0, syntaxErr(t)
	}
	return n, nil
}

func (p *coqlParser) expr() (*coqlCond, *coqlError) {
	left, err := p.primary()
	if err != nil {
		return nil, err
	}
	var op string
	switch {
	case p.isKw("and"):
		op = "and"
	case p.isKw("or"):
		op = "or"
	default:
		return left, nil
	}
	p.next()
	right, err := p.primary()
	if err != nil {
		return nil, err
	}
	if p.isKw("and") || p.isKw("or") {
		// Zoho rejects three or more criteria at one level without brackets (§3, G17).
		return nil, syntaxErr(p.peek())
	}
	return &coqlCond{op: op, left: left, right: right}, nil
}

func (p *coqlParser) primary() (*coqlCond, *coqlError) {
	if p.peek().kind == tLParen {
		p.next()
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if t := p.next(); t.kind != tRParen {
			return nil, syntaxErr(t)
		}
		return e, nil
	}
	col, err := p.column()
	if err != nil {
		return nil, err
	}
	p.criteria++
	if p.criteria > coqlMaxCriteria {
		return nil, limitErr("criteria", coqlMaxCriteria)
	}
	c := &coqlCond{column: col}
	t := p.peek()
	switch {
	case t.kind == tOp:
		p.next()
		c.cmp = t.text
		if c.cmp == "<>" {
			c.cmp = "!="
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		c.values = []any{v}
	case p.acceptKw("is"):
		c.cmp = "is null"
		if p.acceptKw("not") {
			c.cmp = "is not null"
		}
		if !p.acceptKw("null") {
			return nil, syntaxErr(p.peek())
		}
	default:
		negate := p.acceptKw("not")
		switch {
		case p.acceptKw("like"):
			c.cmp = "like"
			v := p.next()
			if v.kind != tString {
				return nil, invalidQuery("value given seems to be invalid for the column", map[string]any{"column_name": col, "operator": "like"})
			}
			c.values = []any{v.text}
		case p.acceptKw("in"):
			c.cmp = "in"
			if t := p.next(); t.kind != tLParen {
				return nil, syntaxErr(t)
			}
			for {
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				c.values = append(c.values, v)
				if p.peek().kind != tComma {
					break
				}
				p.next()
			}
			if t := p.next(); t.kind != tRParen {
				return nil, syntaxErr(t)
			}
			if len(c.values) > coqlMaxIn {
				return nil, limitErr("in", coqlMaxIn)
			}
		case p.acceptKw("between"):
			c.cmp = "between"
			lo, err := p.value()
			if err != nil {
				return nil, err
			}
			if !p.acceptKw("and") {
				return nil, syntaxErr(p.peek())
			}
			hi, err := p.value()
			if err != nil {
				return nil, err
			}
			c.values = []any{lo, hi}
		default:
			return nil, syntaxErr(p.peek())
		}
		if negate {
			c.cmp = "not " + c.cmp
		}
	}
	return c, nil
}

func (p *coqlParser) value() (any, *coqlError) {
	t := p.next()
	switch {
	case t.kind == tString:
		return t.text, nil
	case t.kind == tNumber:
		if len(strings.TrimLeft(t.text, "-")) > 15 && !strings.Contains(t.text, ".") {
			return t.text, nil // record ids (19 digits) do not survive a float64
		}
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, syntaxErr(t)
		}
		return f, nil
	case t.kind == tIdent && strings.EqualFold(t.text, "true"):
		return true, nil
	case t.kind == tIdent && strings.EqualFold(t.text, "false"):
		return false, nil
	}
	return nil, syntaxErr(t)
}

// ---- evaluation ------------------------------------------------------------------------------------------------

// coqlEval runs a parsed query over records; lookup resolves a record id for dotted columns.
type coqlEval struct {
	lookup func(id string) map[string]any
}

func (e coqlEval) value(rec map[string]any, col string) any {
	if base, sub, dotted := strings.Cut(col, "."); dotted {
		ref, ok := rec[base].(map[string]any)
		if !ok {
			return nil
		}
		id := str(ref["id"])
		if sub == "id" {
			return id
		}
		target := e.lookup(id)
		if target == nil {
			return nil
		}
		return target[sub]
	}
	return rec[col]
}

func (e coqlEval) match(c *coqlCond, rec map[string]any) bool {
	switch c.op {
	case "and":
		return e.match(c.left, rec) && e.match(c.right, rec)
	case "or":
		return e.match(c.left, rec) || e.match(c.right, rec)
	}
	v := e.value(rec, c.column)
	if m, ok := v.(map[string]any); ok { // a lookup compares by id
		v = str(m["id"])
	}
	switch c.cmp {
	case "is null":
		return isEmpty(v)
	case "is not null":
		return !isEmpty(v)
	case "like", "not like":
		if v == nil {
			return false
		}
		return likeMatch(str(v), str(c.values[0])) == (c.cmp == "like")
	case "in", "not in":
		if v == nil {
			return false
		}
		found := slices.ContainsFunc(c.values, func(x any) bool { n, ok := coqlCompare(v, x); return ok && n == 0 })
		return found == (c.cmp == "in")
	case "between", "not between":
		lo, okLo := coqlCompare(v, c.values[0])
		hi, okHi := coqlCompare(v, c.values[1])
		if !okLo || !okHi {
			return false
		}
		return (lo >= 0 && hi <= 0) == (c.cmp == "between")
	}
	n, ok := coqlCompare(v, c.values[0])
	if !ok {
		return false
	}
	switch c.cmp {
	case "=":
		return n == 0
	case "!=":
		return n != 0
	case "<":
		return n < 0
	case "<=":
		return n <= 0
	case ">":
		return n > 0
	case ">=":
		return n >= 0
	}
	return false
}

func likeMatch(s, pattern string) bool {
	parts := strings.Split(strings.ToLower(pattern), "%")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile("^" + strings.Join(parts, ".*") + "$")
	return err == nil && re.MatchString(strings.ToLower(s))
}

func parseAnyTime(s string) (time.Time, bool) {
	for _, l := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// coqlCompare compares a stored value with a literal (or another stored value); ok is false when they are not
// comparable (null, or mismatched types).
func coqlCompare(a, b any) (int, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	if m, ok := a.(map[string]any); ok {
		a = str(m["id"])
	}
	if m, ok := b.(map[string]any); ok {
		b = str(m["id"])
	}
	af, aNum := toFloat(a)
	bf, bNum := toFloat(b)
	_, aStr := a.(string)
	_, bStr := b.(string)
	if aNum && bNum && !(aStr && bStr) { // at least one real number: compare numerically
		switch {
		case af < bf:
			return -1, true
		case af > bf:
			return 1, true
		}
		return 0, true
	}
	if ab, ok := a.(bool); ok {
		bb, ok := b.(bool)
		if !ok {
			return 0, false
		}
		if ab == bb {
			return 0, true
		}
		if !ab {
			return -1, true
		}
		return 1, true
	}
	as, bs := str(a), str(b)
	if ta, ok := parseAnyTime(as); ok {
		if tb, ok := parseAnyTime(bs); ok {
			return ta.Compare(tb), true
		}
	}
	if strings.EqualFold(as, bs) {
		return 0, true
	}
	return strings.Compare(strings.ToLower(as), strings.ToLower(bs)), true
}

// run filters, orders and pages recs (already in ascending id order) and projects the columns.
func (e coqlEval) run(q *coqlQuery, recs []map[string]any) ([]any, bool) {
	var hits []map[string]any
	for _, r := range recs {
		if q.where == nil || e.match(q.where, r) {
			hits = append(hits, r)
		}
	}
	if len(q.order) > 0 {
		slices.SortStableFunc(hits, func(a, b map[string]any) int {
			for _, o := range q.order {
				va, vb := e.value(a, o.column), e.value(b, o.column)
				n, ok := coqlCompare(va, vb)
				if !ok { // nulls first in ascending order
					n = boolInt(va != nil) - boolInt(vb != nil)
				}
				if o.desc {
					n = -n
				}
				if n != 0 {
					return n
				}
			}
			return 0
		})
	}
	if q.offset >= len(hits) {
		return nil, false
	}
	end := min(q.offset+q.limit, len(hits))
	out := make([]any, 0, end-q.offset)
	for _, r := range hits[q.offset:end] {
		row := map[string]any{"id": r["id"]}
		for _, c := range q.columns {
			v := e.value(r, c)
			if m, ok := v.(map[string]any); ok && !strings.Contains(c, ".") {
				v = map[string]any{"id": m["id"]} // lookups come back as {"id":…} (§3)
			}
			row[c] = deepCopy(v)
		}
		out = append(out, row)
	}
	return out, end < len(hits)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validate applies the limits that depend on the server configuration.
func (q *coqlQuery) validate(maxLimit int) *coqlError {
	if len(q.columns) > coqlMaxColumns {
		return limitErr("select columns", coqlMaxColumns)
	}
	seen := map[string]bool{}
	for _, c := range q.columns {
		if seen[strings.ToLower(c)] {
			return &coqlError{code: "DUPLICATE_DATA", message: "duplicate column", details: map[string]any{"column_name": c}}
		}
		seen[strings.ToLower(c)] = true
	}
	if q.limit < 1 {
		return invalidQuery("invalid query formed", map[string]any{"reason": "limit must be at least 1"})
	}
	if q.limit > maxLimit {
		return limitErr("limit", maxLimit)
	}
	if q.offset+q.limit > coqlMaxRecords {
		return limitErr("offset", coqlMaxRecords)
	}
	return nil
}

func (s *Server) coql(rq *request) *response {
	var body struct {
		SelectQuery *string `json:"select_query"`
	}
	if err := json.Unmarshal(rq.body, &body); err != nil || body.SelectQuery == nil {
		return crmErrResp(http.StatusBadRequest, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
			map[string]any{"param_name": "select_query"})
	}
	q, cerr := parseCOQL(*body.SelectQuery)
	if cerr == nil {
		cerr = q.validate(s.cfg.coqlMaxLimit)
	}
	var mod *crmModule
	if cerr == nil {
		var ok bool
		if mod, ok = s.crm.modules[q.module]; !ok {
			cerr = invalidQuery("invalid query formed", map[string]any{"reason": "the module name given seems to be invalid", "module": q.module})
		}
	}
	if cerr != nil {
		return crmErrResp(http.StatusBadRequest, cerr.code, cerr.message, cerr.details)
	}
	recs := make([]map[string]any, 0, len(mod.recs))
	for _, id := range sortedIDs(mod) {
		recs = append(recs, mod.recs[id])
	}
	ev := coqlEval{lookup: func(id string) map[string]any { _, r := s.crm.findByID(id); return r }}
	rows, more := ev.run(q, recs)
	if len(rows) == 0 {
		return emptyResp(http.StatusNoContent)
	}
	return jsonResp(http.StatusOK, map[string]any{"data": rows, "info": map[string]any{"count": len(rows), "more_records": more}})
}
