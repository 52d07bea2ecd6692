package zohotest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenGrants(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now))
	cr := c.s.Credentials()
	code := c.s.IssueGrantCode()
	expired := c.s.IssueGrantCode()
	clk.Advance(2 * time.Minute)
	codeOK := c.s.IssueGrantCode()
	clk.Advance(90 * time.Second) // "expired" is now 3.5 min old, codeOK 1.5 min
	base := func(kv ...string) url.Values {
		v := url.Values{"client_id": {cr.ClientID}, "client_secret": {cr.ClientSecret}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name      string
		params    url.Values
		wantErr   string
		wantToken bool
		wantRT    bool
	}{
		{"code grant", base("grant_type", "authorization_code", "code", codeOK), "", true, true},
		{"code reused", base("grant_type", "authorization_code", "code", codeOK), "invalid_code", false, false},
		{"code expired", base("grant_type", "authorization_code", "code", expired), "invalid_code", false, false},
		{"unused early code also expired", base("grant_type", "authorization_code", "code", code), "invalid_code", false, false},
		{"refresh", base("grant_type", "refresh_token", "refresh_token", cr.RefreshToken), "", true, false},
		{"wrong client", url.Values{"grant_type": {"refresh_token"}, "client_id": {"1000.NOPE"}, "client_secret": {cr.ClientSecret}, "refresh_token": {cr.RefreshToken}}, "invalid_client", false, false},
		{"wrong secret", base("grant_type", "refresh_token", "refresh_token", cr.RefreshToken, "client_secret", "nope"), "invalid_client_secret", false, false},
		{"unknown refresh token", base("grant_type", "refresh_token", "refresh_token", "1000.x.y"), "invalid_code", false, false},
		{"bad grant type", base("grant_type", "password"), "unsupported_grant_type", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := c.form("/oauth/v2/token", tt.params)
			if st != http.StatusOK {
				t.Fatalf("status %d", st)
			}
			if got, _ := body["error"].(string); got != tt.wantErr {
				t.Fatalf("error = %q, want %q (%v)", got, tt.wantErr, body)
			}
			_, hasTok := body["access_token"]
			_, hasRT := body["refresh_token"]
			if hasTok != tt.wantToken || hasRT != tt.wantRT {
				t.Fatalf("access_token %v refresh_token %v: %v", hasTok, hasRT, body)
			}
			if tt.wantToken {
				if body["api_domain"] != c.s.URL() || body["token_type"] != "Bearer" || body["expires_in"] != 3600.0 {
					t.Fatalf("token response %v", body)
				}
			}
		})
	}
}

func TestTokenParamsInQueryString(t *testing.T) {
	c := newClient(t, WithTokenTTL(10*time.Minute))
	cr := c.s.Credentials()
	q := url.Values{"grant_type": {"refresh_token"}, "client_id": {cr.ClientID}, "client_secret": {cr.ClientSecret}, "refresh_token": {cr.RefreshToken}}
	resp, err := http.Post(c.s.URL()+"/oauth/v2/token?"+q.Encode(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	calls := c.s.CallsTo("POST", "/oauth/v2/token")
	if resp.StatusCode != 200 || c.s.TokenRefreshes() != 2 || len(calls) != 2 || calls[1].Status != 200 {
		t.Fatalf("status %d refreshes %d calls %d", resp.StatusCode, c.s.TokenRefreshes(), len(calls))
	}
}

func TestRefreshThrottleAndStatus(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now), WithRefreshLimit(3, 10*time.Minute), WithTokenErrorStatus(http.StatusBadRequest))
	c.refresh()
	c.refresh() // three mints in the window now
	cr := c.s.Credentials()
	v := url.Values{"grant_type": {"refresh_token"}, "client_id": {cr.ClientID}, "client_secret": {cr.ClientSecret}, "refresh_token": {cr.RefreshToken}}
	st, body := c.form("/oauth/v2/token", v)
	if st != http.StatusBadRequest || body["error"] != "Access Denied" || body["status"] != "failure" {
		t.Fatalf("throttle: %d %v", st, body)
	}
	if c.s.TokenRefreshes() != 3 {
		t.Fatalf("refreshes = %d", c.s.TokenRefreshes())
	}
	clk.Advance(10 * time.Minute)
	if st, body := c.form("/oauth/v2/token", v); st != 200 || body["access_token"] == nil {
		t.Fatalf("after window: %d %v", st, body)
	}
}

func TestActiveTokenCapAndExpiry(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now), WithMaxActiveTokens(2), WithRefreshLimit(100, time.Minute))
	first := c.tok
	second := c.refresh()
	third := c.refresh() // evicts first
	for _, tc := range []struct {
		tok  string
		want int
	}{{first, 401}, {second, 204}, {third, 204}} {
		c.tok = tc.tok
		if st, _ := c.do("GET", "/crm/v8/Leads/5725767000000000001", nil); st != tc.want {
			t.Errorf("token %s…: status %d want %d", tc.tok[:10], st, tc.want)
		}
	}
	clk.Advance(time.Hour)
	st, body := c.do("GET", "/crm/v8/Leads/5725767000000000001", nil)
	if st != 401 || body["code"] != "INVALID_TOKEN" || body["message"] != "invalid oauth token" {
		t.Fatalf("expired: %d %v", st, body)
	}
}

func TestRevoke(t *testing.T) {
	c := newClient(t)
	cr := c.s.Credentials()
	st, body := c.form("/oauth/v2/token/revoke", url.Values{"token": {cr.RefreshToken}})
	if st != 200 || body["status"] != "success" {
		t.Fatalf("revoke: %d %v", st, body)
	}
	if st, body := c.do("GET", "/crm/v8/Leads/1", nil); st != 401 || body["code"] != "INVALID_TOKEN" {
		t.Fatalf("derived access token still valid: %d %v", st, body)
	}
	_, body = c.form("/oauth/v2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {cr.ClientID},
		"client_secret": {cr.ClientSecret}, "refresh_token": {cr.RefreshToken}})
	if body["error"] != "invalid_code" {
		t.Fatalf("refresh after revoke: %v", body)
	}
	if st, _ := c.form("/oauth/v2/token/revoke", url.Values{"token": {"nope"}}); st != 400 {
		t.Fatalf("revoke unknown: %d", st)
	}
}

func TestAuthCodeFlow(t *testing.T) {
	c := newClient(t)
	cr := c.s.Credentials()
	redirect := "http://127.0.0.1:9/callback"
	q := url.Values{"client_id": {cr.ClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {"ZohoCRM.modules.ALL,ZohoBooks.fullaccess.all"}, "access_type": {"offline"}, "state": {"xyz"}}
	resp, _ := c.raw("GET", "/oauth/v2/auth?"+q.Encode(), nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("auth: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("location %v", loc)
	}
	lq := loc.Query()
	if lq.Get("location") != "us" || lq.Get("accounts-server") != c.s.URL() || lq.Get("state") != "xyz" || lq.Get("code") == "" {
		t.Fatalf("redirect query %v", lq)
	}
	exchange := func(redirectURI string) map[string]any {
		_, body := c.form("/oauth/v2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {cr.ClientID},
			"client_secret": {cr.ClientSecret}, "redirect_uri": {redirectURI}, "code": {lq.Get("code")}})
		return body
	}
	if body := exchange("http://127.0.0.1:9/other"); body["error"] != "invalid_redirect_uri" {
		t.Fatalf("redirect mismatch: %v", body)
	}
	body := exchange(redirect)
	if body["refresh_token"] == nil || body["scope"] != "ZohoCRM.modules.ALL ZohoBooks.fullaccess.all" {
		t.Fatalf("exchange: %v", body)
	}
	c.tok = body["access_token"].(string)
	if st, _ := c.do("GET", "/crm/v8/Leads/1", nil, "Authorization", "Bearer "+c.tok); st != 204 {
		t.Fatalf("Bearer scheme: %d", st)
	}
}

func TestAuthHeader(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		name, header, path string
		want               int
		wantCode           any
	}{
		{"crm missing", "", "/crm/v8/Leads/1", 401, "INVALID_TOKEN"},
		{"crm wrong case prefix", "zoho-oauthtoken " + c.tok, "/crm/v8/Leads/1", 401, "INVALID_TOKEN"},
		{"crm garbage", "Zoho-oauthtoken 1000.x.y", "/crm/v8/Leads/1", 401, "INVALID_TOKEN"},
		{"crm ok", "Zoho-oauthtoken " + c.tok, "/crm/v8/Leads/1", 204, nil},
		{"crm bearer ok", "Bearer " + c.tok, "/crm/v8/Leads/1", 204, nil},
		{"books missing", "", "/books/v3/contacts?organization_id=10234695", 401, 57.0},
		{"books ok", "Zoho-oauthtoken " + c.tok, "/books/v3/contacts?organization_id=10234695", 200, 0.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", c.s.URL()+tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = jsonDecode(resp, &m)
			if resp.StatusCode != tt.want || (tt.wantCode != nil && m["code"] != tt.wantCode) {
				t.Fatalf("%d %v", resp.StatusCode, m)
			}
		})
	}
}
