package rulescmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/zohook/zohook/internal/rules"
)

const usage = `Usage:
  rules check [FILE]
  rules test --event EVENT.json [--record RECORD.json] [--output KEY=OUTPUT.json]... [--format yaml|json] [FILE]

check   loads FILE (default rules.yaml) and reports every problem as
        file:line:col: rule "name": message. Exit 0 when valid (with a
        summary), 1 when not.

test    shows which rules an event matches, why the others do not, and the
        exact Zoho calls each step would make (action and resolved inputs).
        Nothing is sent to Zoho.
        EVENT.json is either a zohook event:
          {"source": "crm.notify", "module": "Deals", "operation": "update",
           "record_id": "42", "changed_fields": ["Stage"], "values": {...}}
          (keys: id, source, connection, module, operation, record_id,
           changed_fields, values, channel_id, hook, received_at, payload)
        or the body Zoho CRM posted to a notification channel
          {"module": "Deals", "ids": ["42"], "operation": "update",
           "channel_id": "...", "token": "..."}
        whose first id becomes the event.
        RECORD.json is the record as Zoho returns it (a JSON object), used
        as ` + "`record`" + `; without it record is null.
        A step's output is not known in a dry run: expressions reading it
        show as <steps.id.field>. --output rule/step=FILE.json supplies one.
        Exit 0 after a dry run, 1 when the file is invalid or an expression
        failed, 2 on usage errors.
`

// Run runs `rules ARGS...` and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "check":
		return check(args[1:], stdout, stderr)
	case "test":
		return test(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "rules: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseInterleaved lets flags follow the file argument
// (`rules test rules.yaml --event e.json`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func fileArg(pos []string, stderr io.Writer) (string, bool) {
	switch len(pos) {
	case 0:
		return "rules.yaml", true
	case 1:
		return pos[0], true
	}
	fmt.Fprintf(stderr, "rules: want at most one FILE, got %s\n", strings.Join(pos, " "))
	return "", false
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rules "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	file, ok := fileArg(pos, stderr)
	if !ok {
		return 2
	}
	set, err := rules.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var le *rules.LoadError
		if errors.As(err, &le) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", file, len(le.Problems))
		}
		return 1
	}
	sources := map[string]int{}
	actions := map[string]int{}
	disabled := 0
	for _, r := range set.Rules() {
		if r.Disabled {
			disabled++
		}
		for _, s := range r.Sources {
			sources[s]++
		}
		for _, st := range r.Steps {
			actions[st.Action]++
		}
	}
	fmt.Fprintf(stdout, "%s: OK, %d rules", file, len(set.Rules()))
	if disabled > 0 {
		fmt.Fprintf(stdout, " (%d disabled)", disabled)
	}
	fmt.Fprintf(stdout, ", version %s\n", set.Version())
	fmt.Fprintf(stdout, "  sources: %s\n", counts(sources))
	fmt.Fprintf(stdout, "  actions: %s\n", counts(actions))
	for _, w := range set.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return 0
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

type outputFlags map[string]string

func (o outputFlags) String() string { return "" }
func (o outputFlags) Set(v string) error {
	k, f, ok := strings.Cut(v, "=")
	if !ok || !strings.Contains(k, "/") || f == "" {
		return fmt.Errorf("want rule/step=FILE.json, got %q", v)
	}
	o[k] = f
	return nil
}

func test(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", stderr)
	eventFile := fs.String("event", "", "event `file` (JSON)")
	recordFile := fs.String("record", "", "record `file` (JSON object)")
	format := fs.String("format", "yaml", "inputs format: yaml or json")
	outputs := outputFlags{}
	fs.Var(outputs, "output", "known output of a step: rule/step=FILE.json (repeatable)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	file, ok := fileArg(pos, stderr)
	if !ok {
		return 2
	}
	if *eventFile == "" {
		fmt.Fprintln(stderr, "rules test: --event is required")
		return 2
	}
	if *format != "yaml" && *format != "json" {
		fmt.Fprintln(stderr, "rules test: --format is yaml or json")
		return 2
	}
	set, err := rules.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	data, err := os.ReadFile(*eventFile)
	if err != nil {
		fmt.Fprintf(stderr, "rules test: %v\n", err)
		return 2
	}
	ev, note, err := readEvent(data, time.Now().UTC())
	if err != nil {
		fmt.Fprintf(stderr, "rules test: %s: %v\n", *eventFile, err)
		return 2
	}
	var record map[string]any
	if *recordFile != "" {
		if err := readJSON(*recordFile, &record); err != nil {
			fmt.Fprintf(stderr, "rules test: %v\n", err)
			return 2
		}
	}
	dry := &rules.DryRun{Outputs: map[string]map[string]any{}}
	for key, f := range outputs {
		var out map[string]any
		if err := readJSON(f, &out); err != nil {
			fmt.Fprintf(stderr, "rules test: --output %s: %v\n", key, err)
			return 2
		}
		dry.Outputs[key] = out
	}

	if note != "" {
		fmt.Fprintf(stdout, "note: %s\n", note)
	}
	fmt.Fprintf(stdout, "event: source=%s connection=%s module=%s operation=%s record_id=%s", ev.Source, orDefault(ev.Connection), ev.Module, ev.Operation, ev.RecordID)
	if len(ev.ChangedFields) > 0 {
		fmt.Fprintf(stdout, " changed=%s", strings.Join(ev.ChangedFields, ","))
	}
	if ev.Hook != "" {
		fmt.Fprintf(stdout, " hook=%s", ev.Hook)
	}
	fmt.Fprintln(stdout)
	matched := set.Match(ev)
	if load, fields := set.RecordNeeds(matched); load {
		what := "all fields"
		if len(fields) > 0 {
			what = strings.Join(fields, ", ")
		}
		src := "from --record"
		if record == nil {
			src = "not given (--record): record is null"
		}
		fmt.Fprintf(stdout, "record: the worker would load %s; %s\n", what, src)
	}
	failed := false
	for _, x := range set.Explain(ev, record) {
		if !x.Matched {
			fmt.Fprintf(stdout, "\nrule %s: no (%s: %s)\n", x.Rule, x.Stage, x.Reason)
			if x.Stage == "condition" && record == nil && set.Rule(x.Rule).LoadRecord {
				fmt.Fprintln(stdout, "  hint: record is null in this test; pass the record with --record RECORD.json")
			}
			if x.Stage == "condition" && strings.HasPrefix(x.Reason, "condition error") {
				failed = true
			}
			continue
		}
		fmt.Fprintf(stdout, "\nrule %s: MATCHES\n", x.Rule)
		res, err := set.Rule(x.Rule).Run(ctx, rules.Input{Event: ev, Record: record}, dry)
		for _, st := range res.Steps {
			fmt.Fprintf(stdout, "  step %s: %s", st.Key, st.Action)
			switch st.Outcome {
			case rules.OutcomeSkipped:
				fmt.Fprintln(stdout, " - skipped (its when is false)")
				continue
			case rules.OutcomeFailed:
				fmt.Fprintf(stdout, " - ERROR: %s\n", st.Error)
				continue
			}
			fmt.Fprintln(stdout, " - would call Zoho with:")
			if st.Note != "" {
				fmt.Fprintf(stdout, "    # %s\n", st.Note)
			}
			fmt.Fprint(stdout, indent(render(st.Inputs, *format), "    "))
		}
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "  error: %v\n", err)
		}
	}
	if failed {
		return 1
	}
	return 0
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

func render(v map[string]any, format string) string {
	if format == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Sprint(v) + "\n"
		}
		return string(b) + "\n"
	}
	b, err := yaml.MarshalWithOptions(v, yaml.Indent(2), yaml.UseLiteralStyleIfMultiline(true))
	if err != nil {
		return fmt.Sprint(v) + "\n"
	}
	return string(b)
}

func indent(s, pre string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString(pre)
		b.WriteString(l)
	}
	return b.String()
}
