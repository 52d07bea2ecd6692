package zoho

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"
)

// DataCenter is one row of Zoho's multi-DC table (API.md §1.1).
type DataCenter struct {
	// Name is the short code used in ZOHOOK_ZOHO_DC and in Zoho's "location" redirect parameter.
	Name string
	// AccountsURL is the Zoho Accounts server (OAuth) of the DC.
	AccountsURL string
	// APIDomain is the API host for CRM and Books in the DC (the token response's api_domain).
	APIDomain string
}

// dataCenters is read-only after init; a function keeps it from being mutated by callers.
func dataCenters() map[string]DataCenter {
	return map[string]DataCenter{
		"us": {"us", "https://accounts.zoho.com", "https://www.zohoapis.com"},
		"eu": {"eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"},
		"in": {"in", "https://accounts.zoho.in", "https://www.zohoapis.in"},
		"au": {"au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"},
		"jp": {"jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"},
		// Canada runs its accounts server on zohocloud.ca but its API on zohoapis.ca (API.md §1.1, G3).
		"ca": {"ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"},
		"cn": {"cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"},
		"sa": {"sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"},
	}
}

// LookupDC returns the data center for a code (us, eu, in, au, jp, ca, cn, sa), case-insensitively.
func LookupDC(name string) (DataCenter, bool) {
	dc, ok := dataCenters()[strings.ToLower(strings.TrimSpace(name))]
	return dc, ok
}

// DCNames lists the known data-center codes, sorted.
func DCNames() []string {
	m := dataCenters()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DCForAccountsURL finds the data center whose accounts server is u (the
// "accounts-server" parameter of the OAuth redirect, §1.2).
func DCForAccountsURL(u string) (DataCenter, bool) {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	for _, dc := range dataCenters() {
		if strings.EqualFold(dc.AccountsURL, u) {
			return dc, true
		}
	}
	return DataCenter{}, false
}

// Environment variable names read by ConfigFromEnv.
const (
	EnvClientID     = "ZOHOOK_ZOHO_CLIENT_ID"
	EnvClientSecret = "ZOHOOK_ZOHO_CLIENT_SECRET"
	EnvRefreshToken = "ZOHOOK_ZOHO_REFRESH_TOKEN"
	EnvDC           = "ZOHOOK_ZOHO_DC"
	EnvBooksOrgID   = "ZOHOOK_ZOHO_BOOKS_ORG_ID"
	EnvAccountsURL  = "ZOHOOK_ZOHO_ACCOUNTS_URL"
	EnvAPIURL       = "ZOHOOK_ZOHO_API_URL"
	EnvBooksURL     = "ZOHOOK_ZOHO_BOOKS_URL"
	EnvScopes       = "ZOHOOK_ZOHO_SCOPES"
)

// DefaultScopes are requested by `worker auth login` when Config.Scopes is empty.
func DefaultScopes() []string {
	return []string{
		"ZohoCRM.modules.ALL", "ZohoCRM.coql.READ", "ZohoCRM.settings.fields.READ",
		"ZohoCRM.notifications.ALL", "ZohoBooks.fullaccess.all",
	}
}

// Config is how zohook connects to Zoho. The zero value of every URL field
// means "derive it from DC"; set a URL only to point at a proxy or a fake.
type Config struct {
	// ClientID of the Zoho API console client (self-client or server-based). Required.
	ClientID string
	// ClientSecret of that client. Required. Never logged.
	ClientSecret string
	// RefreshToken obtained with `worker auth exchange` or `worker auth login`.
	// Required for API calls (not for the exchange itself). Never logged.
	RefreshToken string
	// Scopes requested by the authorization-code flow; default DefaultScopes().
	Scopes []string
	// DC is the data center code: us (default), eu, in, au, jp, ca, cn, sa.
	DC string
	// AccountsURL overrides the accounts server (default: the DC's, e.g.
	// https://accounts.zoho.com). Token URL = AccountsURL + /oauth/v2/token,
	// revoke URL = AccountsURL + /oauth/v2/token/revoke, consent URL = AccountsURL + /oauth/v2/auth.
	AccountsURL string
	// APIURL overrides the CRM API host (default: the api_domain returned with
	// the access token, else the DC's https://www.zohoapis.{tld}). CRM base = APIURL + /crm/v8.
	// When set it wins over api_domain.
	APIURL string
	// BooksURL overrides the full Books API base (default: api_domain + /books/v3,
	// else https://www.zohoapis.{tld}/books/v3).
	BooksURL string
	// BooksOrgID is the default organization_id sent with every Books call.
	BooksOrgID string
}

// ConfigFromEnv reads the ZOHOOK_ZOHO_* variables. It fails only on values
// that are malformed (unknown DC, bad URL); missing credentials are reported
// by Validate so that commands like `worker auth exchange` can run without a
// refresh token.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{
		ClientID:     get(EnvClientID),
		ClientSecret: get(EnvClientSecret),
		RefreshToken: get(EnvRefreshToken),
		DC:           strings.ToLower(get(EnvDC)),
		BooksOrgID:   get(EnvBooksOrgID),
		AccountsURL:  get(EnvAccountsURL),
		APIURL:       get(EnvAPIURL),
		BooksURL:     get(EnvBooksURL),
	}
	if s := get(EnvScopes); s != "" {
		c.Scopes = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	}
	if c.DC == "" {
		c.DC = "us"
	}
	if err := c.checkValues(); err != nil {
		return c, err
	}
	return c, nil
}

// ConfigError reports a configuration problem; Missing names the environment
// variables to set.
type ConfigError struct {
	Missing []string
	Problem string
}

func (e *ConfigError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing Zoho configuration: set "+strings.Join(e.Missing, ", "))
	}
	if e.Problem != "" {
		parts = append(parts, e.Problem)
	}
	return "zoho: " + strings.Join(parts, "; ")
}

// ErrNoCredentials is matched (errors.Is) by the *ConfigError returned when
// credentials are missing.
var ErrNoCredentials = errors.New("zoho: no credentials configured")

// Is makes errors.Is(err, ErrNoCredentials) true for a missing-variable error.
func (e *ConfigError) Is(target error) bool { return target == ErrNoCredentials && len(e.Missing) > 0 }

// HasCredentials reports whether client id, secret and refresh token are all set.
func (c Config) HasCredentials() bool {
	return c.ClientID != "" && c.ClientSecret != "" && c.RefreshToken != ""
}

// Validate checks that everything needed for API calls is present and well
// formed; the error names exactly the variables to set.
func (c Config) Validate() error { return c.validate(true) }

// ValidateClient is Validate without the refresh token (for the code exchange).
func (c Config) ValidateClient() error { return c.validate(false) }

func (c Config) validate(needRefresh bool) error {
	var missing []string
	if c.ClientID == "" {
		missing = append(missing, EnvClientID)
	}
	if c.ClientSecret == "" {
		missing = append(missing, EnvClientSecret)
	}
	if needRefresh && c.RefreshToken == "" {
		missing = append(missing, EnvRefreshToken)
	}
	err := c.checkValues()
	if len(missing) == 0 {
		return err
	}
	ce := &ConfigError{Missing: missing}
	var other *ConfigError
	if errors.As(err, &other) {
		ce.Problem = other.Problem
	}
	return ce
}

func (c Config) checkValues() error {
	if c.DC != "" {
		if _, ok := LookupDC(c.DC); !ok {
			return &ConfigError{Problem: fmt.Sprintf("%s=%q is not a Zoho data center (one of %s)", EnvDC, c.DC, strings.Join(DCNames(), ", "))}
		}
	}
	for _, f := range []struct{ env, v string }{{EnvAccountsURL, c.AccountsURL}, {EnvAPIURL, c.APIURL}, {EnvBooksURL, c.BooksURL}} {
		if f.v == "" {
			continue
		}
		u, err := url.Parse(f.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return &ConfigError{Problem: fmt.Sprintf("%s must be an absolute http(s) URL", f.env)}
		}
	}
	if msg := checkAPIURL(c.APIURL); msg != "" {
		return &ConfigError{Problem: msg}
	}
	if msg := checkBooksURL(c.BooksURL); msg != "" {
		return &ConfigError{Problem: msg}
	}
	return nil
}

// crmVersion is the CRM API path zohook adds to APIURL.
const crmVersion = "/crm/v8"

// checkAPIURL refuses a CRM API URL that already carries the API path:
// zohook adds /crm/v8 to it, so https://www.zohoapis.com/crm/v8 would send
// every call to /crm/v8/crm/v8/… (and an older /crm/v2 to /crm/v2/crm/v8/…).
// It refuses rather than strips the path: a value naming another version
// shows a misunderstanding the operator should resolve, not zohook.
func checkAPIURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, _ := url.Parse(raw) // already checked
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i, s := range segs {
		if strings.EqualFold(s, "crm") {
			fix := *u
			fix.Path = strings.Join(segs[:i], "/")
			if fix.Path != "" {
				fix.Path = "/" + fix.Path
			}
			fix.RawQuery, fix.Fragment = "", ""
			return fmt.Sprintf("%s (api_url in the config file) %q is refused: it already carries the CRM API path /%s, "+
				"which zohook adds itself (every call would go to %s%s/…); set it to %s",
				EnvAPIURL, raw, strings.Join(segs[i:], "/"), strings.TrimRight(u.Path, "/"), crmVersion, fix.String())
		}
	}
	return ""
}

// checkBooksURL refuses a Books URL that cannot be the Books API base.
// Unlike APIURL it is the whole base, path included (…/books/v3; zohook
// adds only /invoices and the like), so the mistakes are the reverse ones:
// a Zoho API host without the path (calls would go to host/invoices), the
// path given twice or followed by an entity, or a CRM path. A proxy or a
// fake with its own path layout is left alone.
func checkBooksURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, _ := url.Parse(raw) // already checked
	path := strings.TrimRight(u.Path, "/")
	lower := strings.ToLower(path)
	base := *u
	base.RawQuery, base.Fragment = "", ""
	refuse := func(why, fixPath string) string {
		base.Path = fixPath
		return fmt.Sprintf("%s (books_url in the config file) %q is refused: %s; set it to %s", EnvBooksURL, raw, why, base.String())
	}
	if i := strings.Index(lower, "/books/v3"); i >= 0 && lower[i+len("/books/v3"):] != "" {
		return refuse("it is the Books API base and must end with /books/v3, which zohook follows with the entity path "+
			"(…/books/v3/invoices); this one carries more after it", path[:i+len("/books/v3")])
	}
	if i := strings.Index(lower, "/crm/"); i >= 0 || strings.HasSuffix(lower, "/crm") {
		if i < 0 {
			i = len(lower) - len("/crm")
		}
		return refuse("it carries a CRM API path; the Books API base is …/books/v3", path[:i]+"/books/v3")
	}
	host := strings.ToLower(u.Hostname())
	zohoHost := strings.Contains(host, "zohoapis.") || strings.HasPrefix(host, "books.zoho.")
	if zohoHost && path == "" {
		return refuse("it is the whole Books API base, path included (zohook adds only the entity, e.g. /invoices), "+
			"and a Zoho host needs its API path", "/books/v3")
	}
	return ""
}

// MinTokenRetry is the shortest sensible -token-retry: Zoho allows 10
// access-token refreshes per 10 minutes per refresh token, and refused
// refreshes count, so a shorter wait can lock the refresh token out for
// the rest of the window.
const MinTokenRetry = time.Minute

// TokenRetryWarnings returns a warning to log when d (the -token-retry
// flag: how long workers wait after a refused token refresh) is under
// MinTokenRetry; nil otherwise. It warns rather than refuses: tests and
// a deliberate short outage drill use a few seconds.
func TokenRetryWarnings(d time.Duration) []string {
	if d <= 0 || d >= MinTokenRetry {
		return nil
	}
	return []string{fmt.Sprintf("-token-retry %s is under %s: Zoho allows 10 token refreshes per 10 minutes per refresh "+
		"token and refused ones count, so retrying every %s can use them all up (%d attempts in 10 minutes) and keep "+
		"every worker waiting until the window clears", d, MinTokenRetry, d, int((10*time.Minute)/d))}
}

func (c Config) dc() DataCenter {
	if dc, ok := LookupDC(c.DC); ok {
		return dc
	}
	dc, _ := LookupDC("us")
	return dc
}

// Accounts returns the accounts server URL in use (override or DC default).
func (c Config) Accounts() string {
	if c.AccountsURL != "" {
		return strings.TrimRight(c.AccountsURL, "/")
	}
	return c.dc().AccountsURL
}

// TokenURL is Accounts() + /oauth/v2/token.
func (c Config) TokenURL() string { return c.Accounts() + "/oauth/v2/token" }

// RevokeURL is Accounts() + /oauth/v2/token/revoke.
func (c Config) RevokeURL() string { return c.Accounts() + "/oauth/v2/token/revoke" }

// AuthURL is Accounts() + /oauth/v2/auth (the consent page).
func (c Config) AuthURL() string { return c.Accounts() + "/oauth/v2/auth" }

// CRMBase returns the CRM v8 base URL for an api_domain ("" = none known yet).
func (c Config) CRMBase(apiDomain string) string {
	host := c.dc().APIDomain
	switch {
	case c.APIURL != "":
		host = c.APIURL
	case apiDomain != "":
		host = apiDomain
	}
	return strings.TrimRight(host, "/") + "/crm/v8"
}

// BooksBase returns the Books v3 base URL for an api_domain ("" = none known yet).
func (c Config) BooksBase(apiDomain string) string {
	if c.BooksURL != "" {
		return strings.TrimRight(c.BooksURL, "/")
	}
	host := c.dc().APIDomain
	if apiDomain != "" {
		host = apiDomain
	}
	return strings.TrimRight(host, "/") + "/books/v3"
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// String prints the configuration with secrets redacted.
func (c Config) String() string {
	return fmt.Sprintf("zoho.Config{ClientID:%q ClientSecret:%q RefreshToken:%q DC:%q Accounts:%q APIURL:%q BooksURL:%q BooksOrgID:%q Scopes:%q}",
		c.ClientID, redact(c.ClientSecret), redact(c.RefreshToken), c.DC, c.Accounts(), c.APIURL, c.BooksURL, c.BooksOrgID, c.Scopes)
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_id", c.ClientID),
		slog.String("client_secret", redact(c.ClientSecret)),
		slog.String("refresh_token", redact(c.RefreshToken)),
		slog.String("dc", c.DC),
		slog.String("accounts_url", c.Accounts()),
		slog.String("api_url", c.APIURL),
		slog.String("books_url", c.BooksURL),
		slog.String("books_org_id", c.BooksOrgID),
		slog.Any("scopes", c.Scopes),
	)
}

var (
	_ slog.LogValuer = Config{}
	_ fmt.Stringer   = Config{}
	_ fmt.GoStringer = Config{}
)
