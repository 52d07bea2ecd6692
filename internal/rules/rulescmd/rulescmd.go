package rulescmd

import (
	"bytes"
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
	"github.com/zohook/zohook/internal/zoho"
)

const usage = `Usage:
  rules check [FILE]
  rules schema
  rules test [-run REGEXP] [-v] [FILE.test.yaml | DIR]...
  rules test --event EVENT.json [--record RECORD.json] [--output KEY=OUTPUT.json]...
             [--organization-id ID] [--format yaml|json] [FILE]

check   loads FILE (default rules.yaml) and reports every problem as
        file:line:col: rule "name": message. Exit 0 when valid (with a
        summary), 1 when not.

schema  prints the JSON Schema (draft 2020-12) of rules files, generated
        from the definitions check uses (docs/schema/rules.schema.json is
        the checked-in copy, named by rules.yaml's first line for editors).

test    with test files (*.test.yaml, or directories holding them; default
        the *.test.yaml of the current directory): runs every case (an
        event or a callback body, the record Zoho returns, canned outputs)
        and compares what happens with what the case expects: which rules
        match or why not, the calls as sent, skipped and failed steps.
        Mismatches print a diff. -run selects cases by name (a regular
        expression), -v lists every case. Exit 0 when all cases pass, 1
        when one fails. Nothing is sent anywhere: no NATS, no Zoho.
        Writing test files: docs/rules.md, "Testing your rules".

test --event
        a dry run of one event: which rules match, why the others do not,
        and each call the steps would make as zohook would send it: method,
        full URL with query, and the JSON body with the defaults zohook
        adds (trigger: [] on CRM writes, wf_trigger=false on deletes).
        Nothing is sent to Zoho.
        EVENT.json is either a zohook event:
          {"source": "crm.notify", "module": "Deals", "operation": "update",
           "record_id": "42", "changed_fields": ["Stage"], "values": {...}}
          (keys: id, source, connection, module, operation, record_id,
           changed_fields, values, channel_id, hook, received_at, payload)
        or the body Zoho CRM posted to a notification channel
          {"module": "Deals", "ids": ["42"], "operation": "update",
           "channel_id": "...", "token": "..."}
        which goes through zohook's receiver; its first record is used.
        RECORD.json is the record as Zoho returns it (a JSON object), used
        as ` + "`record`" + `; without it record is null.
        A step's output is not known in a dry run: expressions reading it
        show as <steps.id.field>. --output rule/step=FILE.json supplies one.
        URLs use ZOHOOK_ZOHO_DC / _API_URL / _BOOKS_URL when set (default
        https://www.zohoapis.com); Books calls carry --organization-id (or
        ZOHOOK_ZOHO_BOOKS_ORG_ID, or the step's organization_id).
        --format json prints the same as one JSON document.
        Exit 0 after a dry run, 1 when the file is invalid or an expression
        or a step failed, 2 on usage errors.
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
	case "schema":
		return schema(args[1:], stdout, stderr)
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
	// -h: the caller prints the usage to stdout (exit 0); a bad flag: its
	// error alone, on stderr (exit 2).
	fs.Usage = func() {}
	return fs
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
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

func schema(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "rules schema: takes no arguments\n\n%s", usage)
		return 2
	}
	data, err := rules.SchemaJSON()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if _, err := stdout.Write(data); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
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
	eventFile := fs.String("event", "", "event `file` (JSON): a dry run of this event")
	recordFile := fs.String("record", "", "record `file` (JSON object)")
	format := fs.String("format", "yaml", "dry run output: yaml (readable text) or json")
	orgID := fs.String("organization-id", "", "Books organization `id` of planned Books calls")
	outputs := outputFlags{}
	fs.Var(outputs, "output", "known output of a step: rule/step=FILE.json (repeatable)")
	runRE := fs.String("run", "", "run only the test cases whose name matches `regexp`")
	verbose := fs.Bool("v", false, "list every test case")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		return 2
	}
	if *eventFile == "" {
		if *recordFile != "" || len(outputs) > 0 || *orgID != "" {
			fmt.Fprintln(stderr, "rules test: --record, --output and --organization-id go with --event (a dry run); test files give them per case")
			return 2
		}
		return runTestFiles(ctx, pos, *runRE, *verbose, stdout, stderr)
	}
	if *runRE != "" {
		fmt.Fprintln(stderr, "rules test: -run selects cases of test files, not a dry run (--event)")
		return 2
	}
	file, ok := fileArg(pos, stderr)
	if !ok {
		return 2
	}
	if *format != "yaml" && *format != "json" {
		fmt.Fprintln(stderr, "rules test: --format is yaml or json")
		return 2
	}
	cfg, err := zoho.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "rules test: %v\n", err)
		return 2
	}
	switch {
	case *orgID != "":
		cfg.BooksOrgID = *orgID
	case cfg.BooksOrgID == "":
		cfg.BooksOrgID = placeholderOrg
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
		record = zoho.NormalizeNumbers(record).(map[string]any)
	}
	known := map[string]map[string]any{}
	for key, f := range outputs {
		var out map[string]any
		if err := readJSON(f, &out); err != nil {
			fmt.Fprintf(stderr, "rules test: --output %s: %v\n", key, err)
			return 2
		}
		known[key] = zoho.NormalizeNumbers(out).(map[string]any)
	}
	rep, err := evaluate(ctx, set, ev, record, newWireExec(cfg, known, nil))
	if err != nil {
		fmt.Fprintf(stderr, "rules test: %v\n", err)
		return 1
	}
	rep.Note = note
	var b strings.Builder
	if *format == "json" {
		if err := printJSON(&b, rep); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	} else {
		printText(&b, rep)
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if rep.failed() {
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
		return fmt.Errorf("reading %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
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
