package rules

import (
	"maps"
	"strconv"
	"time"
)

// Set is a loaded, validated rules file. It is immutable: the watcher swaps
// whole sets, so a running rule never sees a half-applied edit.
type Set struct {
	file    string
	version string
	rules   []*Rule
	vars    map[string]any
	index   map[indexKey][]*Rule
	opts    options
	// warnings: see Warnings.
	warnings []Problem
}

// Warnings lists what loaded but deserves the author's attention: steps
// whose exactly-once guarantee has a hole the rule could close (see
// docs/rules.md, "Exactly once").
func (s *Set) Warnings() []Problem { return s.warnings }

// Rule is one rule of a Set. Its fields are read-only.
type Rule struct {
	Name        string
	Description string
	Disabled    bool
	Line        int // line of the rule in the file

	// Trigger. Empty Modules/Operations mean any; lowercased for matching.
	Sources     []string
	Connections []string
	Modules     []string
	Operations  []string
	Changed     []string
	// ChangedUnknown says what `changed:` does when the event names no
	// changed fields: "match" (default; the condition decides) or "skip".
	ChangedUnknown string

	// LoadRecord asks the worker to load the record before the condition.
	// RecordFields empty with LoadRecord = all fields.
	LoadRecord   bool
	RecordFields []string

	// OnMissing: what happens when the event's record (or a step's target
	// record) no longer exists in Zoho: OnMissingSkip (default) or
	// OnMissingDeadLetter.
	OnMissing string

	Steps []*Step

	when *compiled
	set  *Set
	pos  int // order in the file
}

// Step is one action of a rule.
type Step struct {
	ID        string // may be empty: then nothing can refer to the step
	Index     int
	Action    string
	OnFailure string // retry | skip | stop
	InDoubt   string // resend | dead_letter
	Line      int

	when *compiled
	with *mapValue
}

// Step failure policies.
const (
	OnFailureRetry = "retry"
	OnFailureSkip  = "skip"
	OnFailureStop  = "stop"
)

// Missing-record policies (a rule's on_missing): edit-then-delete is
// everyday Zoho traffic, so by default a rule whose record is gone is
// skipped (logged, counted), never retried.
const (
	OnMissingSkip       = "skip"
	OnMissingDeadLetter = "dead_letter"
)

// In-doubt policies: what the worker does with a write step that was
// interrupted after it may have reached Zoho (a crash, or an answer lost to
// a timeout or 5xx), when it cannot find out whether Zoho carried it out.
const (
	InDoubtResend     = "resend"      // send it again (the default)
	InDoubtDeadLetter = "dead_letter" // send nothing; dead-letter the event for a human to decide
)

// Key is the stable identity of a step within its rule, used by the worker's
// journal: rule name + "/" + (step id or "#index").
func (s *Step) Key(rule string) string {
	return rule + "/" + s.ref()
}

func (s *Step) ref() string {
	if s.ID != "" {
		return s.ID
	}
	return "#" + strconv.Itoa(s.Index)
}

// Version is a short hash of the file's content.
func (s *Set) Version() string { return s.version }

// File is the name the set was loaded from.
func (s *Set) File() string { return s.file }

// Rules returns the rules in file order (disabled ones included).
func (s *Set) Rules() []*Rule { return append([]*Rule(nil), s.rules...) }

// Rule returns the rule with that name, or nil.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Vars returns a copy of the top-level vars.
func (s *Set) Vars() map[string]any { return maps.Clone(s.vars) }

// Option configures loading.
type Option func(*options)

type options struct {
	now func() time.Time
	loc *time.Location
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now, loc: time.UTC}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithClock sets the clock behind now() and today() (tests use a fixed one).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithLocation sets the time zone of now(), today() and date parsing
// (default UTC).
func WithLocation(loc *time.Location) Option {
	return func(o *options) {
		if loc != nil {
			o.loc = loc
		}
	}
}
