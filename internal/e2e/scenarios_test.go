package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// Secrets the scenario configures; none may appear in any process output.
const (
	scenarioNotifyToken = "notify-tok-9Qe71xZ"
	scenarioHookSecret  = "hook-secret-Lw3p0Rk"
	scenarioBooksSecret = "books-secret-Zt82mQa"
)

// The example rules.yaml end to end, with the real receiver and worker
// binaries: every rule of the example fires from the callback Zoho would
// send, against the fake Zoho; a rule that does not match does nothing; a
// broken rules.yaml deployed while running leaves the last good rules in
// charge; and no configured secret shows up in any log.
func TestExampleRulesEndToEnd(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	fake.BooksInsert(demo.OrgID, "items", map[string]any{"item_id": demoItem, "name": "Annual licence", "rate": 1200})
	accountOwner := map[string]any{"id": "5725767000000411001", "name": "Patricia Boyle"}
	acct := fake.CRMInsert("Accounts", map[string]any{"Account_Name": "Zylker", "Owner": accountOwner})
	contact := fake.CRMInsert("Contacts", map[string]any{"Last_Name": "Ito", "Account_Name": map[string]any{"id": acct, "name": "Zylker"},
		"Owner": map[string]any{"id": "5725767000000422002", "name": "Someone Else"}})
	otherLead := fake.CRMInsert("Leads", map[string]any{"Last_Name": "Nakamura", "Company": "Kiyomi"})
	n := startNATS(t)

	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	example, err := os.ReadFile(filepath.Join(repoRoot(), "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rulesFile, example, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "zohook.yaml")
	cfg := `
hooks:
  crm_workflow:
    deal-lost:
      secret: {env: HOOK_SECRET}
      module: Deals
      operation: update
  books:
    invoice-paid:
      secret: {env: BOOKS_SECRET}
      operation: paid
`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	recv := startProc(t, "receiver", []string{"HOOK_SECRET=" + scenarioHookSecret, "BOOKS_SECRET=" + scenarioBooksSecret,
		"ZOHOOK_CRM_NOTIFY_TOKENS=" + scenarioNotifyToken},
		"-addr", addr, "-nats-url", n.url, "-config", cfgFile, "-log-format", "text", "-log-level", "debug")
	w := startProc(t, "worker", zohoEnv(fake), append(workerArgs(n), "-rules", rulesFile, "-log-level", "debug")...)
	base := "http://" + addr
	waitFor(t, "receiver ready", 20*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, recv)

	post := func(path string, hdr map[string]string, body any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
		}
	}
	serverTime := 1764400000000
	notify := func(module, op string, id string, changed ...string) {
		t.Helper()
		serverTime++
		post("/zoho/crm/notify", nil, map[string]any{"server_time": serverTime, "module": module, "ids": []string{id},
			"operation": op, "affected_fields": changed, "channel_id": "1000000068001", "token": scenarioNotifyToken})
	}
	handled := func(recordID string) func() bool {
		return func() bool {
			return strings.Count(w.out.String(), "msg=\"event handled\"") > 0 && strings.Contains(w.out.String(), "record_id="+recordID)
		}
	}

	// 1. Deal → Closed Won: Books contact found, invoice created, number written back.
	notify("Deals", "update", demo.DealID, "Stage")
	waitFor(t, "invoice number on the Deal", 20*time.Second, func() bool {
		d, _ := fake.CRMRecord("Deals", demo.DealID)
		return d["Invoice_Number"] != nil
	}, w)
	if inv := fake.BooksRecords(demo.OrgID, "invoices"); len(inv) != 1 || inv[0]["customer_id"] != demo.BooksContactID {
		t.Fatalf("invoices %v", inv)
	}

	// 2. Lead created → welcome note attached.
	notify("Leads", "insert", demo.LeadID)
	waitFor(t, "welcome note on the Lead", 20*time.Second, func() bool { return len(fake.CRMAttachments("Leads", demo.LeadID)) == 1 }, w)
	if a := fake.CRMAttachments("Leads", demo.LeadID)[0]; a.FileName != "welcome-"+demo.LeadID+".txt" || !strings.Contains(string(a.Content), "Patricia Boyle") {
		t.Fatalf("attachment %+v", a)
	}

	// 3. Contact's account changed → COQL finds the account owner → Contact updated.
	notify("Contacts", "update", contact, "Account_Name")
	waitFor(t, "contact owner copied from the account", 20*time.Second, func() bool {
		c, _ := fake.CRMRecord("Contacts", contact)
		o, _ := c["Owner"].(map[string]any)
		return o["id"] == accountOwner["id"]
	}, w)
	if len(fake.CallsTo(http.MethodPost, "/crm/v8/coql")) == 0 {
		t.Fatal("no COQL query was sent")
	}

	// 4. Books invoice-paid webhook → the Deal it came from is marked paid.
	post("/zoho/books/invoice-paid", map[string]string{"X-Zohook-Secret": scenarioBooksSecret}, map[string]any{
		"invoice": map[string]any{"invoice_id": "982000000567114", "reference_number": "CRM-DEAL-" + demo.DealID, "total": 1200, "status": "paid"}})
	waitFor(t, "Deal marked paid", 20*time.Second, func() bool {
		d, _ := fake.CRMRecord("Deals", demo.DealID)
		return d["Invoice_Status"] == "Paid"
	}, w)

	// 5. CRM workflow webhook deal-lost → a Note through a raw request.
	post("/zoho/crm/workflow/deal-lost", map[string]string{"X-Zohook-Secret": scenarioHookSecret},
		map[string]any{"id": demo.DealID, "reason": "budget cut", "modified": "2026-11-29T10:00:00+05:30"})
	waitFor(t, "note added through the raw request", 20*time.Second, func() bool {
		for _, note := range fake.CRMRecords("Notes") {
			if strings.Contains(fmt.Sprint(note["Note_Content"]), "budget cut") {
				return true
			}
		}
		return false
	}, w)

	// 6. A change no rule matches: handled, nothing sent to Zoho.
	before := len(fake.Calls())
	notify("Leads", "update", otherLead, "Phone")
	waitFor(t, "unmatched event handled", 20*time.Second, handled(otherLead), w)
	if after := len(fake.Calls()); after != before {
		t.Fatalf("an unmatched event made %d Zoho calls", after-before)
	}

	// 7. A broken rules.yaml is deployed: the worker keeps the last good rules.
	if err := os.WriteFile(rulesFile, []byte("version: 1\nrules:\n  - name: oops\n    on: {source: crm.notify, module: Leads}\n    steps:\n      - action: crm.nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalid file to be refused", 10*time.Second, func() bool { return strings.Contains(w.out.String(), "keeping the previous rules") }, w)
	notify("Leads", "insert", otherLead)
	waitFor(t, "old rules still attach the welcome note", 20*time.Second, func() bool { return len(fake.CRMAttachments("Leads", otherLead)) == 1 }, w)

	w.stop(t)
	recv.stop(t)
	for _, p := range []*proc{w, recv} {
		out := p.out.String()
		for _, secret := range []string{scenarioNotifyToken, scenarioHookSecret, scenarioBooksSecret, fake.Credentials().ClientSecret, fake.Credentials().RefreshToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output contains a secret (%s…)", filepath.Base(p.cmd.Path), secret[:4])
			}
		}
	}
}
