package zoho_test

import (
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho"
)

// TestConfigRefusesURLsCarryingTheAPIPath: ZOHOOK_ZOHO_API_URL is a host
// (zohook adds /crm/v8), ZOHOOK_ZOHO_BOOKS_URL the whole Books base
// (…/books/v3); a value that would double or lose the API path is refused
// at start, and the message says it is refused and what to set instead.
func TestConfigRefusesURLsCarryingTheAPIPath(t *testing.T) {
	tests := []struct {
		env, value string
		ok         bool
		want       []string // in the message
	}{
		{zoho.EnvAPIURL, "https://www.zohoapis.com/crm/v8", false, []string{"refused", "/crm/v8/crm/v8/", "set it to https://www.zohoapis.com"}},
		{zoho.EnvAPIURL, "https://www.zohoapis.eu/crm/v8/", false, []string{"refused", "set it to https://www.zohoapis.eu"}},
		{zoho.EnvAPIURL, "https://www.zohoapis.com/crm/v2", false, []string{"/crm/v2/crm/v8/", "set it to https://www.zohoapis.com"}},
		{zoho.EnvAPIURL, "https://proxy.example/zoho/crm", false, []string{"set it to https://proxy.example/zoho"}},
		{zoho.EnvAPIURL, "https://proxy.example/zoho/CRM/v8/Leads", false, []string{"set it to https://proxy.example/zoho"}},
		{zoho.EnvAPIURL, "https://www.zohoapis.com", true, nil},
		{zoho.EnvAPIURL, "https://www.zohoapis.com/", true, nil},
		{zoho.EnvAPIURL, "https://proxy.example/crm-zoho", true, nil},
		{zoho.EnvBooksURL, "https://www.zohoapis.com/books/v3", true, nil},
		{zoho.EnvBooksURL, "https://www.zohoapis.com/books/v3/", true, nil},
		{zoho.EnvBooksURL, "https://books.zoho.com/api/v3", true, nil},
		{zoho.EnvBooksURL, "http://127.0.0.1:9000", true, nil}, // a fake or proxy lays out its own paths
		{zoho.EnvBooksURL, "https://www.zohoapis.eu", false, []string{"refused", "set it to https://www.zohoapis.eu/books/v3"}},
		{zoho.EnvBooksURL, "https://www.zohoapis.com/books/v3/books/v3", false, []string{"refused", "set it to https://www.zohoapis.com/books/v3"}},
		{zoho.EnvBooksURL, "https://www.zohoapis.com/books/v3/invoices", false, []string{"set it to https://www.zohoapis.com/books/v3"}},
		{zoho.EnvBooksURL, "https://www.zohoapis.com/crm/v8", false, []string{"CRM API path", "set it to https://www.zohoapis.com/books/v3"}},
	}
	for _, tt := range tests {
		env := map[string]string{zoho.EnvClientID: "id", zoho.EnvClientSecret: "secret", zoho.EnvRefreshToken: "r", tt.env: tt.value}
		cfg, err := zoho.ConfigFromEnv(func(k string) string { return env[k] })
		if tt.ok {
			if err != nil {
				t.Errorf("%s=%s: %v", tt.env, tt.value, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s=%s accepted (CRM base %s, Books base %s)", tt.env, tt.value, cfg.CRMBase(""), cfg.BooksBase(""))
			continue
		}
		for _, w := range append(tt.want, tt.env) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s=%s: message %q lacks %q", tt.env, tt.value, err, w)
			}
		}
		// The same check guards a config built from the -config file.
		c := zoho.Config{ClientID: "id", ClientSecret: "s", RefreshToken: "r"}
		if tt.env == zoho.EnvAPIURL {
			c.APIURL = tt.value
		} else {
			c.BooksURL = tt.value
		}
		if _, err := zoho.NewClient(c); err == nil {
			t.Errorf("NewClient accepted %s", tt.value)
		}
	}
}

func TestTokenRetryWarnings(t *testing.T) {
	w := zoho.TokenRetryWarnings(3 * time.Second)
	if len(w) != 1 || !strings.Contains(w[0], "-token-retry 3s is under 1m0s") || !strings.Contains(w[0], "200 attempts") {
		t.Errorf("3s: %q", w)
	}
	for _, d := range []time.Duration{0, time.Minute, 5 * time.Minute} {
		if w := zoho.TokenRetryWarnings(d); w != nil {
			t.Errorf("%s: unexpected warning %q", d, w)
		}
	}
}
