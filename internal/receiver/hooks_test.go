package receiver_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/receiver"
)

const hookSecret = "wf-secret-7Hq2"

func withHooks(c *receiver.Config) {
	c.CRMWorkflowHooks = map[string]receiver.HookConfig{
		"deal-stage": {Secret: hookSecret, Module: "Deals", Operation: "update"},
		"any-module": {Secret: hookSecret, ModuleField: "module", OperationField: "op", RecordIDField: "record"},
	}
	c.BooksHooks = map[string]receiver.HookConfig{
		"invoices":       {Secret: hookSecret, Operation: "paid", Connection: "eu-org"},
		"signed":         {Secret: hookSecret, Signature: true},
		"payments-fixed": {Secret: hookSecret, Module: "customerpayment", RecordIDField: "payment_id"},
	}
}

func (h *harness) do(t *testing.T, path, ctype string, hdr http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("not JSON (%d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func sign(query url.Values, body []byte, hexEnc bool) string {
	mac := hmac.New(sha256.New, []byte(hookSecret))
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	// sorted key order, as Zoho documents
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	for _, k := range keys {
		mac.Write([]byte(k + query.Get(k)))
	}
	mac.Write(body)
	if hexEnc {
		return hex.EncodeToString(mac.Sum(nil))
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestCRMWorkflowHook(t *testing.T) {
	h := start(t, nil, withHooks)
	secretHdr := http.Header{"X-Zohook-Secret": {hookSecret}}
	jsonBody := []byte(`{"id":"5725767000000524157","stage":"Closed Won","modified":"2026-11-29T10:00:00+05:30"}`)

	code, out := h.do(t, "/zoho/crm/workflow/deal-stage", "application/json", secretHdr, jsonBody)
	if code != 200 || out["accepted"].(float64) != 1 {
		t.Fatalf("json: %d %v", code, out)
	}
	// The same webhook again (Zoho retry) is stored once.
	if code, out = h.do(t, "/zoho/crm/workflow/deal-stage", "application/json", secretHdr, jsonBody); code != 200 || out["duplicates"].(float64) != 1 {
		t.Fatalf("duplicate: %d %v", code, out)
	}
	// Form body, secret in the query string, module and operation from fields.
	form := url.Values{"module": {"Leads"}, "op": {"insert"}, "record": {"5725767000000524201"}, "Last_Name": {"Boyle"}}
	code, out = h.do(t, "/zoho/crm/workflow/any-module?secret="+hookSecret, "application/x-www-form-urlencoded", nil, []byte(form.Encode()))
	if code != 200 {
		t.Fatalf("form: %d %v", code, out)
	}
	envs := h.env.Envelopes(t)
	if len(envs) != 2 {
		t.Fatalf("%d events", len(envs))
	}
	a, b := envs[0], envs[1]
	if a.Source != events.SourceCRMWorkflow || a.Module != "Deals" || a.Operation != "update" || a.RecordID != "5725767000000524157" ||
		a.Hook != "deal-stage" || a.Values["stage"] != "Closed Won" {
		t.Fatalf("json event %+v", a)
	}
	if b.Module != "Leads" || b.Operation != "create" || b.RecordID != "5725767000000524201" || b.Values["Last_Name"] != "Boyle" {
		t.Fatalf("form event %+v", b)
	}
	if strings.Contains(string(b.Raw), hookSecret) || strings.Contains(string(a.Raw), hookSecret) {
		t.Fatal("stored event contains the secret")
	}

	bad := []struct {
		name, path, ctype string
		hdr               http.Header
		body              string
		status            int
	}{
		{"wrong secret", "/zoho/crm/workflow/deal-stage", "application/json", http.Header{"X-Zohook-Secret": {"nope"}}, string(jsonBody), 401},
		{"no secret", "/zoho/crm/workflow/deal-stage", "application/json", nil, string(jsonBody), 401},
		{"unknown hook", "/zoho/crm/workflow/nope", "application/json", secretHdr, string(jsonBody), 404},
		{"missing id", "/zoho/crm/workflow/deal-stage", "application/json", secretHdr, `{"stage":"x"}`, 400},
		{"id not a number", "/zoho/crm/workflow/deal-stage", "application/json", secretHdr, `{"id":"${!Deals.id}"}`, 400},
		{"missing module field", "/zoho/crm/workflow/any-module", "application/json", secretHdr, `{"record":"1"}`, 400},
		{"not an object", "/zoho/crm/workflow/deal-stage", "application/json", secretHdr, `[1]`, 400},
		{"xml", "/zoho/crm/workflow/deal-stage", "application/xml", secretHdr, `<a/>`, 415},
	}
	for _, tc := range bad {
		code, out := h.do(t, tc.path, tc.ctype, tc.hdr, []byte(tc.body))
		if code != tc.status || out["error"] == nil {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.status)
		}
	}
	if n := h.env.Messages(t); n != 2 {
		t.Fatalf("bad requests stored events: %d", n)
	}
}

func TestBooksHook(t *testing.T) {
	h := start(t, nil, withHooks)
	invoice := []byte(`{"invoice":{"invoice_id":"982000000567114","invoice_number":"INV-00003","status":"paid","total":180.2,"last_modified_time":"2026-11-17T10:10:10+0530"}}`)
	code, out := h.do(t, "/zoho/books/invoices", "application/json", http.Header{"X-Zohook-Secret": {hookSecret}}, invoice)
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	// Signed: hex and base64 both accepted; query parameters are part of the signed string.
	q := url.Values{"operation": {"created"}}
	for _, hexEnc := range []bool{true, false} {
		body := []byte(`{"contact":{"contact_id":"982000000567001","contact_name":"Bowman & Co","hex":` + map[bool]string{true: "true", false: "false"}[hexEnc] + `}}`)
		code, out = h.do(t, "/zoho/books/signed?"+q.Encode(), "application/json",
			http.Header{receiver.SignatureHeader: {sign(q, body, hexEnc)}}, body)
		if code != 200 {
			t.Fatalf("signed (hex=%v): %d %v", hexEnc, code, out)
		}
	}
	// Legacy form encoding with JSONString, fixed module and id field.
	form := url.Values{"JSONString": {`{"payment_id":"982000000999001","amount":180.2}`}}
	code, out = h.do(t, "/zoho/books/payments-fixed?secret="+hookSecret, "application/x-www-form-urlencoded", nil, []byte(form.Encode()))
	if code != 200 {
		t.Fatalf("form: %d %v", code, out)
	}
	envs := h.env.Envelopes(t)
	if len(envs) != 4 {
		t.Fatalf("%d events", len(envs))
	}
	inv := envs[0]
	if inv.Source != events.SourceBooks || inv.Module != "invoice" || inv.RecordID != "982000000567114" || inv.Operation != "paid" ||
		inv.Connection != "eu-org" || inv.Values["invoice_number"] != "INV-00003" {
		t.Fatalf("invoice event %+v", inv)
	}
	if c := envs[1]; c.Module != "contact" || c.Operation != "create" || c.RecordID != "982000000567001" {
		t.Fatalf("signed event %+v", c)
	}
	if p := envs[3]; p.Module != "customerpayment" || p.RecordID != "982000000999001" {
		t.Fatalf("payment event %+v", p)
	}

	body := []byte(`{"contact":{"contact_id":"1"}}`)
	bad := []struct {
		name, path string
		hdr        http.Header
		body       []byte
		status     int
	}{
		{"bad signature", "/zoho/books/signed", http.Header{receiver.SignatureHeader: {"deadbeef"}}, body, 401},
		{"signature over other body", "/zoho/books/signed", http.Header{receiver.SignatureHeader: {sign(nil, []byte(`{}`), true)}}, body, 401},
		{"no signature", "/zoho/books/signed", nil, body, 401},
		{"wrong secret", "/zoho/books/invoices", http.Header{"X-Zohook-Secret": {"x"}}, invoice, 401},
		{"two entities", "/zoho/books/invoices", http.Header{"X-Zohook-Secret": {hookSecret}}, []byte(`{"a":{"a_id":"1"},"b":{"b_id":"2"}}`), 400},
		{"missing id", "/zoho/books/invoices", http.Header{"X-Zohook-Secret": {hookSecret}}, []byte(`{"invoice":{"total":1}}`), 400},
		{"truncated", "/zoho/books/invoices", http.Header{"X-Zohook-Secret": {hookSecret}}, invoice[:30], 400},
	}
	for _, tc := range bad {
		code, out := h.do(t, tc.path, "application/json", tc.hdr, tc.body)
		if code != tc.status || out["error"] == nil {
			t.Errorf("%s: %d %v, want %d", tc.name, code, out, tc.status)
		}
	}
	if n := h.env.Messages(t); n != 4 {
		t.Fatalf("bad requests stored events: %d", n)
	}
}
