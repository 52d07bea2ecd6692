package zoho_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

func TestBooksEntities(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	out, _, err := e.c.Books.CreateRecord(ctx, "contacts", map[string]any{"contact_name": "Bowman & Co"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cid := fmt.Sprint(out["contact"].(map[string]any)["contact_id"])
	inv, resp, err := e.c.Books.CreateRecord(ctx, "invoices", map[string]any{"customer_id": cid,
		"line_items": []any{map[string]any{"name": "Setup", "rate": 50, "quantity": 2}}}, &zoho.BooksOptions{Query: url.Values{"send": {"true"}}})
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create invoice: %v %v", err, resp)
	}
	invoice := inv["invoice"].(map[string]any)
	iid := fmt.Sprint(invoice["invoice_id"])
	if !strings.HasPrefix(fmt.Sprint(invoice["invoice_number"]), "INV-") || invoice["status"] != "sent" {
		t.Fatalf("invoice = %v", invoice)
	}
	got, _, err := e.c.Books.GetRecord(ctx, "invoices", iid, nil)
	if err != nil || got["invoice"].(map[string]any)["customer_name"] != "Bowman & Co" {
		t.Fatalf("get invoice: %v %v", got, err)
	}
	if _, _, err := e.c.Books.UpdateRecord(ctx, "invoices", iid, map[string]any{"reference_number": "CRM-1"}, nil); err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.s.BooksRecord(e.cfg.BooksOrgID, "invoices", iid); rec["reference_number"] != "CRM-1" {
		t.Fatalf("update not stored: %v", rec["reference_number"])
	}
	// Child collection through ParentType/ParentID.
	if _, _, err := e.c.Books.CreateRecord(ctx, "comments", map[string]any{"description": "hello"},
		&zoho.BooksOptions{ParentType: "invoices", ParentID: iid}); err != nil {
		t.Fatalf("comment: %v", err)
	}
	if c := e.s.CallsTo(http.MethodPost, "/books/v3/invoices/"+iid+"/comments"); len(c) != 1 {
		t.Fatal("comment path not used")
	}
	if _, _, err := e.c.Books.DeleteRecord(ctx, "invoices", iid, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.c.Books.GetRecord(ctx, "invoices", iid, nil)
	var ze *zoho.Error
	if !zoho.IsNotFound(err) || !errors.As(err, &ze) || ze.Code != "1002" || ze.API != "books" {
		t.Fatalf("deleted invoice: %v", err)
	}
	// Missing org id is refused before any call.
	noOrg := e.cfg
	noOrg.BooksOrgID = ""
	c2, _ := zoho.NewClient(noOrg)
	var ie *zoho.InputError
	if _, _, err := c2.Books.ListRecords(ctx, "invoices", nil); !errors.As(err, &ie) || ie.Input != "organization_id" {
		t.Fatalf("no org: %v", err)
	}
	// Entity path checks.
	if _, _, err := e.c.Books.GetRecord(ctx, "../crm", "1", nil); err == nil {
		t.Fatal("dot entity accepted")
	}
}

func TestBooksRecordsPaging(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	for i := range 450 {
		e.s.BooksInsert(e.cfg.BooksOrgID, "contacts", map[string]any{"contact_name": fmt.Sprintf("c%03d", i), "contact_type": "customer"})
	}
	e.s.ResetCalls()
	n := 0
	for it, err := range e.c.Books.Records(ctx, "contacts", nil) {
		if err != nil {
			t.Fatal(err)
		}
		if it["contact_id"] == nil {
			t.Fatalf("item = %v", it)
		}
		n++
	}
	if n != 450 || len(e.s.CallsTo(http.MethodGet, "/books/v3/contacts")) != 3 {
		t.Fatalf("walked %d in %d calls", n, len(e.s.CallsTo(http.MethodGet, "/books/v3/contacts")))
	}
	out, resp, err := e.c.Books.ListRecords(ctx, "contacts", &zoho.BooksListOptions{Page: 2, PerPage: 100, Filters: url.Values{"contact_name_startswith": {"c1"}}})
	if err != nil || resp.PageContext == nil || resp.PageContext.Page != 2 {
		t.Fatalf("list: %v %+v", err, resp)
	}
	if items := out["contacts"].([]any); len(items) != 0 && !strings.HasPrefix(fmt.Sprint(items[0].(map[string]any)["contact_name"]), "c1") {
		t.Fatalf("filter ignored: %v", items[0])
	}
}

func TestCOQL(t *testing.T) {
	e := newEnv(t, nil, zoho.WithCOQLPageSize(50))
	ctx := ctxT(t)
	for i := range 120 {
		e.s.CRMInsert("Accounts", map[string]any{"Account_Name": fmt.Sprintf("a%03d", i), "Industry": "Tech"})
	}
	rows, resp, err := e.c.CRM.COQL(ctx, "select Account_Name from Accounts where Industry = 'Tech' limit 10")
	if err != nil || len(rows) != 10 || !resp.Info.MoreRecords {
		t.Fatalf("COQL = %d %+v %v", len(rows), resp, err)
	}
	e.s.ResetCalls()
	n := 0
	for _, err := range e.c.CRM.COQLAll(ctx, "select Account_Name from Accounts where Industry = 'Tech' limit 110 offset 5") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	calls := e.s.CallsTo(http.MethodPost, "/crm/v8/coql")
	if n != 110 || len(calls) != 3 {
		t.Fatalf("COQLAll = %d rows in %d calls", n, len(calls))
	}
	if !bytes.Contains(calls[2].Body, []byte("limit 10 offset 105")) {
		t.Fatalf("last page query: %s", calls[2].Body)
	}
	n = 0
	for _, err := range e.c.CRM.COQLAll(ctx, "select Account_Name from Accounts where Industry = 'Tech'") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 120 {
		t.Fatalf("COQLAll without limit = %d", n)
	}
	rows, _, err = e.c.CRM.COQL(ctx, "select Account_Name from Accounts where Industry = 'None'")
	if err != nil || len(rows) != 0 {
		t.Fatalf("empty COQL: %v %v", rows, err)
	}
	_, _, err = e.c.CRM.COQL(ctx, "select Account_Name Accounts")
	var ze *zoho.Error
	if !errors.As(err, &ze) || ze.HTTPStatus != 400 {
		t.Fatalf("bad COQL: %v", err)
	}
}

func TestAttachments(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "att", "Stage": "Qualification"})
	content := bytes.Repeat([]byte("zohook\x00\x01"), 1000)
	r, _, err := e.c.CRM.AddAttachment(ctx, "Deals", id, "quote.bin", bytes.NewReader(content), &zoho.AttachmentOptions{Title: "Quote"})
	if err != nil || r.ID == "" {
		t.Fatalf("upload: %+v %v", r, err)
	}
	link, _, err := e.c.CRM.AttachLink(ctx, "Deals", id, "https://example.com/spec.pdf", "Spec")
	if err != nil || link.ID == "" {
		t.Fatalf("link: %+v %v", link, err)
	}
	list, _, err := e.c.CRM.ListAttachments(ctx, "Deals", id, nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	got, resp, err := e.c.CRM.DownloadAttachment(ctx, "Deals", id, r.ID)
	if err != nil || !bytes.Equal(got, content) || resp.Header.Get("Content-Type") == "" {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	if _, _, err := e.c.CRM.DeleteAttachment(ctx, "Deals", id, r.ID); err != nil {
		t.Fatal(err)
	}
	if atts := e.s.CRMAttachments("Deals", id); len(atts) != 1 {
		t.Fatalf("after delete: %d attachments", len(atts))
	}
	if _, _, err := e.c.CRM.AttachLink(ctx, "Deals", id, "javascript:alert(1)", ""); err == nil {
		t.Fatal("bad link accepted")
	}
}

func TestNotificationChannels(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	yes, no := true, false
	ch := zoho.Channel{ChannelID: "1000000068001", Events: []string{"Leads.create", "Deals.all"}, NotifyURL: "https://hooks.example.com/zoho/crm/notify?tenant=acme",
		Token: "verify-me", ChannelExpiry: time.Now().Add(24 * time.Hour), ReturnAffectedFieldValues: &yes, NotifyOnRelatedAction: &no}
	res, resp, err := e.c.CRM.EnableChannel(ctx, ch)
	if err != nil || len(res) == 0 || resp.StatusCode != http.StatusCreated {
		t.Fatalf("enable: %+v %v %v", res, resp, err)
	}
	chs, _, err := e.c.CRM.ListChannels(ctx, &zoho.ChannelListOptions{ChannelID: ch.ChannelID})
	if err != nil || len(chs) == 0 || chs[0].ChannelID != ch.ChannelID || chs[0].Token != "verify-me" {
		t.Fatalf("list: %+v %v", chs, err)
	}
	ch.ChannelExpiry = time.Now().Add(48 * time.Hour)
	if _, _, err := e.c.CRM.PatchChannel(ctx, ch); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if _, _, err := e.c.CRM.UpdateChannel(ctx, ch); err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, _, err := e.c.CRM.DisableEvents(ctx, ch.ChannelID, []string{"Deals.all"}); err != nil {
		t.Fatalf("disable events: %v", err)
	}
	chs, _, _ = e.c.CRM.ListChannels(ctx, &zoho.ChannelListOptions{ChannelID: ch.ChannelID})
	for _, c := range chs {
		for _, ev := range c.Events {
			if strings.HasPrefix(ev, "Deals.") {
				t.Fatalf("Deals event still there: %v", c.Events)
			}
		}
	}
	// Unknown channel → per-item NOT_SUBSCRIBED as a *BatchError.
	_, _, err = e.c.CRM.PatchChannel(ctx, zoho.Channel{ChannelID: "999", Events: []string{"Leads.edit"}})
	var be *zoho.BatchError
	if !errors.As(err, &be) || be.Failed[0].Code != "NOT_SUBSCRIBED" {
		t.Fatalf("unknown channel: %v", err)
	}
	if _, _, err := e.c.CRM.DisableChannels(ctx, []string{ch.ChannelID}); err != nil {
		t.Fatalf("disable: %v", err)
	}
	chs, resp, err = e.c.CRM.ListChannels(ctx, nil)
	if err != nil || len(chs) != 0 {
		t.Fatalf("after disable: %v %v %v", chs, resp, err)
	}
	if _, _, err := e.c.CRM.EnableChannel(ctx, zoho.Channel{ChannelID: "1", Events: []string{"Leads.all"}, NotifyURL: "https://x", Token: strings.Repeat("t", 51)}); err == nil {
		t.Fatal("51-char token accepted")
	}
}

func TestSearchRecords(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	e.s.CRMInsert("Contacts", map[string]any{"Last_Name": "Boyle", "Email": "p.boyle@zylker.test"})
	e.s.CRMInsert("Contacts", map[string]any{"Last_Name": "Other", "Email": "o@zylker.test"})
	recs, _, err := e.c.CRM.SearchRecords(ctx, "Contacts", &zoho.SearchOptions{Criteria: "(Last_Name:equals:Boyle)", Fields: []string{"Last_Name", "Email"}})
	if err != nil || len(recs) != 1 || recs[0]["Email"] != "p.boyle@zylker.test" {
		t.Fatalf("search: %v %v", recs, err)
	}
	recs, _, err = e.c.CRM.SearchRecords(ctx, "Contacts", &zoho.SearchOptions{Email: "o@zylker.test"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("search email: %v %v", recs, err)
	}
}

func TestConfigFromEnvRoundTrip(t *testing.T) {
	s := zohotest.NewServer()
	defer s.Close()
	cr := s.Credentials()
	envm := map[string]string{zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret, zoho.EnvRefreshToken: cr.RefreshToken,
		zoho.EnvAccountsURL: s.URL(), zoho.EnvBooksOrgID: cr.OrgID}
	cfg, err := zoho.ConfigFromEnv(func(k string) string { return envm[k] })
	if err != nil || cfg.Validate() != nil || !cfg.HasCredentials() {
		t.Fatalf("%v %v", err, cfg.Validate())
	}
	c, err := zoho.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// api_domain (the fake's URL) is followed although DC us says www.zohoapis.com.
	if _, _, err := c.Books.ListRecords(ctxT(t), "contacts", nil); err != nil {
		t.Fatal(err)
	}
}

func TestActions(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	contact := e.s.BooksInsert(e.cfg.BooksOrgID, "contacts", map[string]any{"contact_name": "Acme", "contact_type": "customer"})
	dealID := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "Big", "Stage": "Qualification"})
	for i := range 30 {
		e.s.CRMInsert("Accounts", map[string]any{"Account_Name": fmt.Sprintf("acc%02d", i), "Industry": "Retail"})
	}

	type check func(t *testing.T, out map[string]any)
	cases := []struct {
		name   string
		action string
		in     map[string]any
		check  check
	}{
		{"create one, trigger default []", "crm.create_record", map[string]any{"module": "Leads", "data": map[string]any{"Last_Name": "A", "Company": "C"}},
			func(t *testing.T, out map[string]any) {
				calls := e.s.CallsTo("POST", "/crm/v8/Leads")
				if out["id"] == "" || len(out["ids"].([]any)) != 1 || !bytes.Contains(calls[len(calls)-1].Body, []byte(`"trigger":[]`)) {
					t.Fatalf("out %v body %s", out, calls[len(calls)-1].Body)
				}
			}},
		{"create list with explicit trigger", "crm.create_record", map[string]any{"module": "Leads", "trigger": []any{"workflow"},
			"data": []any{map[string]any{"Last_Name": "B"}, map[string]any{"Last_Name": "C"}}},
			func(t *testing.T, out map[string]any) {
				if len(out["data"].([]any)) != 2 {
					t.Fatal(out)
				}
			}},
		{"upsert", "crm.create_record", map[string]any{"module": "Leads", "upsert": true, "duplicate_check_fields": "Email",
			"data": map[string]any{"Last_Name": "U", "Email": "u@x.test"}},
			func(t *testing.T, out map[string]any) {
				if out["data"].([]any)[0].(map[string]any)["action"] != "insert" {
					t.Fatal(out)
				}
			}},
		{"get record by numeric id", "crm.get_record", map[string]any{"module": "Deals", "id": mustInt(dealID), "fields": []any{"Deal_Name"}},
			func(t *testing.T, out map[string]any) {
				if out["record"].(map[string]any)["Deal_Name"] != "Big" {
					t.Fatal(out)
				}
			}},
		{"get records page", "crm.get_records", map[string]any{"module": "Accounts", "fields": "Account_Name", "per_page": 10.0},
			func(t *testing.T, out map[string]any) {
				if len(out["data"].([]any)) != 10 || out["info"].(map[string]any)["more_records"] != true {
					t.Fatal(out["info"])
				}
			}},
		{"get records all with max", "crm.get_records", map[string]any{"module": "Accounts", "fields": []any{"Account_Name"}, "per_page": "10", "all": true, "max_records": 25},
			func(t *testing.T, out map[string]any) {
				if len(out["data"].([]any)) != 25 || out["info"].(map[string]any)["more_records"] != true {
					t.Fatal(len(out["data"].([]any)), out["info"])
				}
			}},
		{"update record", "crm.update_record", map[string]any{"module": "Deals", "id": dealID, "data": map[string]any{"Stage": "Closed Won"}},
			func(t *testing.T, out map[string]any) {
				if rec, _ := e.s.CRMRecord("Deals", dealID); rec["Stage"] != "Closed Won" || out["id"] != dealID {
					t.Fatal(out, rec["Stage"])
				}
			}},
		{"coql all", "crm.coql", map[string]any{"query": "select Account_Name from Accounts where Industry = 'Retail'", "all": true},
			func(t *testing.T, out map[string]any) {
				if len(out["data"].([]any)) != 30 {
					t.Fatal(len(out["data"].([]any)))
				}
			}},
		{"attachment base64", "crm.add_attachment", map[string]any{"module": "Deals", "id": dealID, "file_name": "a.txt",
			"content_base64": base64.StdEncoding.EncodeToString([]byte("hello"))},
			func(t *testing.T, out map[string]any) {
				if out["id"] == "" {
					t.Fatal(out)
				}
			}},
		{"attachment link", "crm.add_attachment", map[string]any{"module": "Deals", "id": dealID, "url": "https://example.com/x.pdf", "title": "X"},
			func(t *testing.T, out map[string]any) {
				if out["id"] == "" {
					t.Fatal(out)
				}
			}},
		{"attachments listed", "crm.get_attachments", map[string]any{"module": "Deals", "id": dealID, "per_page": 1},
			func(t *testing.T, out map[string]any) {
				rows, _ := out["data"].([]any)
				info, _ := out["info"].(map[string]any)
				if len(rows) != 1 || info["more_records"] != true {
					t.Fatalf("one of two attachments per page: %v", out)
				}
				if row := rows[0].(map[string]any); row["File_Name"] != "a.txt" || row["Size"] != "5" {
					t.Fatalf("first attachment %v", row)
				}
			}},
		{"crm raw", "crm.raw_request", map[string]any{"method": "GET", "path": "Deals/" + dealID, "query": map[string]any{"fields": "Deal_Name"},
			"max_retries": 1, "retry_delay": "1ms", "timeout": 5},
			func(t *testing.T, out map[string]any) {
				if out["status"] != 200 && out["status"] != int64(200) {
					t.Fatal(out["status"])
				}
			}},
		{"books create invoice", "books.create_record", map[string]any{"entity": "invoices", "data": map[string]any{"customer_id": contact,
			"line_items": []any{map[string]any{"name": "Fee", "rate": 10, "quantity": 3}}}},
			func(t *testing.T, out map[string]any) {
				inv := out["invoice"].(map[string]any)
				if !strings.HasPrefix(inv["invoice_number"].(string), "INV-") {
					t.Fatal(inv)
				}
				if total, ok := inv["total"].(float64); ok && total != 30 {
					t.Fatalf("total %v", total)
				}
			}},
		{"books get records all", "books.get_records", map[string]any{"entity": "contacts", "all": true, "search": map[string]any{"contact_name": "Acme"}},
			func(t *testing.T, out map[string]any) {
				if len(out["contacts"].([]any)) != 1 {
					t.Fatal(out)
				}
			}},
		{"books raw", "books.raw_request", map[string]any{"method": "GET", "path": "contacts/" + contact},
			func(t *testing.T, out map[string]any) {
				if out["body"].(map[string]any)["contact"] == nil {
					t.Fatal(out)
				}
			}},
		{"books update", "books.update_record", map[string]any{"entity": "contacts", "id": contact, "data": map[string]any{"email": "a@acme.test"}},
			func(t *testing.T, out map[string]any) {
				if rec, _ := e.s.BooksRecord(e.cfg.BooksOrgID, "contacts", contact); rec["email"] != "a@acme.test" {
					t.Fatal(rec)
				}
			}},
		{"remove record", "crm.remove_record", map[string]any{"module": "Deals", "ids": []any{dealID}},
			func(t *testing.T, out map[string]any) {
				if _, ok := e.s.CRMRecord("Deals", dealID); ok {
					t.Fatal("not deleted")
				}
				calls := e.s.CallsTo("DELETE", "/crm/v8/Deals")
				if calls[len(calls)-1].Query.Get("wf_trigger") != "false" {
					t.Fatal("wf_trigger default not false")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.c.RunAction(ctx, tc.action, tc.in)
			if err != nil {
				t.Fatalf("%s: %v", tc.action, err)
			}
			tc.check(t, out)
		})
	}

	bad := []struct {
		action, input string
		in            map[string]any
	}{
		{"crm.create_record", "module", map[string]any{"data": map[string]any{}}},
		{"crm.create_record", "data", map[string]any{"module": "Leads", "data": "oops"}},
		{"crm.create_record", "modul", map[string]any{"modul": "Leads", "module": "Leads", "data": map[string]any{}}},
		{"crm.get_records", "per_page", map[string]any{"module": "Leads", "fields": "x", "per_page": 1.5}},
		{"crm.get_records", "all", map[string]any{"module": "Leads", "fields": "x", "all": "maybe"}},
		{"crm.get_record", "id", map[string]any{"module": "Leads", "id": map[string]any{}}},
		{"crm.add_attachment", "content", map[string]any{"module": "Leads", "id": "1"}},
		{"crm.add_attachment", "content_base64", map[string]any{"module": "Leads", "id": "1", "file_name": "x", "content_base64": "!!!"}},
		{"crm.raw_request", "timeout", map[string]any{"method": "GET", "path": "Leads", "timeout": "soon"}},
		{"crm.raw_request", "files", map[string]any{"method": "POST", "path": "Leads/1/Attachments", "files": []any{map[string]any{"name": "file"}}}},
		{"crm.get_attachments", "per_page", map[string]any{"module": "Leads", "id": "1", "per_page": 500}},
		{"books.get_record", "id", map[string]any{"entity": "invoices"}},
		{"crm.remove_record", "ids", map[string]any{"module": "Leads"}},
		{"nope.action", "action", map[string]any{}},
	}
	e.s.ResetCalls()
	for _, b := range bad {
		_, err := e.c.RunAction(ctx, b.action, b.in)
		var ie *zoho.InputError
		if !errors.As(err, &ie) || ie.Input != b.input {
			t.Errorf("%s %v: err %v, want InputError on %q", b.action, b.in, err, b.input)
		}
	}
	if n := len(e.s.Calls()); n != 0 {
		t.Fatalf("bad inputs reached the fake: %d calls", n)
	}
	// Path refusal through the action layer.
	_, err := e.c.RunAction(ctx, "books.raw_request", map[string]any{"method": "GET", "path": "https://evil.example/x"})
	var pe *zoho.PathError
	if !errors.As(err, &pe) || len(e.s.Calls()) != 0 {
		t.Fatalf("raw evil path: %v", err)
	}
	// Partial failure: output and *BatchError together.
	out, err := e.c.RunAction(ctx, "crm.create_record", map[string]any{"module": "Leads", "data": []any{map[string]any{"Last_Name": "ok"}, map[string]any{"Company": "no name"}}})
	var be *zoho.BatchError
	if !errors.As(err, &be) || out == nil || out["id"] == "" || len(out["data"].([]any)) != 2 {
		t.Fatalf("partial: %v %v", out, err)
	}
	names := zoho.ActionNames()
	if len(names) != 15 || names[0] != "books.create_record" {
		t.Fatalf("ActionNames = %v", names)
	}
}

func mustInt(s string) int64 {
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		panic(err)
	}
	return n
}

var _ = zohotest.Fault{}
