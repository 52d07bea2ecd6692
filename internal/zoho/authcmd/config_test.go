package authcmd_test

import (
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// TestTokenRefusesAPIURLWithPath: `worker auth token` used to mint a token
// and print "Configuration OK" with ZOHOOK_ZOHO_API_URL=…/crm/v8, although
// every CRM call would then go to /crm/v8/crm/v8/…. It now fails before
// asking Zoho for anything, saying what to set.
func TestTokenRefusesAPIURLWithPath(t *testing.T) {
	s := zohotest.NewServer()
	defer s.Close()
	base := envFor(s, true)
	env := func(k string) string {
		if k == zoho.EnvAPIURL {
			return s.URL() + "/crm/v8"
		}
		return base(k)
	}
	rc, out, errs := run(t, env, "token")
	if rc == 0 || strings.Contains(out, "Configuration OK") {
		t.Fatalf("rc %d, stdout %q", rc, out)
	}
	if !strings.Contains(errs, zoho.EnvAPIURL) || !strings.Contains(errs, "refused") || !strings.Contains(errs, "set it to "+s.URL()) {
		t.Errorf("stderr %q", errs)
	}
	if n := len(s.CallsTo("", "/oauth")); n != 0 {
		t.Errorf("%d calls to Zoho Accounts before refusing", n)
	}
	// The host alone is fine, and the bases printed are the ones calls use.
	fixed := func(k string) string {
		if k == zoho.EnvAPIURL {
			return s.URL()
		}
		return base(k)
	}
	rc, out, errs = run(t, fixed, "token")
	if rc != 0 || !strings.Contains(out, "Configuration OK") || !strings.Contains(out, "CRM base:   "+s.URL()+"/crm/v8\n") {
		t.Fatalf("rc %d: %s %s", rc, out, errs)
	}
}
