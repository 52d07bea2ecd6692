package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// maxNodes bounds the size of one expression: rules are configuration, not
// programs, and a bound keeps a pasted blob from compiling for seconds.
const maxNodes = 500

// memoryBudget bounds what one evaluation may allocate (expr counts list and
// map items), so `map(1..1e9, ...)` fails fast instead of eating the worker.
const memoryBudget = 200_000

// compiled is one expression compiled against exprEnv.
type compiled struct {
	src     string
	prog    *vm.Program
	steps   []string   // step ids referenced as steps.<id>
	usesRec bool       // refers to `record`
	vms     *sync.Pool // of *vm.VM, shared by a Set's expressions
}

// exprRef is one steps.X / vars.X / record.X reference found in an expression.
type exprRef struct {
	root, name string
	from       int // rune offset in the expression source
}

func (c *compiled) run(env *exprEnv) (any, error) {
	m := c.vms.Get().(*vm.VM)
	defer c.vms.Put(m)
	return m.Run(c.prog, env)
}

// newVMPool returns a pool of VMs: reusing one saves its stack allocations
// on every evaluation. Run resets a VM's state, including the memory count.
func newVMPool() *sync.Pool {
	return &sync.Pool{New: func() any { return &vm.VM{MemoryBudget: memoryBudget} }}
}

// exprOptions builds the compile options of a Set: environment type, the
// helper functions (clock injected for tests) and the node bound.
func exprOptions(o *options) []expr.Option {
	loc := o.loc
	now := o.now
	parseDate := func(v any) (time.Time, bool, error) { // (time, wasDateOnly, err)
		switch x := v.(type) {
		case time.Time:
			return x, false, nil
		case string:
			if t, err := time.ParseInLocation("2006-01-02", x, loc); err == nil {
				return t, true, nil
			}
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02 15:04:05"} {
				if t, err := time.ParseInLocation(layout, x, loc); err == nil {
					return t, false, nil
				}
			}
			return time.Time{}, false, fmt.Errorf("cannot read %q as a date (want 2006-01-02 or RFC 3339)", x)
		}
		return time.Time{}, false, fmt.Errorf("want a date, got %T", v)
	}
	return []expr.Option{
		expr.Env(exprEnv{}),
		expr.MaxNodes(maxNodes),
		expr.DisableBuiltin("now"),
		expr.Function("now", func(...any) (any, error) { return now().In(loc), nil }, new(func() time.Time)),
		expr.Function("today", func(...any) (any, error) { return now().In(loc).Format("2006-01-02"), nil }, new(func() string)),
		expr.Function("addDays", func(p ...any) (any, error) {
			t, dateOnly, err := parseDate(p[0])
			if err != nil {
				return nil, fmt.Errorf("addDays: %w", err)
			}
			n, ok := toInt(p[1])
			if !ok {
				return nil, fmt.Errorf("addDays: want a whole number of days, got %v", p[1])
			}
			t = t.AddDate(0, 0, n)
			if dateOnly {
				return t.Format("2006-01-02"), nil
			}
			return t, nil
		}, new(func(any, any) any)),
		expr.Function("formatDate", func(p ...any) (any, error) {
			t, _, err := parseDate(p[0])
			if err != nil {
				return nil, fmt.Errorf("formatDate: %w", err)
			}
			layout, ok := p[1].(string)
			if !ok {
				return nil, fmt.Errorf("formatDate: layout must be a string")
			}
			return t.In(loc).Format(layout), nil
		}, new(func(any, string) string)),
		expr.Function("str", func(p ...any) (any, error) { return stringify(p[0]), nil }, new(func(any) string)),
		// coql quotes a value for a crm.coql query (see coqlLiteral): the
		// one safe way to put record or event data into COQL.
		expr.Function("coql", func(p ...any) (any, error) { return coqlLiteral(p[0]) }, new(func(any) string)),
	}
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		if x == math.Trunc(x) {
			return int(x), true
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		return n, err == nil
	}
	return 0, false
}

// compileExpr compiles src; on failure it returns the error message and the
// rune offset of the problem inside src (-1 when unknown).
func compileExpr(src string, opts []expr.Option, vms *sync.Pool, asBool bool) (*compiled, []exprRef, string, int) {
	if asBool {
		opts = append(opts[:len(opts):len(opts)], expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		if fe, ok := err.(*file.Error); ok {
			return nil, nil, fe.Message, fe.From
		}
		return nil, nil, err.Error(), -1
	}
	c := &compiled{src: src, prog: prog, vms: vms}
	v := &refVisitor{}
	node := prog.Node()
	ast.Walk(&node, v)
	seen := map[string]bool{}
	for _, r := range v.refs {
		if r.root == "steps" && !seen[r.name] {
			seen[r.name] = true
			c.steps = append(c.steps, r.name)
		}
	}
	c.usesRec = v.usesRecord
	return c, v.refs, "", -1
}

type refVisitor struct {
	refs       []exprRef
	usesRecord bool
}

func (v *refVisitor) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		if x.Value == "record" {
			v.usesRecord = true
		}
	case *ast.MemberNode:
		id, ok := x.Node.(*ast.IdentifierNode)
		if !ok {
			return
		}
		if p, ok := x.Property.(*ast.StringNode); ok {
			switch id.Value {
			case "steps", "vars", "record":
				v.refs = append(v.refs, exprRef{root: id.Value, name: p.Value, from: x.Location().From})
			}
		}
	}
}

// stringify renders a value inside an interpolated string: numbers without
// exponent, nil as empty, lists and maps as JSON.
func stringify(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int, int64, int32, uint64, bool:
		return fmt.Sprint(x)
	case time.Time:
		return x.Format(time.RFC3339)
	case json.Number:
		return x.String()
	case fmt.Stringer:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
