package receiver_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/testutil"
)

// A configured secret is never stored in an event, as a key or a value,
// escaped or not. Its own field (the notification's token, the hook's
// secret field in any spelling) is removed; anywhere else it means a
// misconfigured webhook or a secret leaked into CRM data, and the callback
// is refused with 400 (see secrets.go) without echoing the secret in the
// answer or the log. The fuzz seed
// testdata/fuzz/FuzzCRMWorkflowHook/723d2df001be131d (the secret as a form
// key) is the case that found it.
func TestSecretOutsideItsFieldIsRefused(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	h := start(t, nil, withHooks, func(c *receiver.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	hdr := http.Header{"X-Zohook-Secret": {hookSecret}}
	escaped := strings.Replace(hookSecret, "s", `\u0073`, 1)
	refused := []struct {
		name, path, ctype string
		hdr               http.Header
		body              string
	}{
		{"secret as a form key", "/zoho/crm/workflow/deal-stage", "application/x-www-form-urlencoded", hdr, "id=42&" + hookSecret + "3"},
		{"secret in a value", "/zoho/crm/workflow/deal-stage", "application/json", hdr, `{"id":"42","note":"key ` + hookSecret + `"}`},
		{"secret escaped", "/zoho/crm/workflow/deal-stage", "application/json", hdr, `{"id":"42","note":"` + escaped + `"}`},
		{"secret in a nested key", "/zoho/crm/workflow/deal-stage", "application/json", hdr, `{"id":"42","x":{"` + hookSecret + `":1}}`},
		{"secret in a Books entity", "/zoho/books/invoices", "application/json", hdr, `{"invoice":{"invoice_id":"9","notes":"` + hookSecret + `"}}`},
		{"token elsewhere in a notification", "/zoho/crm/notify", "application/json", nil,
			string(notification(func(m map[string]any) { m["resource_uri"] = "https://x/?t=" + token }))},
		{"token as a key in a notification", "/zoho/crm/notify", "application/json", nil,
			string(notification(func(m map[string]any) { m["query_params"] = map[string]any{token: "1"} }))},
		{"token escaped in a notification", "/zoho/crm/notify", "application/json", nil,
			strings.Replace(string(notification(func(m map[string]any) { m["resource_uri"] = "https://x/?t=ESCAPED" })),
				"ESCAPED", `\u0074`+token[1:], 1)},
		{"hook secret in a notification", "/zoho/crm/notify", "application/json", nil,
			string(notification(func(m map[string]any) {
				m["affected_values"] = []any{map[string]any{"record_id": "1", "values": map[string]any{"Note": hookSecret}}}
			}))},
	}
	for _, tc := range refused {
		code, out := h.do(t, tc.path, tc.ctype, tc.hdr, []byte(tc.body))
		if code != http.StatusBadRequest {
			t.Errorf("%s: %d %v, want 400", tc.name, code, out)
		}
		if s := strings.ToLower(jsonString(out)); strings.Contains(s, strings.ToLower(hookSecret)) || strings.Contains(s, token) {
			t.Errorf("%s: the answer carries the secret: %v", tc.name, out)
		}
	}
	if n := h.env.Messages(t); n != 0 {
		t.Fatalf("refused callbacks stored %d events", n)
	}
	if l := logs.String(); strings.Contains(l, hookSecret) || strings.Contains(l, token) || !strings.Contains(l, "configured secret") {
		t.Fatalf("log must say why without the secret:\n%s", l)
	}

	// The credential's own field goes, in any spelling; the rest is stored.
	form := url.Values{"id": {"5725767000000524157"}, "Secret": {hookSecret}, "stage": {"Won"}}
	if code, out := h.do(t, "/zoho/crm/workflow/deal-stage", "application/x-www-form-urlencoded", hdr, []byte(form.Encode())); code != 200 {
		t.Fatalf("secret field spelled Secret: %d %v", code, out)
	}
	books := `{"SECRET":"` + hookSecret + `","invoice":{"invoice_id":"982000000567114","status":"paid"}}`
	if code, out := h.do(t, "/zoho/books/invoices", "application/json", hdr, []byte(books)); code != 200 {
		t.Fatalf("Books body with the secret field: %d %v", code, out)
	}
	body := bytes.Replace(notification(nil), []byte(`"token"`), []byte(`"\u0074oken"`), 1)
	if code, out := h.do(t, "/zoho/crm/notify", "application/json", nil, body); code != 200 {
		t.Fatalf("escaped token key: %d %v", code, out)
	}
	envs := h.env.Envelopes(t)
	if len(envs) != 4 {
		t.Fatalf("%d events stored, want 4", len(envs))
	}
	for _, e := range envs {
		b, _ := json.Marshal(e)
		if bytes.Contains(b, []byte(hookSecret)) || bytes.Contains(b, []byte(token)) {
			t.Fatalf("stored event carries a secret: %s", b)
		}
	}
	if envs[0].Values["stage"] != "Won" {
		t.Fatalf("hook values lost: %v", envs[0].Values)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
