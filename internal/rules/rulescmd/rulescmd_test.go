package rulescmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/rules/rulescmd"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := rulescmd.Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const example = "../../../rules.yaml"

func TestCheck(t *testing.T) {
	code, out, errs := run(t, "check", example)
	if code != 0 || errs != "" {
		t.Fatalf("check example: code %d\n%s", code, errs)
	}
	for _, want := range []string{"OK, 5 rules", "sources: books.webhook 1, crm.notify 3, crm.workflow 1", "crm.update_record 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warning") {
		t.Errorf("the example rules must load without warnings:\n%s", out)
	}

	dir := t.TempDir()
	bad := write(t, dir, "bad.yaml", `version: 1
rules:
  - name: r
    on: {source: crm.notify, modules: [Deals]}
    steps:
      - action: crm.update_record
        with: {module: Deals, id: "${steps.x.id}"}
`)
	code, out, errs = run(t, "check", bad)
	if code != 1 || out != "" {
		t.Fatalf("code %d out %q", code, out)
	}
	want := bad + `:6:9: rule "r": step #0: crm.update_record needs input "data"
` + bad + `:7:44: rule "r": unknown step "x" in steps.x
` + bad + `: 2 problem(s)
`
	if errs != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errs, want)
	}
}

func TestCheckDefaultFileAndUsage(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Chdir(dir)
	code, _, errs := run(t, "check")
	if code != 1 || !strings.Contains(errs, "rules.yaml") {
		t.Errorf("missing default file: code %d %s", code, errs)
	}
	if err := os.WriteFile("rules.yaml", mustRead(t, filepath.Join(wd, example)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, "check"); code != 0 || !strings.HasPrefix(out, "rules.yaml: OK") {
		t.Errorf("default file: %d %s", code, out)
	}
	if code, out, _ := run(t, "-h"); code != 0 || !strings.Contains(out, "rules test --event EVENT.json") || !strings.Contains(out, "rules check [FILE]") {
		t.Errorf("-h: %d %s", code, out)
	}
	if code, out, errs := run(t, "check", "--help"); code != 0 || !strings.Contains(out, "Usage:") || errs != "" {
		t.Errorf("check --help (usage on stdout): %d %q %q", code, out, errs)
	}
	if code, _, errs := run(t, "check", "-nope"); code != 2 || !strings.Contains(errs, "-nope") {
		t.Errorf("check -nope: %d %s", code, errs)
	}
	if code, _, _ := run(t); code != 2 {
		t.Errorf("no args: %d", code)
	}
	if code, _, errs := run(t, "lint"); code != 2 || !strings.Contains(errs, `unknown command "lint"`) {
		t.Errorf("unknown command: %d %s", code, errs)
	}
	if code, _, _ := run(t, "check", "a.yaml", "b.yaml"); code != 2 {
		t.Errorf("two files accepted")
	}
	if code, _, errs := run(t, "test", "rules.yaml"); code != 2 || !strings.Contains(errs, "rules.yaml is not a test file (*.test.yaml); for a dry run of one event give --event") {
		t.Errorf("test of a rules file without event: %d %s", code, errs)
	}
	if code, _, errs := run(t, "test"); code != 2 || !strings.Contains(errs, "no *.test.yaml in the current directory") {
		t.Errorf("test without test files: %d %s", code, errs)
	}
	if code, _, errs := run(t, "test", "--record", "r.json", "x.test.yaml"); code != 2 || !strings.Contains(errs, "go with --event") {
		t.Errorf("--record without --event: %d %s", code, errs)
	}
	if code, _, errs := run(t, "schema", "x"); code != 2 || !strings.Contains(errs, "takes no arguments") {
		t.Errorf("schema with an argument: %d %s", code, errs)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noZohoEnv makes the dry run's base URL and organization the defaults,
// whatever the machine's environment says.
func noZohoEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"ZOHOOK_ZOHO_DC", "ZOHOOK_ZOHO_API_URL", "ZOHOOK_ZOHO_BOOKS_URL", "ZOHOOK_ZOHO_BOOKS_ORG_ID", "ZOHOOK_ZOHO_ACCOUNTS_URL"} {
		t.Setenv(k, "")
	}
}

// The dry run prints each call as the worker's client would send it:
// method, full URL with query, JSON body with zohook's defaults, numbers
// as sent.
func TestTestEvent(t *testing.T) {
	noZohoEnv(t)
	dir := t.TempDir()
	ev := write(t, dir, "ev.json", `{"id":"e1","source":"crm.notify","module":"Deals","operation":"update","record_id":"42","changed_fields":["Stage"]}`)
	rec := write(t, dir, "rec.json", `{"Stage":"Closed Won","Amount":1500,"Deal_Name":"Big","Account_Name":{"name":"A&B","id":"7"}}`)
	// Flags after the file work too.
	code, out, errs := run(t, "test", example, "--event", ev, "--record", rec)
	if code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"event: source=crm.notify connection=default module=Deals operation=update record_id=42 changed=Stage",
		"record: the worker would load Account_Name, Amount, Deal_Name, Invoice_Number, Stage; from --record",
		"rule deal-won-create-invoice: MATCHES",
		"  step deal-won-create-invoice/contact: books.get_records\n    GET https://www.zohoapis.com/books/v3/contacts?contact_name=A%26B&organization_id=ORGANIZATION_ID\n",
		"    # condition reads outputs a dry run cannot know; assumed true\n    POST https://www.zohoapis.com/books/v3/contacts?organization_id=ORGANIZATION_ID\n    Content-Type: application/json\n    {\n      \"contact_name\": \"A&B\",\n",
		"          \"rate\": 1500\n", // the record's 1500, not 1500.0
		"\"reference_number\": \"CRM-DEAL-42\"",
		"  step deal-won-create-invoice/write_back: crm.update_record\n    PUT https://www.zohoapis.com/crm/v8/Deals/42\n    Content-Type: application/json\n    {\n      \"data\": [\n        {\n          \"Invoice_Number\": \"<steps.invoice.invoice.invoice_number>\"\n        }\n      ],\n      \"trigger\": []\n    }\n",
		`rule lead-welcome-note: no (module: module "Deals" is not Leads)`,
		`rule invoice-paid-update-deal: no (source: source "crm.notify" is not books.webhook)`,
		"note: ORGANIZATION_ID stands for your Books organization id",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A known step output replaces its placeholder; the organization and
	// the data center come from the flag and the environment.
	t.Setenv("ZOHOOK_ZOHO_DC", "eu")
	inv := write(t, dir, "inv.json", `{"invoice":{"invoice_number":"INV-9"}}`)
	code, out, _ = run(t, "test", "--event", ev, "--record", rec, "--output", "deal-won-create-invoice/invoice="+inv, "--organization-id", "600", example)
	if code != 0 || !strings.Contains(out, `"Invoice_Number": "INV-9"`) || !strings.Contains(out, "POST https://www.zohoapis.eu/books/v3/invoices?organization_id=600") || strings.Contains(out, "ORGANIZATION_ID") {
		t.Errorf("known output, organization, data center:\n%s", out)
	}

	// --format json: the same report as one JSON document, bodies as sent.
	code, out, _ = run(t, "test", "--event", ev, "--record", rec, "--output", "deal-won-create-invoice/invoice="+inv, "--format", "json", example)
	if code != 0 {
		t.Fatalf("json: code %d\n%s", code, out)
	}
	var rep struct {
		Event struct {
			RecordID string `json:"record_id"`
		} `json:"event"`
		Rules []struct {
			Rule    string `json:"rule"`
			Matched bool   `json:"matched"`
			Stage   string `json:"stage"`
			Steps   []struct {
				Key      string `json:"key"`
				Outcome  string `json:"outcome"`
				Note     string `json:"note"`
				Requests []struct {
					Method string          `json:"method"`
					URL    string          `json:"url"`
					Body   json.RawMessage `json:"body"`
				} `json:"requests"`
			} `json:"steps"`
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if rep.Event.RecordID != "42" || len(rep.Rules) != 5 || !rep.Rules[0].Matched || rep.Rules[1].Stage != "module" || len(rep.Rules[0].Steps) != 4 {
		t.Fatalf("json report: %+v", rep)
	}
	compact := func(raw json.RawMessage) string {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	wb := rep.Rules[0].Steps[3]
	if wb.Key != "deal-won-create-invoice/write_back" || len(wb.Requests) != 1 || wb.Requests[0].Method != "PUT" ||
		wb.Requests[0].URL != "https://www.zohoapis.eu/crm/v8/Deals/42" || compact(wb.Requests[0].Body) != `{"data":[{"Invoice_Number":"INV-9"}],"trigger":[]}` {
		t.Errorf("write_back in json: %+v", wb)
	}
	if inv := compact(rep.Rules[0].Steps[2].Requests[0].Body); !strings.Contains(inv, `"rate":1500}`) || !strings.Contains(inv, `"customer_id":"<first(`) {
		t.Errorf("invoice body in json: %s", inv)
	}
}

// Deletes carry wf_trigger=false unless the rule says, a rule's own
// trigger wins over the default, a path the client refuses is reported
// (and fails the dry run) instead of shown as sent.
func TestDryRunDefaultsAndRefusals(t *testing.T) {
	noZohoEnv(t)
	dir := t.TempDir()
	rulesFile := write(t, dir, "r.yaml", `version: 1
rules:
  - name: r
    on: {source: crm.workflow}
    steps:
      - action: crm.remove_record
        with: {module: Leads, id: "${event.record_id}"}
      - action: crm.update_record
        with: {module: Deals, id: "1", data: {Amount: "${event.values.amount}"}, trigger: [workflow]}
      - action: crm.raw_request
        on_failure: skip
        with: {method: GET, path: "${event.values.path}"}
      - action: books.raw_request
        with: {method: POST, path: invoices, json: {a: 1}, organization_id: "777"}
        in_doubt: resend
`)
	ev := write(t, dir, "ev.json", `{"source":"crm.workflow","module":"Leads","operation":"update","record_id":"9","values":{"amount":1500,"path":"//evil.example/x"}}`)
	code, out, errs := run(t, "test", "--event", ev, rulesFile)
	if code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"    DELETE https://www.zohoapis.com/crm/v8/Leads?ids=9&wf_trigger=false\n",
		"    PUT https://www.zohoapis.com/crm/v8/Deals/1\n    Content-Type: application/json\n    {\n      \"data\": [\n        {\n          \"Amount\": 1500\n        }\n      ],\n      \"trigger\": [\n        \"workflow\"\n      ]\n    }\n",
		"  step r/#2: crm.raw_request - failed, skipped (on_failure: skip): zohook would not send it: ",
		"    POST https://www.zohoapis.com/books/v3/invoices?organization_id=777\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "evil.example") && !strings.Contains(out, "zohook would not send it") {
		t.Errorf("a refused path is shown as sent:\n%s", out)
	}
}

func TestTestRawNotificationAndErrors(t *testing.T) {
	dir := t.TempDir()
	body := map[string]any{"server_time": 1718117126473, "module": "Leads", "resource_uri": "https://www.zohoapis.com/crm/v2/Leads",
		"ids": []string{"5725767000003000064", "5725767000003000065"}, "affected_fields": []any{}, "operation": "insert",
		"channel_id": "1000000068001", "token": "TOKEN"}
	b, _ := json.Marshal(body)
	ev := write(t, dir, "notify.json", string(b))
	rec := write(t, dir, "rec.json", `{"First_Name":"Ada","Last_Name":"Lovelace"}`)
	code, out, errs := run(t, "test", "--event", ev, "--record", rec, example)
	if code != 0 {
		t.Fatalf("code %d %s", code, errs)
	}
	for _, want := range []string{
		"note: read a Zoho CRM notification: Leads create of record 5725767000003000064 (the first of 2 ids)",
		"rule lead-welcome-note: MATCHES",
		"    POST https://www.zohoapis.com/crm/v8/Leads/5725767000003000064/Attachments?title=Welcome+note\n    Content-Type: multipart/form-data\n    [part file: file \"welcome-5725767000003000064.txt\", 98 bytes]\n",
		"Welcome Ada Lovelace!",
		"Company: -",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "TOKEN") {
		t.Errorf("the notification token must not be printed")
	}

	// A notification body goes through the receiver, which refuses what
	// it would refuse from Zoho.
	badBody := write(t, dir, "notify-bad.json", `{"module":"Leads","ids":["x1"],"operation":"insert","channel_id":"1","token":"TOKEN-123"}`)
	if code, _, errs := run(t, "test", "--event", badBody, example); code != 2 || !strings.Contains(errs, "the receiver answers 400") || !strings.Contains(errs, "ids[0]") {
		t.Errorf("invalid notification: %d %s", code, errs)
	}

	// An expression failing at run time exits 1 and says where.
	rules := write(t, dir, "r.yaml", "version: 1\nrules:\n  - name: r\n    on: {source: crm.notify}\n    record: all\n    when: record.Amount > 10\n    steps: [{action: crm.coql, with: {query: select id from Deals}}]\n")
	okEv := write(t, dir, "ev.json", `{"source":"crm.notify","module":"Deals","operation":"update","record_id":"1"}`)
	strRec := write(t, dir, "str.json", `{"Amount":"ten"}`)
	code, out, _ = run(t, "test", "--event", okEv, "--record", strRec, rules)
	if code != 1 || !strings.Contains(out, "rule r: no (condition: condition error: when:") {
		t.Errorf("eval error: %d\n%s", code, out)
	}
	code, out, _ = run(t, "test", "--event", okEv, rules)
	if code != 1 || !strings.Contains(out, "hint: record is null in this run; give the record Zoho would return") {
		t.Errorf("no record: %d\n%s", code, out)
	}
	badEv := write(t, dir, "bad.json", `{"source":"crm.notify","modul":"Deals"}`)
	if code, _, errs := run(t, "test", "--event", badEv, rules); code != 2 || !strings.Contains(errs, `unknown field "modul"`) {
		t.Errorf("bad event: %d %s", code, errs)
	}
}

// Steps whose create an interrupted worker could not find again load, with
// a warning naming the file, line, rule and the input that would close the
// hole; steps that have it, whose data is computed, or that chose an
// in_doubt policy, do not warn.
func TestCheckWarnsAboutUnresolvableCreates(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "w.yaml", `version: 1
rules:
  - name: creates
    on: {source: crm.notify, modules: [Deals]}
    steps:
      - id: lead
        action: crm.create_record
        with: {module: Leads, data: {Last_Name: x}}
      - id: lead_keyed
        action: crm.create_record
        with: {module: Leads, data: {Last_Name: x, Email: a@b.c}, duplicate_check_fields: [Email]}
      - id: invoice
        action: books.create_record
        with: {entity: invoices, data: {customer_id: "1"}}
      - id: invoice_ref
        action: books.create_record
        with: {entity: invoices, data: {customer_id: "1", reference_number: "${event.id}"}}
      - id: contact
        action: books.create_record
        with: {entity: contacts, data: {contact_name: x}}
      - id: lead_decided
        action: crm.create_record
        in_doubt: dead_letter
        with: {module: Leads, data: {Last_Name: x}}
      - id: note
        action: crm.raw_request
        with: {method: post, path: /Notes, json: {data: []}}
      - id: note_decided
        action: crm.raw_request
        in_doubt: resend
        with: {method: POST, path: /Notes, json: {data: []}}
      - id: read
        action: books.raw_request
        with: {method: GET, path: invoices}
`)
	code, out, errs := run(t, "check", f)
	if code != 0 || errs != "" {
		t.Fatalf("code %d, stderr %s", code, errs)
	}
	var warnings []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "warning: ") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 3 {
		t.Fatalf("want 3 warnings, got:\n%s", out)
	}
	for i, want := range []string{f + `:6:9: rule "creates": step lead: crm.create_record without duplicate_check_fields`,
		f + `:12:9: rule "creates": step invoice: books.create_record of invoices without data.reference_number`,
		f + `:25:9: rule "creates": step note: crm.raw_request POST: a request interrupted after it may have reached Zoho is sent again`} {
		if !strings.HasPrefix(warnings[i], "warning: "+want) {
			t.Errorf("warning %d:\n%s\nwant prefix:\n%s", i, warnings[i], want)
		}
	}
}
