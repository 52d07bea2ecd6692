package zoho_test

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// planCases cover every action and the inputs that change the wire
// (defaults, ids as numbers, bulk, organization_id, raw bodies).
func planCases(d zohotest.Demo) []struct {
	name   string
	action string
	in     map[string]any
} {
	return []struct {
		name   string
		action string
		in     map[string]any
	}{
		{"crm create, no trigger given", "crm.create_record", map[string]any{"module": "Leads", "data": map[string]any{"Last_Name": "Plan", "Amount": 1500.0}}},
		{"crm create, upsert", "crm.create_record", map[string]any{"module": "Leads", "data": []any{map[string]any{"Last_Name": "A", "Email": "a@x.test"}}, "duplicate_check_fields": []any{"Email"}, "upsert": true, "trigger": []any{"workflow"}}},
		{"crm get", "crm.get_record", map[string]any{"module": "Deals", "id": d.DealID, "fields": []any{"Stage", "Amount"}}},
		{"crm list", "crm.get_records", map[string]any{"module": "Leads", "fields": "Last_Name,Email", "per_page": int64(5), "sort_order": "desc", "sort_by": "Last_Name"}},
		{"crm list all", "crm.get_records", map[string]any{"module": "Leads", "fields": []any{"Last_Name"}, "all": true}},
		{"crm update by id", "crm.update_record", map[string]any{"module": "Deals", "id": int64(5725767000000524157), "data": map[string]any{"Stage": "Closed Lost"}, "trigger": "all"}},
		{"crm update bulk", "crm.update_record", map[string]any{"module": "Deals", "data": []any{map[string]any{"id": d.DealID, "Amount": int64(1300)}}}},
		{"crm delete", "crm.remove_record", map[string]any{"module": "Leads", "ids": []any{d.LeadID, "5725767000000000001"}}},
		{"crm delete with workflows", "crm.remove_record", map[string]any{"module": "Leads", "id": d.LeadID, "wf_trigger": true}},
		{"crm attach text", "crm.add_attachment", map[string]any{"module": "Deals", "id": d.DealID, "file_name": "n.txt", "content": "hello", "title": "Note"}},
		{"crm attach link", "crm.add_attachment", map[string]any{"module": "Deals", "id": d.DealID, "url": "https://example.com/a.pdf", "title": "A"}},
		{"crm attachments", "crm.get_attachments", map[string]any{"module": "Deals", "id": d.DealID, "per_page": int64(10)}},
		{"crm coql", "crm.coql", map[string]any{"query": "select id, Stage from Deals where Stage = 'Closed Won' limit 5"}},
		{"crm raw", "crm.raw_request", map[string]any{"method": "post", "path": "/Notes", "query": map[string]any{"a": int64(1)}, "headers": map[string]any{"X-Test": "y"},
			"json": map[string]any{"data": []any{map[string]any{"Note_Title": "t", "Parent_Id": map[string]any{"id": d.DealID}}}}}},
		{"books raw form", "books.raw_request", map[string]any{"method": "PUT", "path": "items/" + d.BooksItemID, "form": map[string]any{"rate": 10.5}}},
		{"books create", "books.create_record", map[string]any{"entity": "contacts", "data": map[string]any{"contact_name": "Plan & Co", "credit_limit": 1500.0}}},
		{"books get, other org", "books.get_record", map[string]any{"entity": "contacts", "id": d.BooksContactID, "organization_id": int64(999)}},
		{"books list", "books.get_records", map[string]any{"entity": "contacts", "search": map[string]any{"contact_name": "Bowman & Co"}, "per_page": int64(20)}},
		{"books update", "books.update_record", map[string]any{"entity": "items", "id": d.BooksItemID, "data": map[string]any{"rate": 1300}}},
		{"books delete, sub-resource", "books.remove_record", map[string]any{"entity": "comments", "id": "1", "parent_type": "invoices", "parent_id": "2"}},
	}
}

// PlanAction must describe exactly what RunAction sends: each case runs
// both, RunAction against the fake Zoho over real HTTP, and compares
// method, path, query and body request by request.
func TestPlanActionMatchesRunAction(t *testing.T) {
	e := newEnv(t, nil)
	d := e.s.SeedDemo()
	ctx := ctxT(t)
	for _, tc := range planCases(d) {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := zoho.PlanAction(ctx, e.cfg, tc.action, tc.in)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			e.s.ResetCalls()
			_, _ = e.c.RunAction(ctx, tc.action, tc.in) // Zoho's answer does not matter, the request does
			var sent []zohotest.Call
			for _, c := range e.s.Calls() {
				if !strings.HasPrefix(c.Path, "/oauth/") {
					sent = append(sent, c)
				}
			}
			if len(sent) == 0 || len(plan) == 0 {
				t.Fatalf("planned %d requests, sent %d", len(plan), len(sent))
			}
			if len(plan) > len(sent) {
				t.Fatalf("planned %d requests, sent %d", len(plan), len(sent))
			}
			// A paging action sends more pages than its plan shows; the
			// planned ones must be the first sent.
			for i, p := range plan {
				s := sent[i]
				u, err := url.Parse(p.URL)
				if err != nil {
					t.Fatal(err)
				}
				if p.Method != s.Method || u.Path != s.Path || !reflect.DeepEqual(u.Query(), s.Query) {
					t.Errorf("request %d: planned %s %s?%s, sent %s %s?%s", i, p.Method, u.Path, u.RawQuery, s.Method, s.Path, s.Query.Encode())
				}
				if got, want := p.Header.Get("Content-Type"), s.Header.Get("Content-Type"); mediaType(got) != mediaType(want) {
					t.Errorf("request %d: content type planned %q, sent %q", i, got, want)
				}
				if pb, sb := comparableBody(t, p.Header.Get("Content-Type"), p.Body), comparableBody(t, s.Header.Get("Content-Type"), s.Body); pb != sb {
					t.Errorf("request %d: body planned\n%s\nsent\n%s", i, pb, sb)
				}
				if p.Header.Get("Authorization") != "" {
					t.Errorf("request %d: the plan shows the Authorization header", i)
				}
				if tc.action == "crm.raw_request" && p.Header.Get("X-Test") != "y" {
					t.Errorf("request %d: the raw request's header is missing: %v", i, p.Header)
				}
			}
		})
	}
}

func mediaType(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// comparableBody renders a body so two sends compare equal: multipart
// boundaries are random, so parts are listed instead.
func comparableBody(t *testing.T, ct string, body []byte) string {
	t.Helper()
	mt, params, _ := mime.ParseMediaType(ct)
	if mt != "multipart/form-data" {
		return string(body)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var b strings.Builder
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return b.String()
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		data, _ := io.ReadAll(p)
		b.WriteString(p.FormName() + "|" + p.FileName() + "|" + string(data) + "\n")
	}
}

// The wire shows what zohook adds: CRM writes without trigger carry
// "trigger": [] (no Zoho automation), deletes wf_trigger=false when the
// inputs say so, numbers as Go encodes them (1500, not 1500.0), and the
// configured base URL and organization_id.
func TestPlanActionWire(t *testing.T) {
	ctx := ctxT(t)
	cfg := zoho.Config{DC: "eu", BooksOrgID: "600"}
	plan, err := zoho.PlanAction(ctx, cfg, "crm.update_record", map[string]any{"module": "Deals", "id": "42", "data": map[string]any{"Amount": 1500.0}})
	if err != nil || len(plan) != 1 {
		t.Fatalf("%v %v", plan, err)
	}
	if got := plan[0]; got.Method != http.MethodPut || got.URL != "https://www.zohoapis.eu/crm/v8/Deals/42" ||
		string(got.Body) != `{"data":[{"Amount":1500}],"trigger":[]}` || got.ContentType() != "application/json" {
		t.Errorf("update: %s %s %s (%s)", got.Method, got.URL, got.Body, got.ContentType())
	}
	plan, err = zoho.PlanAction(ctx, cfg, "crm.remove_record", map[string]any{"module": "Deals", "id": "42", "wf_trigger": false})
	if err != nil || len(plan) != 1 || plan[0].URL != "https://www.zohoapis.eu/crm/v8/Deals?ids=42&wf_trigger=false" || plan[0].Body != nil {
		t.Errorf("delete: %+v %v", plan, err)
	}
	plan, err = zoho.PlanAction(ctx, cfg, "books.get_records", map[string]any{"entity": "contacts", "search": map[string]any{"contact_name": "A&B"}})
	if err != nil || len(plan) != 1 || plan[0].URL != "https://www.zohoapis.eu/books/v3/contacts?contact_name=A%26B&organization_id=600" {
		t.Errorf("books list: %+v %v", plan, err)
	}
	cfg.APIURL = "https://crm.proxy.example"
	plan, err = zoho.PlanAction(ctx, cfg, "crm.coql", map[string]any{"query": "select id from Deals", "all": true})
	if err != nil || len(plan) != 1 || plan[0].URL != "https://crm.proxy.example/crm/v8/coql" || plan[0].Method != http.MethodPost {
		t.Errorf("coql all: %+v %v", plan, err)
	}
}

// Inputs the client refuses are refused by the plan the same way, and
// nothing is planned for them.
func TestPlanActionRefusals(t *testing.T) {
	ctx := ctxT(t)
	cfg := zoho.Config{}
	for _, tc := range []struct {
		action string
		in     map[string]any
		want   any
	}{
		{"crm.raw_request", map[string]any{"method": "GET", "path": "//evil.example/x"}, &zoho.PathError{}},
		{"crm.raw_request", map[string]any{"method": "GET", "path": "../../oauth"}, &zoho.PathError{}},
		{"crm.update_record", map[string]any{"module": "Deals", "data": map[string]any{"x": 1}, "bogus": 1}, &zoho.InputError{}},
		{"books.get_record", map[string]any{"entity": "contacts", "id": "1"}, &zoho.InputError{}}, // no organization_id anywhere
		{"crm.get_records", map[string]any{"module": "Deals", "fields": "a", "per_page": 500}, &zoho.InputError{}},
		{"no.such_action", map[string]any{}, &zoho.InputError{}},
	} {
		plan, err := zoho.PlanAction(ctx, cfg, tc.action, tc.in)
		if len(plan) != 0 || err == nil {
			t.Errorf("%s %v: planned %v, err %v", tc.action, tc.in, plan, err)
			continue
		}
		target := reflect.New(reflect.TypeOf(tc.want)).Interface()
		if !errors.As(err, target) {
			t.Errorf("%s %v: error %T %v, want %T", tc.action, tc.in, err, err, tc.want)
		}
	}
}
