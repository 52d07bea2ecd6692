package zoho_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// TestExchangesRecordEveryAttempt: a recorder attached to the context
// sees each HTTP attempt of the calls made with it: the Accounts token
// request, the real status (201 stays 201), Zoho's code and message,
// retries numbered, secrets nowhere.
func TestExchangesRecordEveryAttempt(t *testing.T) {
	e := newEnv(t, nil)
	var rec zoho.Exchanges
	ctx := zoho.WithExchanges(ctxT(t), &rec)

	// First call: the client mints a token (Accounts), then creates.
	if _, _, err := e.c.CRM.CreateRecords(ctx, "Leads", []zoho.Record{{"Last_Name": "X", "Company": "Z"}}, nil); err != nil {
		t.Fatal(err)
	}
	// Books create: 201, code 0.
	if _, _, err := e.c.Books.CreateRecord(ctx, "contacts", map[string]any{"contact_name": "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	// A refusal: Zoho's code and message.
	_, _, _ = e.c.CRM.UpdateRecord(ctx, "Leads", "5725767000000000001", zoho.Record{"Last_Name": "Y"}, nil)
	// A 429 then a success: two attempts.
	id := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "d", "Stage": "s"})
	e.s.Inject(zohotest.Fault{Method: http.MethodGet, PathPrefix: "/crm/v8/Deals", Status: http.StatusTooManyRequests, Times: 1})
	if _, _, err := e.c.CRM.GetRecord(ctx, "Deals", id, nil); err != nil {
		t.Fatal(err)
	}

	xs := rec.List()
	if len(xs) != 6 {
		t.Fatalf("%d exchanges, want 6:\n%+v", len(xs), xs)
	}
	check := func(i int, api, method, path string, status int, code string) zoho.Exchange {
		t.Helper()
		x := xs[i]
		if x.API != api || x.Method != method || x.Path != path || x.Status != status || x.Code != code {
			t.Errorf("exchange %d = %s %s %s %d %q, want %s %s %s %d %q", i, x.API, x.Method, x.Path, x.Status, x.Code, api, method, path, status, code)
		}
		return x
	}
	acc := check(0, zoho.APIAccounts, "POST", "/oauth/v2/token", 200, "")
	if !strings.Contains(string(acc.RequestBody), "grant_type=refresh_token") || !strings.Contains(string(acc.RequestBody), "client_secret=%5BREDACTED%5D") {
		t.Errorf("token request body %q", acc.RequestBody)
	}
	create := check(1, zoho.APICRM, "POST", "/crm/v8/Leads", 201, "SUCCESS")
	if !json.Valid(create.RequestBody) || !bytes.Contains(create.RequestBody, []byte(`"Last_Name":"X"`)) || create.Attempt != 1 || create.Duration <= 0 {
		t.Errorf("create %+v", create)
	}
	books := check(2, zoho.APIBooks, "POST", "/books/v3/contacts", 201, "0")
	if books.Query.Get("organization_id") != e.cfg.BooksOrgID || books.Message == "" {
		t.Errorf("books %+v", books)
	}
	bad := check(3, zoho.APICRM, "PUT", "/crm/v8/Leads/5725767000000000001", 400, "INVALID_DATA")
	if bad.Message == "" {
		t.Errorf("refusal without Zoho's message: %+v", bad)
	}
	if x := check(4, zoho.APICRM, "GET", "/crm/v8/Deals/"+id, 429, "TOO_MANY_REQUESTS"); x.Attempt != 1 {
		t.Errorf("429 attempt %d", x.Attempt)
	}
	if x := check(5, zoho.APICRM, "GET", "/crm/v8/Deals/"+id, 200, ""); x.Attempt != 2 {
		t.Errorf("retry attempt %d", x.Attempt)
	}
	assertNoSecrets(t, e, xs)
}

// assertNoSecrets: no client secret, refresh token or access token in any
// recorded field.
func assertNoSecrets(t *testing.T, e *env, xs []zoho.Exchange) {
	t.Helper()
	dump := fmt.Sprintf("%+v %s", xs, mustJSON(t, xs))
	tok, err := e.c.TokenSource().Token(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"client secret": e.cfg.ClientSecret, "refresh token": e.cfg.RefreshToken, "access token": tok.AccessToken} {
		if strings.Contains(dump, secret) {
			t.Errorf("the %s is in the recorded exchanges", name)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExchangesBodies: multipart uploads are summarised (part names and
// sizes, never the file), a channel token in a JSON body and a token in a
// query are redacted with the rest of the body kept as sent, and long
// bodies are cut at MaxExchangeBody.
func TestExchangesBodies(t *testing.T) {
	e := newEnv(t, nil)
	var rec zoho.Exchanges
	ctx := zoho.WithExchanges(ctxT(t), &rec)
	id := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "d", "Stage": "s"})
	secretFile := []byte("TOP-SECRET-CONTENT " + strings.Repeat("x", 100))
	if _, _, err := e.c.CRM.AddAttachment(ctx, "Deals", id, "plan.txt", bytes.NewReader(secretFile), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.CRM.EnableChannel(ctx, zoho.Channel{ChannelID: "1000000068001", Events: []string{"Deals.all"},
		NotifyURL: "https://hooks.example/zoho", Token: "channel-secret-42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.RunAction(ctx, "crm.raw_request", map[string]any{"method": "GET", "path": "/Deals/" + id,
		"query": map[string]any{"token": "q-secret-7", "fields": "Deal_Name"}}); err != nil {
		t.Fatal(err)
	}
	big := make([]zoho.Record, 100)
	for i := range big {
		big[i] = zoho.Record{"Last_Name": fmt.Sprintf("L%03d-%s", i, strings.Repeat("y", 200)), "Company": "Z"}
	}
	if _, _, err := e.c.CRM.CreateRecords(ctx, "Leads", big, nil); err != nil {
		t.Fatal(err)
	}
	var upload, watch, raw, create *zoho.Exchange
	xs := rec.List()
	for i := range xs {
		x := &xs[i]
		switch {
		case strings.HasSuffix(x.Path, "/Attachments"):
			upload = x
		case strings.HasSuffix(x.Path, "/actions/watch"):
			watch = x
		case x.Method == "GET" && strings.HasPrefix(x.Path, "/crm/v8/Deals/"):
			raw = x
		case x.Method == "POST" && x.Path == "/crm/v8/Leads":
			create = x
		}
	}
	if upload == nil || watch == nil || raw == nil || create == nil {
		t.Fatalf("missing exchanges: %+v", xs)
	}
	var sum struct {
		Multipart []struct {
			Name     string `json:"name"`
			FileName string `json:"filename"`
			Size     int64  `json:"size"`
		}
	}
	if err := json.Unmarshal(upload.RequestBody, &sum); err != nil || len(sum.Multipart) != 1 || sum.Multipart[0].Size != int64(len(secretFile)) ||
		sum.Multipart[0].FileName != "plan.txt" || sum.Multipart[0].Name != "file" || bytes.Contains(upload.RequestBody, []byte("TOP-SECRET")) {
		t.Errorf("multipart summary %s (%v)", upload.RequestBody, err)
	}
	if bytes.Contains(watch.RequestBody, []byte("channel-secret-42")) || !bytes.Contains(watch.RequestBody, []byte(`"token":"[REDACTED]"`)) ||
		!bytes.Contains(watch.RequestBody, []byte(`"notify_url":"https://hooks.example/zoho"`)) {
		t.Errorf("watch body %s", watch.RequestBody)
	}
	if raw.Query.Get("token") != "[REDACTED]" || raw.Query.Get("fields") != "Deal_Name" {
		t.Errorf("raw query %v", raw.Query)
	}
	if len(create.RequestBody) != zoho.MaxExchangeBody || create.RequestBodySize <= zoho.MaxExchangeBody {
		t.Errorf("big body kept %d of %d bytes", len(create.RequestBody), create.RequestBodySize)
	}
	assertNoSecrets(t, e, xs)
}

// TestExchangesTransportError: an attempt that got no answer is recorded
// with status 0 and the error.
func TestExchangesTransportError(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "d", "Stage": "s"})
	if _, _, err := e.c.CRM.GetRecord(ctx, "Deals", id, nil); err != nil { // mint the token first
		t.Fatal(err)
	}
	var rec zoho.Exchanges
	ctx = zoho.WithExchanges(ctx, &rec)
	e.s.Close()
	_, _, _ = e.c.CRM.GetRecord(ctx, "Deals", id, nil)
	xs := rec.List()
	if len(xs) == 0 || xs[0].Status != 0 || xs[0].Message == "" || xs[0].Attempt != 1 {
		t.Fatalf("%+v", xs)
	}
}
