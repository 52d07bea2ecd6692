package authcmd_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/authcmd"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func envFor(s *zohotest.Server, withRefresh bool) func(string) string {
	cr := s.Credentials()
	m := map[string]string{zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret, zoho.EnvAccountsURL: s.URL()}
	if withRefresh {
		m[zoho.EnvRefreshToken] = cr.RefreshToken
	}
	return func(k string) string { return m[k] }
}

func run(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errw syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := authcmd.Run(ctx, args, &out, &errw, getenv)
	return rc, out.String(), errw.String()
}

var refreshLine = regexp.MustCompile(`(?m)^ZOHOOK_ZOHO_REFRESH_TOKEN=(\S+)$`)

func TestExchangeTokenRevoke(t *testing.T) {
	s := zohotest.NewServer()
	defer s.Close()
	rc, out, errs := run(t, envFor(s, false), "exchange", "-code", s.IssueGrantCode())
	if rc != 0 {
		t.Fatalf("exchange rc %d: %s", rc, errs)
	}
	m := refreshLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "ZOHOOK_ZOHO_ACCOUNTS_URL="+s.URL()) || !strings.Contains(out, s.URL()) {
		t.Fatalf("exchange output:\n%s", out)
	}
	refresh := m[1]
	// The code is one-time.
	if rc, _, errs := run(t, envFor(s, false), "exchange", "-code", "1000.bogus"); rc != 1 || !strings.Contains(errs, "invalid_code") {
		t.Fatalf("bogus code: rc %d %s", rc, errs)
	}
	getenv := func(k string) string {
		if k == zoho.EnvRefreshToken {
			return refresh
		}
		return envFor(s, false)(k)
	}
	rc, out, errs = run(t, getenv, "token")
	if rc != 0 || !strings.Contains(out, "api_domain: "+s.URL()) || strings.Contains(out, "1000.") {
		t.Fatalf("token rc %d out %s err %s", rc, out, errs)
	}
	if rc, out, errs := run(t, getenv, "revoke"); rc != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke rc %d %s %s", rc, out, errs)
	}
	if rc, _, errs := run(t, getenv, "token"); rc != 1 || !strings.Contains(errs, "invalid_code") || strings.Contains(errs, refresh) {
		t.Fatalf("token after revoke: rc %d %s", rc, errs)
	}
}

func TestUsageAndConfigErrors(t *testing.T) {
	s := zohotest.NewServer()
	defer s.Close()
	for _, c := range []struct {
		args []string
		rc   int
		want string
	}{
		{nil, 2, "usage: worker auth"},
		{[]string{"-h"}, 0, "commands:"},
		{[]string{"exchange", "-h"}, 0, "-code"},
		{[]string{"login", "-h"}, 0, "-listen"},
		{[]string{"revoke", "-h"}, 0, "usage: worker auth revoke"},
		{[]string{"token", "-h"}, 0, "usage: worker auth token"},
		{[]string{"exchange"}, 2, "-code is required"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"token", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"login", "-nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"token"}, 1, zoho.EnvRefreshToken},
	} {
		rc, out, errs := run(t, envFor(s, false), c.args...)
		// -h prints to stdout (exit 0); mistakes go to stderr (exit 2).
		got := errs
		if c.rc == 0 {
			got = out
			if errs != "" {
				t.Errorf("%v: -h wrote to stderr: %q", c.args, errs)
			}
		}
		if rc != c.rc || !strings.Contains(got, c.want) {
			t.Errorf("%v: rc %d (want %d), stdout %q, stderr %q", c.args, rc, c.rc, out, errs)
		}
	}
	rc, _, errs := run(t, func(string) string { return "" }, "exchange", "-code", "x")
	if rc != 1 || !strings.Contains(errs, zoho.EnvClientID) || !strings.Contains(errs, zoho.EnvClientSecret) {
		t.Fatalf("no config: rc %d %s", rc, errs)
	}
}

func TestLoginFlow(t *testing.T) {
	s := zohotest.NewServer()
	defer s.Close()
	var out, errw syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- authcmd.Run(ctx, []string{"login", "-listen", "127.0.0.1:0", "-timeout", "5s"}, &out, &errw, envFor(s, false))
	}()
	var consent string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, s.URL()+"/oauth/v2/auth?") {
				consent = line
			}
		}
		if consent != "" {
			break
		}
	}
	if consent == "" {
		t.Fatalf("no consent URL printed: %s %s", out.String(), errw.String())
	}
	u, _ := url.Parse(consent)
	q := u.Query()
	if q.Get("access_type") != "offline" || q.Get("prompt") != "consent" || q.Get("response_type") != "code" || q.Get("state") == "" ||
		!strings.Contains(q.Get("scope"), "ZohoCRM.modules.ALL,") {
		t.Fatalf("consent URL = %s", consent)
	}
	// A forged callback (wrong state) is refused and does not end the flow.
	cb, _ := url.Parse(q.Get("redirect_uri"))
	forged := cb.String() + "?code=x&state=wrong"
	if resp, err := http.Get(forged); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged callback: %v %v", resp, err)
	}
	// The "browser": follow the fake's consent redirect to the local callback.
	resp, err := http.Get(consent)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "authorization received") {
		t.Fatalf("callback answer %d %s", resp.StatusCode, body)
	}
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("login rc %d: %s", rc, errw.String())
		}
	case <-ctx.Done():
		t.Fatal("login did not finish")
	}
	m := refreshLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no refresh token line:\n%s", out.String())
	}
	// The new refresh token works.
	cfg := zoho.Config{ClientID: s.Credentials().ClientID, ClientSecret: s.Credentials().ClientSecret, RefreshToken: m[1], AccountsURL: s.URL()}
	if _, err := zoho.NewRefresher(cfg, nil, nil).Token(ctx); err != nil {
		t.Fatal(err)
	}
}

// Action flags never read ZOHOOK_*: a ZOHOOK_CODE or ZOHOOK_LISTEN left in
// a shell changes nothing; -h says so and prints durations as people type
// them.
func TestActionFlagsIgnoreEnvironment(t *testing.T) {
	s := zohotest.NewServer()
	defer s.Close()
	base := envFor(s, false)
	env := func(k string) string {
		switch k {
		case "ZOHOOK_CODE":
			return s.IssueGrantCode()
		case "ZOHOOK_TIMEOUT":
			return "1s"
		}
		return base(k)
	}
	if rc, _, errs := run(t, env, "exchange"); rc != 2 || !strings.Contains(errs, "-code is required") {
		t.Fatalf("ZOHOOK_CODE was read: rc %d %s", rc, errs)
	}
	rc, out, _ := run(t, env, "login", "-h")
	if rc != 0 || !strings.Contains(out, "(default 5m)") || strings.Contains(out, "5m0s") || !strings.Contains(out, "(not read from the environment)") ||
		!strings.Contains(out, "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found.") {
		t.Fatalf("login -h: %d\n%s", rc, out)
	}
}

func TestScopeNeeds(t *testing.T) {
	granted := authcmd.ParseScopes("ZohoCRM.modules.deals.ALL,ZohoCRM.coql.READ ZohoBooks.invoices.CREATE")
	for _, c := range []struct {
		need authcmd.ScopeNeed
		ok   bool
	}{
		{authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "modules", Sub: "Deals", Op: "UPDATE"}, true},
		{authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "modules", Sub: "Contacts", Op: "READ"}, false},
		{authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "modules", Op: "CREATE"}, true}, // module unknown: any module's grant
		{authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "coql", Op: "READ"}, true},
		{authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "notifications", Op: "CREATE"}, false},
		{authcmd.ScopeNeed{Service: "ZohoBooks", Op: "CREATE"}, true},
		{authcmd.ScopeNeed{Service: "ZohoBooks", Op: "DELETE"}, false},
	} {
		if got := c.need.GrantedBy(granted); got != c.ok {
			t.Errorf("%s granted by %v: %v, want %v", c.need, granted, got, c.ok)
		}
	}
	all := authcmd.ParseScopes("ZohoCRM.modules.ALL ZohoCRM.notifications.ALL ZohoBooks.fullaccess.all")
	if m := authcmd.MissingScopes(all, []authcmd.ScopeNeed{{Service: "ZohoCRM", Resource: "notifications", Op: "DELETE"},
		{Service: "ZohoBooks", Resource: "invoices", Op: "DELETE"}, {Service: "ZohoCRM", Resource: "coql", Op: "READ"}}); len(m) != 1 || m[0].String() != "ZohoCRM.coql.READ" {
		t.Fatalf("missing %v", m)
	}
}
