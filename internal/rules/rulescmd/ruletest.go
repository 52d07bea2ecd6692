package rulescmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/zoho"
)

// testFile is a rule test file (NAME.test.yaml); docs/rules.md, "Testing
// your rules", describes it for users.
type testFile struct {
	// Rules is the rules file under test, relative to the test file;
	// default NAME.yaml next to NAME.test.yaml.
	Rules string `yaml:"rules"`
	// Now is the clock of now() and today() (RFC 3339); default the time
	// the run starts. A case may set its own.
	Now string `yaml:"now"`
	// OrganizationID is the Books organization_id of planned Books calls
	// that do not give one; default ORGANIZATION_ID.
	OrganizationID string     `yaml:"organization_id"`
	Cases          []testCase `yaml:"cases"`
}

type testCase struct {
	Name string `yaml:"name"`
	Now  string `yaml:"now"`
	// Event is a zohook event (as for --event) or a CRM notification body.
	Event map[string]any `yaml:"event"`
	// Callback is a request as Zoho POSTs it, run through the receiver.
	Callback *callback `yaml:"callback"`
	// Record is the record Zoho returns when the worker loads it.
	Record map[string]any `yaml:"record"`
	// Outputs are the outputs of steps, by step key (rule/step-id or
	// rule/#index): what Zoho answers to the steps that read.
	Outputs map[string]map[string]any `yaml:"outputs"`
	// Refuse makes Zoho refuse steps (by key, with a message), to test
	// on_failure.
	Refuse map[string]string `yaml:"refuse"`
	Expect expectation       `yaml:"expect"`

	line int
}

// expectation: every part is optional; an absent part is not checked.
type expectation struct {
	// Event: fields the event must have (a subset), e.g. what the
	// receiver made of a callback.
	Event map[string]any `yaml:"event"`
	// Match: exactly the rules that match (run their steps).
	Match *[]string `yaml:"match"`
	// NoMatch: rules that must not match, with the stage they stop at
	// (source, module, operation, connection, changed, condition,
	// disabled) and optionally part of the reason.
	NoMatch map[string]noMatch `yaml:"no_match"`
	// Calls: exactly the requests sent, in order, each compared on the
	// fields it gives (query and body: a subset).
	Calls *[]expectedCall `yaml:"calls"`
	// Skipped: exactly the steps whose when is false.
	Skipped *[]string `yaml:"skipped"`
	// Failed: the steps that fail, with part of the error. A failure the
	// case does not list fails the case.
	Failed map[string]string `yaml:"failed"`
}

type noMatch struct {
	Stage  string
	Reason string
}

// UnmarshalYAML reads `rule: stage` or `rule: {stage: ..., reason: ...}`.
func (n *noMatch) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		n.Stage = s
		return nil
	}
	var p struct {
		Stage  string `yaml:"stage"`
		Reason string `yaml:"reason"`
	}
	if err := unmarshal(&p); err != nil {
		return err
	}
	n.Stage, n.Reason = p.Stage, p.Reason
	return nil
}

type expectedCall struct {
	Step   string         `yaml:"step"`
	Method string         `yaml:"method"`
	Path   string         `yaml:"path"`
	Query  map[string]any `yaml:"query"`
	Body   any            `yaml:"body"`
}

var stages = []string{"disabled", "source", "module", "operation", "connection", "changed", "condition"}

// runTestFiles runs the test files named by args (files or directories;
// default the *.test.yaml of the current directory) and returns the exit
// code.
func runTestFiles(ctx context.Context, args []string, runRE string, verbose bool, stdout, stderr io.Writer) int {
	var filter *regexp.Regexp
	if runRE != "" {
		re, err := regexp.Compile(runRE)
		if err != nil {
			fmt.Fprintf(stderr, "rules test: -run: %v\n", err)
			return 2
		}
		filter = re
	}
	var files []string
	if len(args) == 0 {
		// Only this directory: walking a whole checkout (a -dev data
		// directory, .git) to find tests would be slow and surprising.
		files, _ = filepath.Glob("*.test.yaml")
		if len(files) == 0 {
			fmt.Fprintf(stderr, "rules test: no *.test.yaml in the current directory\n\n%s", usage)
			return 2
		}
	}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			fmt.Fprintf(stderr, "rules test: %v\n", err)
			return 2
		}
		if !st.IsDir() {
			if !strings.HasSuffix(a, ".test.yaml") {
				fmt.Fprintf(stderr, "rules test: %s is not a test file (*.test.yaml); for a dry run of one event give --event EVENT.json\n", a)
				return 2
			}
			files = append(files, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".test.yaml") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "rules test: %v\n", err)
			return 2
		}
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "rules test: no *.test.yaml in %s\n\n%s", strings.Join(args, ", "), usage)
		return 2
	}
	failedFiles, cases, failedCases := 0, 0, 0
	for _, f := range files {
		var b strings.Builder
		n, failed, err := runTestFile(ctx, f, filter, verbose, &b)
		if err != nil {
			fmt.Fprintf(&b, "FAIL  %s: %v\n", f, err)
			failedFiles++
		} else if failed > 0 {
			failedFiles++
		}
		cases += n
		failedCases += failed
		if _, err := io.WriteString(stdout, b.String()); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if len(files) > 1 {
		if failedFiles > 0 {
			fmt.Fprintf(stdout, "FAIL: %d of %d cases failed, %d of %d files\n", failedCases, cases, failedFiles, len(files))
		} else {
			fmt.Fprintf(stdout, "PASS: %d cases in %d files\n", cases, len(files))
		}
	}
	if failedFiles > 0 {
		return 1
	}
	return 0
}

// loadTestFile decodes a test file strictly (an unknown key is an error
// with its line) and finds each case's line.
func loadTestFile(file string) (*testFile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading test file: %w", err)
	}
	var tf testFile
	if err := yaml.UnmarshalWithOptions(data, &tf, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("%s", yaml.FormatError(err, false, true))
	}
	if len(tf.Cases) == 0 {
		return nil, errors.New("no cases")
	}
	if ast, err := parser.ParseBytes(data, 0); err == nil {
		for i := range tf.Cases {
			p, err := yaml.PathString(fmt.Sprintf("$.cases[%d]", i))
			if err != nil {
				continue
			}
			if n, err := p.FilterFile(ast); err == nil && n != nil && n.GetToken() != nil && n.GetToken().Position != nil {
				tf.Cases[i].line = n.GetToken().Position.Line
			}
		}
	}
	return &tf, nil
}

func parseNow(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("now: want an RFC 3339 time such as 2026-03-30T09:00:00Z: %w", err)
	}
	return t.UTC(), nil
}

// runTestFile runs one file's cases, writing the results to out; it
// returns how many cases ran and failed. An error is a file that cannot
// run at all (unreadable, invalid rules).
func runTestFile(ctx context.Context, file string, filter *regexp.Regexp, verbose bool, out *strings.Builder) (int, int, error) {
	tf, err := loadTestFile(file)
	if err != nil {
		return 0, 0, err
	}
	rulesFile := tf.Rules
	if rulesFile == "" {
		rulesFile = strings.TrimSuffix(filepath.Base(file), ".test.yaml") + ".yaml"
	}
	if !filepath.IsAbs(rulesFile) {
		rulesFile = filepath.Join(filepath.Dir(file), rulesFile)
	}
	fileNow, err := parseNow(tf.Now, time.Now().UTC())
	if err != nil {
		return 0, 0, err
	}
	now := fileNow
	set, err := rules.Load(rulesFile, rules.WithClock(func() time.Time { return now }))
	if err != nil {
		return 0, 0, fmt.Errorf("rules file %s does not load:\n%w", rulesFile, err)
	}
	// The base URL is fixed (not the environment's): tests compare paths,
	// and must give the same result on every machine.
	cfg := zoho.Config{DC: "us", BooksOrgID: tf.OrganizationID}
	if cfg.BooksOrgID == "" {
		cfg.BooksOrgID = placeholderOrg
	}
	keys := stepKeys(set)
	names := map[string]bool{}
	matched := map[string]bool{}
	ran, failed := 0, 0
	for _, tc := range tf.Cases {
		if filter != nil && !filter.MatchString(tc.Name) {
			continue
		}
		ran++
		where := fmt.Sprintf("%s:%d", file, tc.line)
		var problems []string
		var rep *report
		switch {
		case tc.Name == "":
			problems = []string{"the case has no name"}
		case names[tc.Name]:
			problems = []string{"another case has the same name"}
		default:
			names[tc.Name] = true
			if now, err = parseNow(tc.Now, fileNow); err != nil {
				problems = []string{err.Error()}
				break
			}
			rep, problems = runCase(ctx, set, cfg, keys, &tc, now)
		}
		if rep != nil {
			for _, x := range rep.Rules {
				if x.Matched {
					matched[x.Rule] = true
				}
			}
		}
		if len(problems) > 0 {
			failed++
			fmt.Fprintf(out, "--- FAIL: %s (%s)\n", tc.Name, where)
			for _, p := range problems {
				out.WriteString(indent(p+"\n", "    "))
			}
			if rep != nil && verbose {
				var b strings.Builder
				printText(&b, rep)
				out.WriteString(indent("what happened:\n"+b.String(), "    "))
			}
			continue
		}
		if verbose {
			fmt.Fprintf(out, "--- PASS: %s (%s)\n", tc.Name, where)
			var b strings.Builder
			printText(&b, rep)
			out.WriteString(indent(b.String(), "    "))
		}
	}
	summary := fmt.Sprintf("%d cases", ran)
	if failed > 0 {
		summary = fmt.Sprintf("%d of %d cases failed", failed, ran)
	}
	if filter == nil {
		var never []string
		for _, r := range set.Rules() {
			if !matched[r.Name] && !r.Disabled {
				never = append(never, r.Name)
			}
		}
		if len(never) == 0 {
			summary += fmt.Sprintf("; every rule of %s matches in a case", rulesFile)
		} else {
			summary += fmt.Sprintf("; rules of %s no case matches: %s", rulesFile, strings.Join(never, ", "))
		}
	}
	if failed > 0 {
		fmt.Fprintf(out, "FAIL  %s: %s\n", file, summary)
	} else {
		fmt.Fprintf(out, "ok    %s: %s\n", file, summary)
	}
	return ran, failed, nil
}

func stepKeys(set *rules.Set) []string {
	var keys []string
	for _, r := range set.Rules() {
		for _, st := range r.Steps {
			keys = append(keys, st.Key(r.Name))
		}
	}
	return keys
}

// runCase runs one case and returns what happened and every way it
// differs from the case's expectations.
func runCase(ctx context.Context, set *rules.Set, cfg zoho.Config, keys []string, tc *testCase, now time.Time) (*report, []string) {
	var problems []string
	checkKeys := func(what string, ks []string) {
		for _, k := range ks {
			if !slices.Contains(keys, k) {
				problems = append(problems, fmt.Sprintf("%s: no step %s in the rules (steps are rule/id, or rule/#index without id: %s)", what, k, strings.Join(keys, ", ")))
			}
		}
	}
	checkKeys("outputs", mapKeys(tc.Outputs))
	checkKeys("refuse", mapKeys(tc.Refuse))
	checkKeys("expect.failed", mapKeys(tc.Expect.Failed))
	if tc.Expect.Skipped != nil {
		checkKeys("expect.skipped", *tc.Expect.Skipped)
	}
	if tc.Expect.Calls != nil {
		for i, c := range *tc.Expect.Calls {
			if c.Step != "" {
				checkKeys(fmt.Sprintf("expect.calls[%d].step", i), []string{c.Step})
			}
		}
	}
	for r, nm := range tc.Expect.NoMatch {
		if set.Rule(r) == nil {
			problems = append(problems, fmt.Sprintf("expect.no_match: no rule %s", r))
		}
		if nm.Stage != "" && !slices.Contains(stages, nm.Stage) {
			problems = append(problems, fmt.Sprintf("expect.no_match.%s: stage %q is not one of %s", r, nm.Stage, strings.Join(stages, ", ")))
		}
	}
	if tc.Expect.Match != nil {
		for _, r := range *tc.Expect.Match {
			if set.Rule(r) == nil {
				problems = append(problems, fmt.Sprintf("expect.match: no rule %s", r))
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}

	ev, note, err := caseEvent(tc, now)
	if err != nil {
		return nil, []string{err.Error()}
	}
	var record map[string]any
	if tc.Record != nil {
		record = zoho.NormalizeNumbers(tc.Record).(map[string]any)
	}
	outputs := map[string]map[string]any{}
	for k, v := range tc.Outputs {
		if v == nil {
			v = map[string]any{}
		}
		outputs[k] = zoho.NormalizeNumbers(v).(map[string]any)
	}
	rep, err := evaluate(ctx, set, ev, record, newWireExec(cfg, outputs, tc.Refuse))
	if err != nil {
		return nil, []string{err.Error()}
	}
	rep.Note = note
	return rep, compare(rep, &tc.Expect)
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// caseEvent builds the case's event from event: or callback:.
func caseEvent(tc *testCase, now time.Time) (*rules.Event, string, error) {
	switch {
	case tc.Event != nil && tc.Callback != nil:
		return nil, "", errors.New("give event or callback, not both")
	case tc.Event != nil:
		data, err := json.Marshal(tc.Event)
		if err != nil {
			return nil, "", fmt.Errorf("event: %w", err)
		}
		return readEvent(data, now)
	case tc.Callback != nil:
		evs, err := callbackEvents(*tc.Callback, now)
		if err != nil {
			return nil, "", fmt.Errorf("callback: %w", err)
		}
		if len(evs) != 1 {
			return nil, "", fmt.Errorf("callback: it makes %d events; a case tests one (name one record)", len(evs))
		}
		return evs[0], "", nil
	}
	return nil, "", errors.New("give the event (event:) or the request Zoho sends (callback:)")
}

// compare lists every difference between what happened and what the case
// expects, plus what no case may leave unsaid: a step condition that had to
// be assumed, a failure nobody expected.
func compare(rep *report, exp *expectation) []string {
	var out []string
	byRule := map[string]ruleReport{}
	var matched []string
	for _, x := range rep.Rules {
		byRule[x.Rule] = x
		if x.Matched {
			matched = append(matched, x.Rule)
		}
	}
	if exp.Event != nil {
		var got any
		b, _ := json.Marshal(rep.Event)
		got, _ = decodeJSONNumbers(b)
		out = append(out, subset("event", exp.Event, got)...)
	}
	if exp.Match != nil {
		want := slices.Sorted(slices.Values(*exp.Match))
		got := slices.Sorted(slices.Values(matched))
		if !slices.Equal(want, got) {
			out = append(out, fmt.Sprintf("match: want %s, got %s", list(want), list(got)))
			for _, r := range want {
				if x := byRule[r]; !x.Matched {
					out = append(out, fmt.Sprintf("  %s: no (%s: %s)", r, x.Stage, x.Reason))
				}
			}
		}
	}
	for _, r := range mapKeys(exp.NoMatch) {
		nm, x := exp.NoMatch[r], byRule[r]
		switch {
		case x.Matched:
			out = append(out, fmt.Sprintf("no_match %s: it matches", r))
		case nm.Stage != "" && nm.Stage != x.Stage:
			out = append(out, fmt.Sprintf("no_match %s: want it to stop at %s, it stops at %s: %s", r, nm.Stage, x.Stage, x.Reason))
		case nm.Reason != "" && !strings.Contains(x.Reason, nm.Reason) && !strings.Contains(strings.ReplaceAll(x.Reason, `\"`, `"`), nm.Reason):
			// The reason quotes the condition with %q: its own quotes
			// come escaped, and a case writes them as in the rule.
			out = append(out, fmt.Sprintf("no_match %s: want a reason containing %q, got %q", r, nm.Reason, x.Reason))
		}
	}
	var skipped []string
	var calls []wireCall
	failed := map[string]string{}
	for _, x := range rep.Rules {
		if x.Stage == "condition" && strings.HasPrefix(x.Reason, "condition error") {
			if _, ok := exp.NoMatch[x.Rule]; !ok {
				out = append(out, fmt.Sprintf("rule %s: %s (expect it under no_match if it is what you want)", x.Rule, x.Reason))
			}
		}
		for _, st := range x.Steps {
			if st.Note != "" {
				out = append(out, fmt.Sprintf("step %s: %s: a test must know; give the outputs of the steps its when reads under outputs:", st.Key, st.Note))
			}
			switch st.Outcome {
			case rules.OutcomeSkipped:
				skipped = append(skipped, st.Key)
			case rules.OutcomeFailed, rules.OutcomeFailedSkipped, rules.OutcomeStopped:
				failed[st.Key] = st.Error
			}
			for _, w := range st.Requests {
				calls = append(calls, wireCall{step: st.Key, req: w})
			}
		}
	}
	if exp.Skipped != nil {
		want := slices.Sorted(slices.Values(*exp.Skipped))
		got := slices.Sorted(slices.Values(skipped))
		if !slices.Equal(want, got) {
			out = append(out, fmt.Sprintf("skipped: want %s, got %s", list(want), list(got)))
		}
	}
	for _, k := range mapKeys(failed) {
		want, ok := exp.Failed[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("step %s failed: %s (expect it under failed if it is what you want)", k, failed[k]))
		case !strings.Contains(failed[k], want):
			out = append(out, fmt.Sprintf("failed %s: want an error containing %q, got %q", k, want, failed[k]))
		}
	}
	for _, k := range mapKeys(exp.Failed) {
		if _, ok := failed[k]; !ok {
			out = append(out, fmt.Sprintf("failed %s: want it to fail with %q; it did not", k, exp.Failed[k]))
		}
	}
	if exp.Calls != nil {
		out = append(out, compareCalls(*exp.Calls, calls)...)
	}
	return out
}

type wireCall struct {
	step string
	req  wireRequest
}

func (c wireCall) String() string {
	s := c.req.Method + " " + c.req.Path
	if len(c.req.Query) > 0 {
		s += "?" + c.req.Query.Encode()
	}
	return s + "  (" + c.step + ")"
}

func (c expectedCall) String() string {
	s := strings.TrimSpace(strings.ToUpper(c.Method) + " " + c.Path)
	if c.Step != "" {
		s += "  (" + c.Step + ")"
	}
	return s
}

func compareCalls(want []expectedCall, got []wireCall) []string {
	if len(want) != len(got) {
		var b strings.Builder
		fmt.Fprintf(&b, "calls: want %d, got %d\n", len(want), len(got))
		for i, w := range want {
			fmt.Fprintf(&b, "  want %d: %s\n", i, w)
		}
		if len(want) == 0 {
			b.WriteString("  want: none\n")
		}
		for i, g := range got {
			fmt.Fprintf(&b, "  got  %d: %s\n", i, g)
		}
		if len(got) == 0 {
			b.WriteString("  got: none\n")
		}
		return []string{strings.TrimRight(b.String(), "\n")}
	}
	var out []string
	for i, w := range want {
		g := got[i]
		at := fmt.Sprintf("calls[%d] %s", i, g)
		if w.Step != "" && w.Step != g.step {
			out = append(out, fmt.Sprintf("%s: step: want %s, got %s", at, w.Step, g.step))
		}
		if w.Method != "" && !strings.EqualFold(w.Method, g.req.Method) {
			out = append(out, fmt.Sprintf("%s: method: want %s, got %s", at, strings.ToUpper(w.Method), g.req.Method))
		}
		if w.Path != "" && w.Path != g.req.Path {
			out = append(out, fmt.Sprintf("%s: path: want %s, got %s", at, w.Path, g.req.Path))
		}
		for _, k := range mapKeys(w.Query) {
			wv := queryValues(w.Query[k])
			gv := g.req.Query[k]
			if wv == nil {
				if gv != nil {
					out = append(out, fmt.Sprintf("%s: query %s: want none, got %s", at, k, strings.Join(gv, ",")))
				}
				continue
			}
			if !slices.Equal(wv, gv) {
				got := "none"
				if gv != nil {
					got = strings.Join(gv, ",")
				}
				out = append(out, fmt.Sprintf("%s: query %s: want %s, got %s", at, k, strings.Join(wv, ","), got))
			}
		}
		if w.Body != nil {
			out = append(out, prefixAll(at+": ", subset("body", w.Body, g.req.Body))...)
		}
	}
	return out
}

// queryValues renders an expected query value as the strings sent (nil:
// the parameter must be absent).
func queryValues(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = scalarText(e)
		}
		return out
	}
	return []string{scalarText(v)}
}

func scalarText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func prefixAll(p string, lines []string) []string {
	for i := range lines {
		lines[i] = p + lines[i]
	}
	return lines
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func decodeJSONNumbers(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return v, nil
}

// subset compares want (from YAML) with got (decoded JSON, numbers as
// json.Number): mappings on want's keys (null: the key is absent or
// null), lists item by item with the same length, scalars by their JSON
// text, so 1500 and "1500" differ and 1500 equals 1500.0.
func subset(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want a mapping, got %s", path, jsonText(got))}
		}
		var out []string
		for _, k := range mapKeys(w) {
			gv, present := g[k]
			if w[k] == nil {
				if present && gv != nil {
					out = append(out, fmt.Sprintf("%s.%s: want absent or null, got %s", path, k, jsonText(gv)))
				}
				continue
			}
			if !present {
				out = append(out, fmt.Sprintf("%s.%s: want %s, got nothing (keys: %s)", path, k, jsonText(w[k]), strings.Join(mapKeys(g), ", ")))
				continue
			}
			out = append(out, subset(path+"."+k, w[k], gv)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want a list, got %s", path, jsonText(got))}
		}
		if len(w) != len(g) {
			return []string{fmt.Sprintf("%s: want %d items, got %d: %s", path, len(w), len(g), jsonText(got))}
		}
		var out []string
		for i := range w {
			out = append(out, subset(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	}
	if jsonText(want) != jsonText(got) {
		return []string{fmt.Sprintf("%s: want %s, got %s", path, jsonText(want), jsonText(got))}
	}
	return nil
}

// jsonText renders a value as JSON: the form it is sent in, and the one
// a diff is easiest to read in (strings quoted, numbers bare).
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
