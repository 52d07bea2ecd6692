package zoho

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDCTable(t *testing.T) {
	cases := []struct{ dc, accounts, crm, books string }{
		{"us", "https://accounts.zoho.com", "https://www.zohoapis.com/crm/v8", "https://www.zohoapis.com/books/v3"},
		{"eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu/crm/v8", "https://www.zohoapis.eu/books/v3"},
		{"in", "https://accounts.zoho.in", "https://www.zohoapis.in/crm/v8", "https://www.zohoapis.in/books/v3"},
		{"au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au/crm/v8", "https://www.zohoapis.com.au/books/v3"},
		{"jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp/crm/v8", "https://www.zohoapis.jp/books/v3"},
		{"ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca/crm/v8", "https://www.zohoapis.ca/books/v3"},
		{"cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn/crm/v8", "https://www.zohoapis.com.cn/books/v3"},
		{"sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa/crm/v8", "https://www.zohoapis.sa/books/v3"},
	}
	if got := strings.Join(DCNames(), ","); got != "au,ca,cn,eu,in,jp,sa,us" {
		t.Fatalf("DCNames = %s", got)
	}
	for _, c := range cases {
		cfg := Config{DC: c.dc}
		if cfg.Accounts() != c.accounts || cfg.TokenURL() != c.accounts+"/oauth/v2/token" || cfg.RevokeURL() != c.accounts+"/oauth/v2/token/revoke" {
			t.Errorf("%s: accounts %s token %s revoke %s", c.dc, cfg.Accounts(), cfg.TokenURL(), cfg.RevokeURL())
		}
		if cfg.CRMBase("") != c.crm || cfg.BooksBase("") != c.books {
			t.Errorf("%s: crm %s books %s", c.dc, cfg.CRMBase(""), cfg.BooksBase(""))
		}
		if dc, ok := DCForAccountsURL(c.accounts + "/"); !ok || dc.Name != c.dc {
			t.Errorf("DCForAccountsURL(%s) = %v %v", c.accounts, dc, ok)
		}
	}
	// api_domain from the token wins over the DC; explicit overrides win over api_domain.
	cfg := Config{DC: "us"}
	if got := cfg.CRMBase("https://www.zohoapis.eu"); got != "https://www.zohoapis.eu/crm/v8" {
		t.Errorf("CRMBase(api_domain) = %s", got)
	}
	if got := cfg.BooksBase("https://www.zohoapis.eu"); got != "https://www.zohoapis.eu/books/v3" {
		t.Errorf("BooksBase(api_domain) = %s", got)
	}
	cfg = Config{DC: "us", APIURL: "http://127.0.0.1:9/", BooksURL: "https://books.zoho.com/api/v3/", AccountsURL: "http://127.0.0.1:8"}
	if cfg.CRMBase("https://www.zohoapis.eu") != "http://127.0.0.1:9/crm/v8" || cfg.BooksBase("https://x") != "https://books.zoho.com/api/v3" || cfg.TokenURL() != "http://127.0.0.1:8/oauth/v2/token" {
		t.Errorf("overrides ignored: %s %s %s", cfg.CRMBase("x"), cfg.BooksBase("x"), cfg.TokenURL())
	}
}

func TestConfigFromEnvAndValidate(t *testing.T) {
	env := map[string]string{
		EnvClientID: "cid", EnvClientSecret: "s3cr3t-value", EnvDC: "EU", EnvScopes: "ZohoCRM.modules.ALL, ZohoBooks.fullaccess.all",
		EnvBooksOrgID: "42",
	}
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DC != "eu" || cfg.BooksOrgID != "42" || len(cfg.Scopes) != 2 || cfg.Scopes[1] != "ZohoBooks.fullaccess.all" {
		t.Fatalf("cfg = %s", cfg)
	}
	if cfg.HasCredentials() {
		t.Fatal("HasCredentials without refresh token")
	}
	err = cfg.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), EnvRefreshToken) || strings.Contains(err.Error(), EnvClientID) {
		t.Fatalf("Validate = %v", err)
	}
	if err := cfg.ValidateClient(); err != nil {
		t.Fatalf("ValidateClient = %v", err)
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), EnvClientID+", "+EnvClientSecret+", "+EnvRefreshToken) {
		t.Fatalf("empty Validate = %v", err)
	}
	env[EnvDC] = "mars"
	if _, err := ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), EnvDC) {
		t.Fatalf("bad DC accepted: %v", err)
	}
	env[EnvDC] = ""
	env[EnvAPIURL] = "ftp://x"
	if _, err := ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), EnvAPIURL) {
		t.Fatalf("bad URL accepted: %v", err)
	}
	// Secrets never print.
	cfg.RefreshToken = "1000.refresh-secret"
	for _, s := range []string{cfg.String(), cfg.GoString(), cfg.LogValue().String()} {
		if strings.Contains(s, "s3cr3t-value") || strings.Contains(s, "refresh-secret") || !strings.Contains(s, "cid") {
			t.Errorf("leak or missing id: %s", s)
		}
	}
}

func TestSafeRelPath(t *testing.T) {
	good := map[string]string{
		"Leads":                  "Leads",
		"/Leads/123/Attachments": "Leads/123/Attachments",
		"settings/modules":       "settings/modules",
		"Leads/a%20b":            "Leads/a%20b",
	}
	for in, want := range good {
		got, err := safeRelPath(in)
		if err != nil || got != want {
			t.Errorf("safeRelPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "https://evil.example/x", "//evil.example/x", "http:/x", "../secret", "Leads/../../x", "Leads/%2e%2e/x",
		"a/./b", `a\b`, "Leads?x=1", "Leads#f", "a//b", "Leads\n", "mailto:x", "%zz", "Leads/%2F%2Fevil", "javascript:alert(1)"}
	for _, in := range bad {
		if got, err := safeRelPath(in); err == nil {
			t.Errorf("safeRelPath(%q) accepted: %q", in, got)
		} else {
			var pe *PathError
			if !errors.As(err, &pe) {
				t.Errorf("safeRelPath(%q): %T is not *PathError", in, err)
			}
		}
	}
	u, err := buildURL("http://127.0.0.1:1/crm/v8", "crm/v8/Leads", nil)
	if err != nil || u.String() != "http://127.0.0.1:1/crm/v8/Leads" {
		t.Errorf("buildURL with base prefix = %v, %v", u, err)
	}
	if _, err := buildURL("http://127.0.0.1:1/crm/v8", "..", nil); err == nil {
		t.Error("buildURL accepted ..")
	}
}

func TestChunks(t *testing.T) {
	got := chunks(250, 100)
	if len(got) != 3 || got[0] != [2]int{0, 100} || got[2] != [2]int{200, 250} {
		t.Fatalf("chunks = %v", got)
	}
	if len(chunks(0, 100)) != 0 || len(chunks(100, 100)) != 1 {
		t.Fatal("edge chunks")
	}
}

func TestDecodeError(t *testing.T) {
	h := http.Header{"Retry-After": {"7"}}
	e := decodeError(APICRM, "GET", "/crm/v8/Leads", 429, h, []byte(`{"code":429,"error":"TOO_MANY_REQUESTS","error_info":"Many requests","details":[]}`))
	if e.Code != "TOO_MANY_REQUESTS" || e.Message != "Many requests" || e.RetryAfter != 7*time.Second || !e.Retryable() {
		t.Fatalf("legacy 429 = %+v", e)
	}
	if w, ok := IsRateLimited(e); !ok || w != 7*time.Second {
		t.Fatalf("IsRateLimited = %v %v", w, ok)
	}
	e = decodeError(APICRM, "POST", "/crm/v8/Leads", 400, nil, []byte(`{"data":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"Last_Name"},"message":"required field not found","status":"error"}]}`))
	if e.Code != "MANDATORY_NOT_FOUND" || len(e.RecordErrors) != 1 || e.RecordErrors[0].Details["api_name"] != "Last_Name" || e.Retryable() {
		t.Fatalf("data[] error = %+v", e)
	}
	e = decodeError(APIBooks, "GET", "/books/v3/invoices/1", 404, nil, []byte(`{"code":1002,"message":"Invoice does not exist."}`))
	if e.Code != "1002" || !IsNotFound(e) || IsRetryable(e) {
		t.Fatalf("books 1002 = %+v", e)
	}
	e = decodeError(APIBooks, "GET", "/books/v3/invoices", 429, http.Header{"X-Rate-Limit-Reset": {"30"}}, []byte(`{"code":44,"message":"blocked"}`))
	if e.RetryAfter != 30*time.Second || !IsRetryable(e) {
		t.Fatalf("books 44 = %+v", e)
	}
	e = decodeError(APICRM, "GET", "/crm/v8/Leads", 502, nil, []byte(`<html>bad gateway</html>`))
	if e.Message != "Bad Gateway" || !IsRetryable(e) {
		t.Fatalf("html 502 = %+v", e)
	}
	if !IsAuth(&Error{HTTPStatus: 401, Code: "INVALID_TOKEN"}) || !IsAuth(&TokenError{Code: "invalid_code"}) || IsAuth(&TokenError{Code: "Access Denied"}) {
		t.Fatal("IsAuth")
	}
	if !IsRetryable(&TokenError{Code: "Access Denied"}) || IsRetryable(&TokenError{Code: "invalid_client"}) {
		t.Fatal("token retryable")
	}
}

func TestTokenLifetime(t *testing.T) {
	tj := tokenJSON{ExpiresIn: json.Number("3600000"), ExpiresInSec: json.Number("3600")}
	if d := tokenLifetime(tj); d != time.Hour {
		t.Fatalf("legacy = %s", d)
	}
	if d := tokenLifetime(tokenJSON{ExpiresIn: json.Number("3600")}); d != time.Hour {
		t.Fatalf("seconds = %s", d)
	}
	if d := tokenLifetime(tokenJSON{}); d != time.Hour {
		t.Fatalf("missing = %s", d)
	}
}

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{MaxRetries: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for attempt := range 10 {
		d := p.delay(attempt, 0)
		ceil := min(time.Second, 100*time.Millisecond<<attempt)
		if d < 0 || d > ceil {
			t.Fatalf("attempt %d: delay %s outside [0,%s]", attempt, d, ceil)
		}
	}
	if d := p.delay(0, 3*time.Second); d != 3*time.Second {
		t.Fatalf("hint ignored: %s", d)
	}
	if d := (RetryPolicy{BaseDelay: time.Millisecond, Constant: true}).delay(5, 0); d != time.Millisecond {
		t.Fatalf("constant = %s", d)
	}
	if d := retryAfter(http.Header{"Retry-After": {time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)}}, time.Now()); d < 8*time.Second || d > 11*time.Second {
		t.Fatalf("http-date retry-after = %s", d)
	}
}

func TestRedaction(t *testing.T) {
	body := redactJSON([]byte(`{"watch":[{"channel_id":"1","token":"verysecret","notify_url":"https://x"}],"refresh_token":"r","code":"SUCCESS"}`), "application/json")
	if strings.Contains(body, "verysecret") || !strings.Contains(body, "SUCCESS") || !strings.Contains(body, "notify_url") {
		t.Fatalf("redactJSON = %s", body)
	}
	h := redactHeader(http.Header{"Authorization": {"Zoho-oauthtoken abc"}, "X-Zohook-Secret": {"s"}, "Accept": {"a"}})
	if h["Authorization"] != redacted || h["X-Zohook-Secret"] != redacted || h["Accept"] != "a" {
		t.Fatalf("redactHeader = %v", h)
	}
}
