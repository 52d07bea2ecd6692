package rulescmd

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/rules"
)

// "What if": the running rules and a candidate file evaluated on the same
// stored events, rule by rule. This file is the comparison and its report;
// reading the events and their record snapshots from NATS is the caller's
// (internal/app, `worker rules test -history`). Only the rules' triggers and
// conditions are evaluated: steps need Zoho.

// Where the record a condition saw came from (WhatIfExample.Record and
// WhatIfEvents.Record).
const (
	// RecordEvent: the rules that fit the event load no record, or it is a
	// delete, or the event's own values hold every field they ask for: the
	// worker would not have loaded one either (record is event.values).
	RecordEvent = "event"
	// RecordJournal: the snapshot the worker journaled for the event.
	RecordJournal = "journal"
	// RecordPartial: the journaled snapshot, which lacks fields the rules
	// (the candidate's, usually) ask for; they read as null.
	RecordPartial = "partial"
	// RecordNone: the rules need the record and the journal has no
	// snapshot (the event wrote nothing, or its entry expired): conditions
	// were evaluated with the event's values only.
	RecordNone = "none"
)

// WhatIfExamples is how many example event ids each count keeps.
const WhatIfExamples = 3

// WhatIf compares what two rule sets decide on the same events. Add each
// event, then Report. Not safe for concurrent use.
type WhatIf struct {
	running, candidate *rules.Set
	now                time.Time // the rules' clock: the event's received_at
	seen               map[string]bool
	order              []string
	byName             map[string]*WhatIfRule
	ev                 WhatIfEvents
}

// NewWhatIf loads the running rules file and the candidate. Both run on a
// clock set to each event's received_at, so now() and today() in a
// condition read as they did when the event arrived.
func NewWhatIf(runningFile, candidateFile string) (*WhatIf, error) {
	w := &WhatIf{seen: map[string]bool{}, byName: map[string]*WhatIfRule{}}
	w.ev.Record = map[string]int{}
	clock := rules.WithClock(func() time.Time { return w.now })
	var err error
	if w.running, err = rules.Load(runningFile, clock); err != nil {
		return nil, fmt.Errorf("running rules: %w", err)
	}
	if w.candidate, err = rules.Load(candidateFile, clock); err != nil {
		return nil, fmt.Errorf("candidate rules: %w", err)
	}
	for _, r := range w.candidate.Rules() {
		w.rule(r.Name).In = "candidate"
	}
	for _, r := range w.running.Rules() {
		x := w.rule(r.Name)
		if x.In == "candidate" {
			x.In = "both"
		} else {
			x.In = "running"
		}
	}
	return w, nil
}

func (w *WhatIf) rule(name string) *WhatIfRule {
	x := w.byName[name]
	if x == nil {
		x = &WhatIfRule{Rule: name}
		w.byName[name] = x
		w.order = append(w.order, name)
	}
	return x
}

// NeedsRecord reports whether evaluating ev needs the record snapshot of
// the event (a journal read): a rule of either file whose trigger fits
// asks for a record the event does not carry.
func (w *WhatIf) NeedsRecord(ev *rules.Event) bool {
	_, fields, load := w.needs(ev)
	return load && !(len(fields) > 0 && covers(ev.Values, fields))
}

// needs is the union of both files' record needs for ev, as the engine
// computes them (rules.Set.RecordNeeds of the rules that fit).
func (w *WhatIf) needs(ev *rules.Event) (matched [2][]*rules.Rule, fields []string, load bool) {
	matched[0], matched[1] = w.running.Match(ev), w.candidate.Match(ev)
	load, fields = w.running.RecordNeeds(slices.Concat(matched[0], matched[1]))
	if ev.Operation == "delete" {
		load = false // the worker never loads a deleted record
	}
	return matched, fields, load
}

func covers(values map[string]any, fields []string) bool {
	for _, f := range fields {
		if _, ok := values[f]; !ok {
			return false
		}
	}
	return true
}

// Undecodable counts a stored message that is not an event.
func (w *WhatIf) Undecodable() { w.ev.Undecodable++ }

// Add evaluates both files on ev. snapshot and hasSnapshot are the
// record the worker journaled for the event (worker.EventRecord's Record
// and HasRecord; nil, false when it has no entry or NeedsRecord is false).
// An event id seen before (a replay of the same event) is counted once: it
// returns false.
func (w *WhatIf) Add(ev *rules.Event, snapshot map[string]any, hasSnapshot bool) bool {
	if ev.ID != "" {
		if w.seen[ev.ID] {
			w.ev.Repeated++
			return false
		}
		w.seen[ev.ID] = true
	}
	w.ev.Evaluated++
	w.now = ev.ReceivedAt
	if w.now.IsZero() {
		w.now = time.Now()
	}
	matched, fields, load := w.needs(ev)
	record, source := ev.Values, RecordEvent
	switch {
	case !load, len(fields) > 0 && covers(ev.Values, fields):
	case hasSnapshot:
		record, source = snapshot, RecordJournal
		if len(fields) > 0 && !covers(snapshot, fields) {
			source = RecordPartial
		}
	default:
		source = RecordNone
	}
	w.ev.Record[source]++
	if source == RecordNone && len(w.ev.NoSnapshot) < WhatIfExamples {
		w.ev.NoSnapshot = append(w.ev.NoSnapshot, ev.ID)
	}

	changed := false
	for _, name := range w.order {
		x := w.byName[name]
		before := evalRule(w.running.Rule(name), matched[0], ev, record)
		after := evalRule(w.candidate.Rule(name), matched[1], ev, record)
		x.Running.add(before)
		x.Candidate.add(after)
		if (before.kind == verdictNotTriggered || before.kind == verdictAbsent) &&
			(after.kind == verdictNotTriggered || after.kind == verdictAbsent) {
			x.Unchanged.Count++
			continue
		}
		// The rule's condition was evaluated in one version at least.
		uncertain := (source == RecordNone || source == RecordPartial) && loads(w.running.Rule(name), w.candidate.Rule(name))
		if uncertain {
			x.WithoutSnapshot++
		}
		example := func() WhatIfExample {
			return WhatIfExample{ID: ev.ID, ReceivedAt: ev.ReceivedAt, Record: source,
				Running: w.describe(w.running, name, before, ev, record), Candidate: w.describe(w.candidate, name, after, ev, record)}
		}
		was, is := before.kind == verdictMatched, after.kind == verdictMatched
		switch {
		case !was && is:
			x.NowMatch.add(example)
			changed = true
		case was && !is:
			x.NoLongerMatch.add(example)
			changed = true
		default:
			x.Unchanged.Count++
			if is {
				x.Unchanged.Matching++
			}
		}
		if before.triggered() && after.triggered() {
			switch {
			case !was && is:
				x.ConditionNowTrue.add(example)
			case was && !is:
				x.ConditionNowFalse.add(example)
			}
		}
		if after.kind == verdictError {
			x.ConditionErrors.add(example)
		}
	}
	if changed {
		w.ev.Changed++
	}
	return true
}

func loads(rs ...*rules.Rule) bool {
	for _, r := range rs {
		if r != nil && r.LoadRecord {
			return true
		}
	}
	return false
}

type verdictKind uint8

const (
	verdictAbsent       verdictKind = iota // the file has no such rule
	verdictNotTriggered                    // disabled, or the trigger does not fit
	verdictFalse                           // the condition is false
	verdictError                           // the condition failed (the worker dead-letters the event)
	verdictMatched                         // trigger and condition pass: the steps would run
)

type verdict struct {
	kind verdictKind
	err  error
}

func (v verdict) triggered() bool { return v.kind >= verdictFalse }

func evalRule(r *rules.Rule, matched []*rules.Rule, ev *rules.Event, record map[string]any) verdict {
	switch {
	case r == nil:
		return verdict{kind: verdictAbsent}
	case !slices.Contains(matched, r):
		return verdict{kind: verdictNotTriggered}
	}
	ok, err := r.Condition(ev, record)
	switch {
	case err != nil:
		return verdict{kind: verdictError, err: err}
	case ok:
		return verdict{kind: verdictMatched}
	}
	return verdict{kind: verdictFalse}
}

// describe says in words what one file decided, for examples: why a rule
// is not triggered comes from rules.Set.Explain (only for examples).
func (w *WhatIf) describe(set *rules.Set, name string, v verdict, ev *rules.Event, record map[string]any) string {
	switch v.kind {
	case verdictAbsent:
		return "absent"
	case verdictMatched:
		return "matched"
	case verdictFalse:
		return "condition false"
	case verdictError:
		return "condition error: " + v.err.Error()
	}
	for _, x := range set.Explain(ev, record) {
		if x.Rule == name {
			return "not triggered: " + x.Reason
		}
	}
	return "not triggered"
}

// WhatIfReport is the result, as `rules test -history -json` prints it.
type WhatIfReport struct {
	// Window: what was read (filled by the caller that read it).
	Window    *WhatIfWindow `json:"window,omitempty"`
	Running   WhatIfFile    `json:"running"`
	Candidate WhatIfFile    `json:"candidate"`
	Events    WhatIfEvents  `json:"events"`
	// Rules: the candidate's rules in file order, then those only the
	// running file has.
	Rules []*WhatIfRule `json:"rules"`
}

// WhatIfWindow is the part of the history read.
type WhatIfWindow struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Subject string    `json:"subject"`
	Stream  string    `json:"stream"`
}

// WhatIfFile names a rules file.
type WhatIfFile struct {
	File    string `json:"file"`
	Version string `json:"version"`
	Rules   int    `json:"rules"`
}

// WhatIfEvents counts the events read.
type WhatIfEvents struct {
	Read        int `json:"read"`        // messages read from the history
	Evaluated   int `json:"evaluated"`   // distinct events evaluated
	Undecodable int `json:"undecodable"` // messages that are not events (skipped)
	Repeated    int `json:"repeated"`    // replays of an event already evaluated (skipped)
	// Changed: events for which at least one rule now matches or no longer does.
	Changed int `json:"changed"`
	// Record: evaluated events by where their record came from (event,
	// journal, partial, none; see the Record* constants).
	Record map[string]int `json:"record"`
	// NoSnapshot: a few events whose rules needed a record the journal
	// does not have.
	NoSnapshot []string `json:"no_snapshot,omitempty"`
}

// WhatIfRule is one rule's comparison. Every evaluated event falls in
// exactly one of now_match, no_longer_match and unchanged;
// condition_now_true and condition_now_false are the events of now_match
// and no_longer_match where the trigger fit in both files (the condition
// made the difference).
type WhatIfRule struct {
	Rule string `json:"rule"`
	// In: both, running (the candidate removes it) or candidate (it adds it).
	In                string          `json:"in"`
	Running           WhatIfTally     `json:"running"`
	Candidate         WhatIfTally     `json:"candidate"`
	NowMatch          WhatIfChange    `json:"now_match"`
	NoLongerMatch     WhatIfChange    `json:"no_longer_match"`
	Unchanged         WhatIfUnchanged `json:"unchanged"`
	ConditionNowTrue  WhatIfChange    `json:"condition_now_true"`
	ConditionNowFalse WhatIfChange    `json:"condition_now_false"`
	// ConditionErrors: the candidate's condition fails (the worker would
	// dead-letter these events).
	ConditionErrors WhatIfChange `json:"condition_errors"`
	// WithoutSnapshot: events where the rule loads the record, its
	// condition was evaluated, and the record was RecordNone or
	// RecordPartial: its verdict there is a guess.
	WithoutSnapshot int `json:"without_snapshot"`
}

// WhatIfTally is what one file's version of a rule did.
type WhatIfTally struct {
	Triggered       int `json:"triggered"` // the trigger fit (the condition was evaluated)
	Matched         int `json:"matched"`   // trigger and condition passed
	ConditionErrors int `json:"condition_errors"`
}

func (t *WhatIfTally) add(v verdict) {
	if v.triggered() {
		t.Triggered++
	}
	switch v.kind {
	case verdictMatched:
		t.Matched++
	case verdictError:
		t.ConditionErrors++
	}
}

// WhatIfChange counts events, with a few examples.
type WhatIfChange struct {
	Count    int             `json:"count"`
	Examples []WhatIfExample `json:"examples,omitempty"`
}

func (c *WhatIfChange) add(example func() WhatIfExample) {
	c.Count++
	if len(c.Examples) < WhatIfExamples {
		c.Examples = append(c.Examples, example())
	}
}

// WhatIfUnchanged counts events on which both files agree.
type WhatIfUnchanged struct {
	Count    int `json:"count"`
	Matching int `json:"matching"` // of which the rule matches in both
}

// WhatIfExample is one event, and what each file decided for the rule.
type WhatIfExample struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Record     string    `json:"record"` // event, journal, partial or none
	// Running and Candidate: "matched", "condition false", "condition
	// error: ...", "not triggered: why" or "absent" (the file has
	// no such rule).
	Running   string `json:"running"`
	Candidate string `json:"candidate"`
}

// Report returns the comparison so far.
func (w *WhatIf) Report() *WhatIfReport {
	rep := &WhatIfReport{
		Running:   WhatIfFile{File: w.running.File(), Version: w.running.Version(), Rules: len(w.running.Rules())},
		Candidate: WhatIfFile{File: w.candidate.File(), Version: w.candidate.Version(), Rules: len(w.candidate.Rules())},
		Events:    w.ev,
	}
	rep.Events.Read = w.ev.Evaluated + w.ev.Undecodable + w.ev.Repeated
	for _, name := range w.order {
		rep.Rules = append(rep.Rules, w.byName[name])
	}
	return rep
}

// WriteJSON prints the report as one indented JSON document.
func (r *WhatIfReport) WriteJSON(out io.Writer) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("what if: %w", err)
	}
	return nil
}

// WriteText prints the report for people.
func (r *WhatIfReport) WriteText(out io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "What if %s (version %s, %d rules) replaced %s (version %s, %d rules)\n",
		r.Candidate.File, r.Candidate.Version, r.Candidate.Rules, r.Running.File, r.Running.Version, r.Running.Rules)
	if w := r.Window; w != nil {
		fmt.Fprintf(&b, "history: stream %s, subject %s, %s … %s\n", w.Stream, w.Subject,
			w.Since.UTC().Format(time.RFC3339), w.Until.UTC().Format(time.RFC3339))
	}
	e := r.Events
	fmt.Fprintf(&b, "events: %d evaluated", e.Evaluated)
	if e.Repeated > 0 {
		fmt.Fprintf(&b, ", %d replay(s) of an event already counted", e.Repeated)
	}
	if e.Undecodable > 0 {
		fmt.Fprintf(&b, ", %d message(s) that are not events skipped", e.Undecodable)
	}
	fmt.Fprintf(&b, "; %d where a rule now matches or no longer does\n", e.Changed)
	fmt.Fprintf(&b, "records: %d needed none or came with the event, %d journaled snapshot(s)", e.Record[RecordEvent], e.Record[RecordJournal])
	if n := e.Record[RecordPartial]; n > 0 {
		fmt.Fprintf(&b, ", %d snapshot(s) lacking fields the rules read (read as null)", n)
	}
	if n := e.Record[RecordNone]; n > 0 {
		fmt.Fprintf(&b, ", %d without a record snapshot (evaluated with the event's values only; e.g. %s)", n, strings.Join(e.NoSnapshot, ", "))
	}
	b.WriteString("\n")
	for _, x := range r.Rules {
		b.WriteString("\n")
		x.writeText(&b)
	}
	_, err := io.WriteString(out, b.String())
	if err != nil {
		return fmt.Errorf("what if: %w", err)
	}
	return nil
}

func (x *WhatIfRule) writeText(b *strings.Builder) {
	in := map[string]string{"both": "", "running": " (removed by the candidate)", "candidate": " (added by the candidate)"}[x.In]
	fmt.Fprintf(b, "rule %s%s\n", x.Rule, in)
	if x.Running.Triggered == 0 && x.Candidate.Triggered == 0 {
		fmt.Fprintf(b, "  no event fits its trigger (%d unchanged)\n", x.Unchanged.Count)
		return
	}
	fmt.Fprintf(b, "  matched %d → %d, trigger fit %d → %d\n", x.Running.Matched, x.Candidate.Matched, x.Running.Triggered, x.Candidate.Triggered)
	change := func(label string, c WhatIfChange, always bool) {
		if c.Count == 0 && !always {
			return
		}
		fmt.Fprintf(b, "  %s: %d\n", label, c.Count)
		for _, ex := range c.Examples {
			fmt.Fprintf(b, "      %s  %s → %s", ex.ID, ex.Running, ex.Candidate)
			switch ex.Record {
			case RecordNone:
				b.WriteString("  [no record snapshot]")
			case RecordPartial:
				b.WriteString("  [record snapshot lacks fields]")
			}
			b.WriteString("\n")
		}
	}
	change("now match", x.NowMatch, true)
	change("no longer match", x.NoLongerMatch, true)
	fmt.Fprintf(b, "  unchanged: %d (%d match in both)\n", x.Unchanged.Count, x.Unchanged.Matching)
	change("condition now true", x.ConditionNowTrue, false)
	change("condition now false", x.ConditionNowFalse, false)
	change("condition errors (the worker would dead-letter these)", x.ConditionErrors, false)
	if x.WithoutSnapshot > 0 {
		fmt.Fprintf(b, "  %d verdict(s) on a missing or partial record snapshot: a guess\n", x.WithoutSnapshot)
	}
}
