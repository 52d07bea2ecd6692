package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr/file"
)

// Problem is one error found while loading a rules file.
type Problem struct {
	File      string
	Line, Col int
	Rule      string // empty when the problem is not inside a rule
	Message   string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
	}
	b.WriteString(": ")
	if p.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", p.Rule)
	}
	b.WriteString(p.Message)
	return b.String()
}

// LoadError lists every problem of a rules file, in file order.
type LoadError struct {
	Problems []Problem
}

// Error prints one problem per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (e *LoadError) sort() {
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i], e.Problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// ErrRecordMissing marks executor errors saying the record a step reads or
// writes does not exist (any more). The rule's on_missing decides: skip
// stops the rule quietly (Result.Missing), dead_letter fails it for good.
var ErrRecordMissing = errors.New("rules: record does not exist")

// ErrTransient marks executor errors that a later attempt may not meet (a
// rate limit, a 5xx, a timeout, the journal unavailable). on_failure skip
// and stop are about Zoho refusing a step; a transient failure always
// fails the rule, so the worker retries the event instead of dropping the
// step. Executors wrap such errors with Transient.
var ErrTransient = errors.New("rules: transient failure")

// Transient marks err as transient (see ErrTransient); nil stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err}
}

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() []error { return []error{e.err, ErrTransient} }

// ErrEvaluation marks a condition or template that failed at run time (a
// missing field, a type mismatch). Retrying cannot fix it: the worker should
// dead-letter the event.
var ErrEvaluation = errors.New("rules: evaluation error")

// StepError is returned by Rule.Run when a step fails and the rule does not
// continue: the executor failed with on_failure retry, or an expression
// failed (then Err wraps ErrEvaluation).
type StepError struct {
	Rule   string
	Step   string // step id, or "#index" for a step without id; "when" for the rule condition
	Action string
	Err    error
}

func (e *StepError) Error() string {
	if e.Action == "" {
		return fmt.Sprintf("rule %q step %s: %v", e.Rule, e.Step, e.Err)
	}
	return fmt.Sprintf("rule %q step %s (%s): %v", e.Rule, e.Step, e.Action, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// evalError wraps an expression failure so that errors.Is(err, ErrEvaluation)
// holds while the message keeps the expression's own words.
type evalError struct {
	where string
	err   error
}

func (e *evalError) Error() string {
	// expr's own Error() adds a multi-line source snippet; one line reads
	// better in logs and results.
	var fe *file.Error
	if errors.As(e.err, &fe) {
		return fmt.Sprintf("%s: %s (at column %d)", e.where, fe.Message, fe.Column+1)
	}
	return e.where + ": " + e.err.Error()
}

func (e *evalError) Unwrap() []error { return []error{ErrEvaluation, e.err} }

// suggest returns the closest candidate to s, or "" when none is close.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	if bestD <= limit && bestD*3 <= len([]rune(s)) || (best != "" && (strings.HasPrefix(best, s) || strings.HasPrefix(s, best)) && len(s) >= 3) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func didYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}
