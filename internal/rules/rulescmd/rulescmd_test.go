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
	if code, _, errs := run(t, "check", "--help"); code != 0 || !strings.Contains(errs, "Usage:") {
		t.Errorf("check --help: %d %s", code, errs)
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
	if code, _, errs := run(t, "test", "rules.yaml"); code != 2 || !strings.Contains(errs, "--event is required") {
		t.Errorf("test without event: %d %s", code, errs)
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

func TestTestEvent(t *testing.T) {
	dir := t.TempDir()
	ev := write(t, dir, "ev.json", `{"id":"e1","source":"crm.notify","module":"Deals","operation":"update","record_id":"42","changed_fields":["Stage"]}`)
	rec := write(t, dir, "rec.json", `{"Stage":"Closed Won","Amount":1200.5,"Deal_Name":"Big","Account_Name":{"name":"Acme","id":"7"}}`)
	// Flags after the file work too.
	code, out, errs := run(t, "test", example, "--event", ev, "--record", rec)
	if code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"event: source=crm.notify connection=default module=Deals operation=update record_id=42 changed=Stage",
		"record: the worker would load Account_Name, Amount, Deal_Name, Invoice_Number, Stage; from --record",
		"rule deal-won-create-invoice: MATCHES",
		"  step deal-won-create-invoice/contact: books.get_records - would call Zoho with:\n    entity: contacts\n    search:\n      contact_name: Acme\n",
		"# condition reads outputs a dry run cannot know; assumed true",
		"        rate: 1200.5\n",
		"reference_number: CRM-DEAL-42",
		"Invoice_Number: <steps.invoice.invoice.invoice_number>",
		`rule lead-welcome-note: no (module: module "Deals" is not Leads)`,
		`rule invoice-paid-update-deal: no (source: source "crm.notify" is not books.webhook)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A known step output replaces its placeholder.
	inv := write(t, dir, "inv.json", `{"invoice":{"invoice_number":"INV-9"}}`)
	_, out, _ = run(t, "test", "--event", ev, "--record", rec, "--output", "deal-won-create-invoice/invoice="+inv, "--format", "json", example)
	if !strings.Contains(out, `"Invoice_Number": "INV-9"`) {
		t.Errorf("known output / json format:\n%s", out)
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
		"file_name: welcome-5725767000003000064.txt",
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

	// An expression failing at run time exits 1 and says where.
	rules := write(t, dir, "r.yaml", "version: 1\nrules:\n  - name: r\n    on: {source: crm.notify}\n    record: all\n    when: record.Amount > 10\n    steps: [{action: crm.coql, with: {query: select id from Deals}}]\n")
	okEv := write(t, dir, "ev.json", `{"source":"crm.notify","module":"Deals","operation":"update","record_id":"1"}`)
	strRec := write(t, dir, "str.json", `{"Amount":"ten"}`)
	code, out, _ = run(t, "test", "--event", okEv, "--record", strRec, rules)
	if code != 1 || !strings.Contains(out, "rule r: no (condition: condition error: when:") {
		t.Errorf("eval error: %d\n%s", code, out)
	}
	code, out, _ = run(t, "test", "--event", okEv, rules)
	if code != 1 || !strings.Contains(out, "hint: record is null in this test; pass the record with --record RECORD.json") {
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
