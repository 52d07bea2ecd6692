package rulescmd_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/rules"
)

const exampleTests = "../../../rules.test.yaml"

// `rules schema` prints the generated schema (the checked-in copy is
// compared in internal/rules).
func TestSchemaCommand(t *testing.T) {
	code, out, errs := run(t, "schema")
	want, err := rules.SchemaJSON()
	if code != 0 || errs != "" || err != nil || out != string(want) {
		t.Fatalf("code %d, err %v, stderr %q, output differs from rules.SchemaJSON: %v", code, err, errs, out != string(want))
	}
	onDisk, err := os.ReadFile("../../../docs/schema/rules.schema.json")
	if err != nil || !bytes.Equal(onDisk, want) {
		t.Errorf("docs/schema/rules.schema.json differs from `rules schema` (%v)", err)
	}
}

// The tests of the example rules.yaml ship next to it and pass; every rule
// of the example is matched by some case, and every case ran.
func TestExampleRuleTests(t *testing.T) {
	code, out, errs := run(t, "test", "-v", exampleTests)
	if code != 0 || errs != "" {
		t.Fatalf("code %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "ok    "+exampleTests+": ") || !strings.Contains(out, "every rule of ../../../rules.yaml matches in a case") {
		t.Errorf("summary:\n%s", out)
	}
	data, err := os.ReadFile(exampleTests)
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`(?m)^  - name: (.+)$`).FindAllStringSubmatch(string(data), -1)
	if len(names) < 15 {
		t.Fatalf("only %d cases in %s", len(names), exampleTests)
	}
	for _, n := range names {
		if !strings.Contains(out, "--- PASS: "+n[1]+" (") {
			t.Errorf("case %q did not pass:\n%s", n[1], out)
		}
	}
	set, err := rules.Load("../../../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Rules() {
		if !strings.Contains(out, "rule "+r.Name+": MATCHES") {
			t.Errorf("no case matches rule %s", r.Name)
		}
	}
}

// A case that does not hold fails with a diff naming the case, its line
// and each difference; the exit code is 1; -run selects cases.
func TestRuleTestReportsMismatches(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "r.yaml", `version: 1
rules:
  - name: won
    on: {source: crm.notify, module: Deals, operation: update}
    record: {fields: [Stage, Amount]}
    when: record.Stage == "Won"
    steps:
      - id: find
        action: crm.coql
        with: {query: "select id from Invoices where Deal = ${coql(event.record_id)}"}
      - id: upd
        when: len(steps.find.data) == 0
        action: crm.update_record
        with: {module: Deals, id: "${event.record_id}", data: {Amount: "${record.Amount}", Note: "${record.Stage}"}}
      - action: crm.remove_record
        on_failure: stop
        with: {module: Tasks, ids: [1, 2]}
  - name: other
    on: {source: books.webhook}
    steps:
      - action: crm.coql
        with: {query: select id from Deals}
`)
	f := write(t, dir, "r.test.yaml", `now: 2026-03-30T09:00:00Z
cases:
  - name: all good
    event: {source: crm.notify, module: Deals, operation: update, record_id: "5"}
    record: {Stage: Won, Amount: 1500}
    outputs: {won/find: {data: []}}
    refuse: {"won/#2": "no such tasks"}
    expect:
      match: [won]
      no_match: {other: source}
      skipped: []
      failed: {"won/#2": no such tasks}
      calls:
        - {step: won/find, method: POST, path: /crm/v8/coql, body: {select_query: "select id from Invoices where Deal = '5'"}}
        - {step: won/upd, method: put, path: /crm/v8/Deals/5, body: {data: [{Amount: 1500, Note: Won}], trigger: []}}
        - {step: "won/#2", method: DELETE, query: {ids: "1,2", wf_trigger: "false"}}
  - name: wrong body
    event: {source: crm.notify, module: Deals, operation: update, record_id: "5"}
    record: {Stage: Won, Amount: 1500}
    outputs: {won/find: {data: []}}
    expect:
      calls:
        - {step: won/find}
        - {step: won/upd, body: {data: [{Amount: "1500", Missing: x}]}, query: {x: "1"}}
        - {step: "won/#2", method: GET}
  - name: wrong match
    event: {source: crm.notify, module: Deals, operation: update, record_id: "5"}
    record: {Stage: Lost}
    expect:
      match: [won]
      no_match: {other: module}
  - name: unknown output assumed
    event: {source: crm.notify, module: Deals, operation: update, record_id: "5"}
    record: {Stage: Won}
    expect:
      calls: []
`)
	code, out, _ := run(t, "test", f)
	if code != 1 {
		t.Fatalf("code %d\n%s", code, out)
	}
	for _, want := range []string{
		"--- FAIL: wrong body (" + f + ":17)\n",
		"    calls[1] PUT /crm/v8/Deals/5  (won/upd): query x: want 1, got none\n",
		`    calls[1] PUT /crm/v8/Deals/5  (won/upd): body.data[0].Amount: want "1500", got 1500` + "\n",
		`    calls[1] PUT /crm/v8/Deals/5  (won/upd): body.data[0].Missing: want "x", got nothing (keys: Amount, Note)` + "\n",
		"    calls[2] DELETE /crm/v8/Tasks?ids=1%2C2&wf_trigger=false  (won/#2): method: want GET, got DELETE\n",
		"--- FAIL: wrong match (" + f + ":26)\n    match: want [won], got none\n      won: no (condition: when \"record.Stage == \\\"Won\\\"\" is false)\n    no_match other: want it to stop at module, it stops at source: source \"crm.notify\" is not books.webhook\n",
		"--- FAIL: unknown output assumed (" + f + ":32)\n    step won/upd: condition reads outputs a dry run cannot know; assumed true: a test must know; give the outputs of the steps its when reads under outputs:\n    calls: want 0, got 3\n      want: none\n      got  0: POST /crm/v8/coql  (won/find)\n",
		"FAIL  " + f + ": 3 of 4 cases failed; rules of " + filepath.Join(dir, "r.yaml") + " no case matches: other\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "all good") {
		t.Errorf("a passing case is listed without -v:\n%s", out)
	}

	// -run selects cases; a directory runs its *.test.yaml.
	code, out, _ = run(t, "test", "-run", "^all", dir)
	if code != 0 || !strings.Contains(out, "ok    "+f+": 1 cases\n") {
		t.Errorf("-run: %d\n%s", code, out)
	}
	if code, out, _ := run(t, "test", "-run", "(", f); code != 2 {
		t.Errorf("bad -run: %d %s", code, out)
	}
}

// Mistakes in a test file are reported with where they are, never
// silently ignored.
func TestRuleTestFileMistakes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "rules.yaml", "version: 1\nrules:\n  - name: r\n    on: {source: crm.notify}\n    steps: [{id: s, action: crm.coql, with: {query: select id from Deals}}]\n")
	for name, tc := range map[string]struct{ file, want string }{
		"unknown key":     {"cases:\n  - name: a\n    evnt: {}\n", `[4:5] unknown field "evnt"`},
		"no cases":        {"now: 2026-03-30T09:00:00Z\n", "no cases"},
		"bad now":         {"now: yesterday\ncases:\n  - name: a\n    event: {source: crm.notify}\n", "now: want an RFC 3339 time"},
		"bad step key":    {"cases:\n  - name: a\n    event: {source: crm.notify}\n    outputs: {r/x: {}}\n", "outputs: no step r/x in the rules (steps are rule/id, or rule/#index without id: r/s)"},
		"unknown rule":    {"cases:\n  - name: a\n    event: {source: crm.notify}\n    expect: {match: [q]}\n", "expect.match: no rule q"},
		"bad stage":       {"cases:\n  - name: a\n    event: {source: crm.notify}\n    expect: {no_match: {r: modul}}\n", `stage "modul" is not one of`},
		"no event":        {"cases:\n  - name: a\n    record: {}\n", "give the event (event:) or the request Zoho sends (callback:)"},
		"both":            {"cases:\n  - name: a\n    event: {source: crm.notify}\n    callback: {url: /zoho/crm/notify, body: {}}\n", "give event or callback, not both"},
		"duplicate name":  {"cases:\n  - name: a\n    event: {source: crm.notify}\n  - name: a\n    event: {source: crm.notify}\n", "another case has the same name"},
		"refused":         {"cases:\n  - name: a\n    callback: {url: /zoho/books/paid, body: {invoice: {invoice_id: abc}}}\n", "callback: the receiver answers 400"},
		"two records":     {"cases:\n  - name: a\n    callback: {url: /zoho/crm/notify, body: {module: Deals, ids: [\"1\", \"2\"], operation: update, channel_id: \"5\", token: tok-123}}\n", "it makes 2 events; a case tests one"},
		"bad rules":       {"rules: nope.yaml\ncases:\n  - name: a\n    event: {source: crm.notify}\n", "rules file " + filepath.Join(dir, "nope.yaml") + " does not load"},
		"unexpected fail": {"cases:\n  - name: a\n    event: {source: crm.notify}\n    refuse: {r/s: nope}\n", "step r/s failed: refused by Zoho (as the test says): nope (expect it under failed if it is what you want)"},
	} {
		file := tc.file
		if !strings.HasPrefix(file, "rules:") {
			file = "rules: rules.yaml\n" + file
		}
		f := write(t, dir, strings.ReplaceAll(name, " ", "_")+".test.yaml", file)
		code, out, errs := run(t, "test", f)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: code %d, want output with %q:\n%s%s", name, code, tc.want, out, errs)
		}
	}
}

// Every rule test example in docs/rules.md (a ```yaml block with cases:)
// runs and passes against the example rules.yaml.
func TestDocsRuleTestExamples(t *testing.T) {
	data, err := os.ReadFile("../../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	rulesYAML := mustRead(t, "../../../rules.yaml")
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	ran := 0
	for i, b := range blocks {
		if !regexp.MustCompile(`(?m)^cases:`).MatchString(b[1]) {
			continue
		}
		dir := t.TempDir()
		write(t, dir, "rules.yaml", string(rulesYAML))
		f := write(t, dir, "rules.test.yaml", b[1])
		code, out, errs := run(t, "test", f)
		if code != 0 {
			t.Errorf("docs example %d does not pass:\n%s\n%s\n%s", i, b[1], out, errs)
		}
		ran++
	}
	if ran == 0 {
		t.Error("docs/rules.md has no rule test example")
	}
}
