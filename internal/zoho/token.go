package zoho

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Token is a Zoho access token with the API domain it belongs to.
type Token struct {
	AccessToken string
	// APIDomain is the token response's api_domain (e.g. https://www.zohoapis.eu).
	APIDomain string
	Expiry    time.Time
}

// LogValue keeps the access token out of logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_domain", t.APIDomain), slog.Time("expiry", t.Expiry))
}

// String keeps the access token out of %v.
func (t Token) String() string {
	return fmt.Sprintf("zoho.Token{APIDomain:%q Expiry:%s}", t.APIDomain, t.Expiry.Format(time.RFC3339))
}

// TokenSource yields access tokens. Invalidate tells the source that Zoho
// rejected accessToken (401 INVALID_TOKEN); it must refresh only if that token
// is still the current one, so that N workers hitting the same 401 cause one
// refresh. The worker may wrap a Refresher to share a token through NATS KV.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
	Invalidate(ctx context.Context, accessToken string)
}

// Grant is the full answer of a token request.
type Grant struct {
	AccessToken  string
	RefreshToken string // only on the authorization-code grant
	APIDomain    string
	Scope        string
	Expiry       time.Time
}

func (g Grant) String() string {
	return fmt.Sprintf("zoho.Grant{APIDomain:%q Scope:%q Expiry:%s}", g.APIDomain, g.Scope, g.Expiry.Format(time.RFC3339))
}

// LogValue keeps tokens out of logs.
func (g Grant) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_domain", g.APIDomain), slog.String("scope", g.Scope), slog.Time("expiry", g.Expiry))
}

// OAuth talks to Zoho Accounts: consent URL, code exchange, refresh, revoke.
type OAuth struct {
	cfg Config
	hc  *http.Client
	now func() time.Time
}

// NewOAuth returns an Accounts client for cfg; hc nil means http.DefaultClient.
func NewOAuth(cfg Config, hc *http.Client) *OAuth {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &OAuth{cfg: cfg, hc: hc, now: time.Now}
}

// AuthCodeURL is the consent URL of the authorization-code flow, asking for
// offline access and forcing the consent screen so that Zoho issues a
// refresh token again on re-consent (G2).
func (o *OAuth) AuthCodeURL(redirectURI, state string) string {
	scopes := o.cfg.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes()
	}
	oc := &oauth2.Config{
		ClientID:    o.cfg.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: o.cfg.AuthURL(), TokenURL: o.cfg.TokenURL()},
		RedirectURL: redirectURI,
		// Zoho separates scopes with commas, oauth2 joins with spaces: join here.
		Scopes: []string{strings.Join(scopes, ",")},
	}
	return oc.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"))
}

// Exchange trades an authorization (grant) code for tokens.
func (o *OAuth) Exchange(ctx context.Context, code, redirectURI string) (*Grant, error) {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	if redirectURI != "" {
		v.Set("redirect_uri", redirectURI)
	}
	return o.tokenRequest(ctx, v)
}

// Refresh mints a new access token from the configured refresh token.
func (o *OAuth) Refresh(ctx context.Context) (*Grant, error) {
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	return o.tokenRequest(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {o.cfg.RefreshToken}})
}

// Revoke revokes a refresh (or access) token (§1.4). Revoking the refresh
// token also kills every access token minted from it.
func (o *OAuth) Revoke(ctx context.Context, token string) error {
	u := o.cfg.RevokeURL()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return fmt.Errorf("zoho accounts: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := o.hc.Do(req)
	if err != nil {
		return fmt.Errorf("zoho accounts: revoke: %w: %w", errTransport, scrubURLError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	_ = json.Unmarshal(body, &r)
	if resp.StatusCode/100 != 2 || r.Error != "" || (r.Status != "" && r.Status != "success") {
		code := r.Error
		if code == "" {
			code = r.Status
		}
		return &Error{API: APIAccounts, HTTPStatus: resp.StatusCode, Code: code, Message: "revoke failed", Method: "POST", Path: "/oauth/v2/token/revoke"}
	}
	return nil
}

type tokenJSON struct {
	AccessToken      string          `json:"access_token"`
	RefreshToken     string          `json:"refresh_token"`
	APIDomain        string          `json:"api_domain"`
	Scope            string          `json:"scope"`
	ExpiresIn        json.Number     `json:"expires_in"`
	ExpiresInSec     json.Number     `json:"expires_in_sec"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	Status           json.RawMessage `json:"status"`
}

func (o *OAuth) tokenRequest(ctx context.Context, v url.Values) (*Grant, error) {
	if err := o.cfg.ValidateClient(); err != nil {
		return nil, err
	}
	v.Set("client_id", o.cfg.ClientID)
	v.Set("client_secret", o.cfg.ClientSecret)
	// The official SDK posts a form body; secrets stay out of the URL (and so out of any logged URL).
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.TokenURL(), strings.NewReader(v.Encode()))
	if err != nil {
		return nil, fmt.Errorf("zoho accounts: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	start := o.now()
	// Recorded for WithExchanges (secrets redacted): status, code, message.
	var xStatus int
	var xCode, xMessage string
	defer func(t0 time.Time) { recordTokenExchange(ctx, req, v, t0, xStatus, xCode, xMessage) }(time.Now())
	resp, err := o.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("zoho accounts: token request: %w", ctx.Err())
		}
		xMessage = scrubURLError(err).Error()
		return nil, fmt.Errorf("zoho accounts: token request: %w: %w", errTransport, scrubURLError(err))
	}
	xStatus = resp.StatusCode
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("zoho accounts: token response: %w: %w", errTransport, err)
	}
	var tj tokenJSON
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if jerr := dec.Decode(&tj); jerr != nil {
		return nil, &Error{API: APIAccounts, HTTPStatus: resp.StatusCode, Code: "INVALID_RESPONSE", Message: "token response is not JSON", Method: "POST", Path: "/oauth/v2/token", RetryAfter: retryAfter(resp.Header, o.now())}
	}
	xCode, xMessage = tj.Error, tj.ErrorDescription
	if tj.Error != "" {
		return nil, &TokenError{Code: tj.Error, Description: tj.ErrorDescription, HTTPStatus: resp.StatusCode}
	}
	if resp.StatusCode/100 != 2 {
		return nil, &Error{API: APIAccounts, HTTPStatus: resp.StatusCode, Message: "token request failed", Method: "POST", Path: "/oauth/v2/token", RetryAfter: retryAfter(resp.Header, o.now())}
	}
	if tj.AccessToken == "" {
		return nil, &TokenError{Code: "missing_access_token", Description: "response has no access_token", HTTPStatus: resp.StatusCode}
	}
	g := &Grant{AccessToken: tj.AccessToken, RefreshToken: tj.RefreshToken, Scope: tj.Scope, APIDomain: o.trustedAPIDomain(tj.APIDomain)}
	g.Expiry = start.Add(tokenLifetime(tj))
	return g, nil
}

// tokenLifetime: legacy answers carry expires_in_sec and then expires_in is
// in milliseconds (§1.3, G5); prefer expires_in_sec.
func tokenLifetime(tj tokenJSON) time.Duration {
	if n, err := tj.ExpiresInSec.Float64(); err == nil && n > 0 {
		return time.Duration(n * float64(time.Second))
	}
	if n, err := tj.ExpiresIn.Float64(); err == nil && n > 0 {
		return time.Duration(n * float64(time.Second))
	}
	return time.Hour
}

// trustedAPIDomain drops an api_domain that would downgrade to plain HTTP
// (the Authorization header must not travel in clear text) unless the
// accounts server itself is plain HTTP (a local fake).
func (o *OAuth) trustedAPIDomain(d string) string {
	d = strings.TrimRight(strings.TrimSpace(d), "/")
	if d == "" {
		return ""
	}
	u, err := url.Parse(d)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return ""
	}
	if u.Scheme == "https" {
		return d
	}
	if u.Scheme == "http" && strings.HasPrefix(o.cfg.Accounts(), "http://") {
		return d
	}
	return ""
}

// RefresherOptions tunes NewRefresher; the zero value is usable.
type RefresherOptions struct {
	// Margin: refresh this long before expiry (default 5 min).
	Margin time.Duration
	// Now is the clock (default time.Now); tests pass a fake clock.
	Now func() time.Time
	// RefreshTimeout bounds one token request (default 30 s); the request is
	// detached from the caller's context so that one impatient caller does
	// not fail the refresh for everyone waiting on it.
	RefreshTimeout time.Duration
	// Logger (default slog.Default()). Tokens are never logged.
	Logger *slog.Logger
}

// Refresher is the TokenSource that mints access tokens from the refresh
// token: it caches, refreshes Margin before expiry, and lets concurrent
// callers share one in-flight refresh.
type Refresher struct {
	oauth *OAuth
	opts  RefresherOptions

	mu       sync.Mutex
	cur      *Token
	inflight *refreshCall
}

type refreshCall struct {
	done chan struct{}
	tok  *Token
	err  error
}

var _ TokenSource = (*Refresher)(nil)

// NewRefresher returns a Refresher for cfg; hc nil means http.DefaultClient.
func NewRefresher(cfg Config, hc *http.Client, opts *RefresherOptions) *Refresher {
	var o RefresherOptions
	if opts != nil {
		o = *opts
	}
	if o.Margin <= 0 {
		o.Margin = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RefreshTimeout <= 0 {
		o.RefreshTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	oa := NewOAuth(cfg, hc)
	oa.now = o.Now
	return &Refresher{oauth: oa, opts: o}
}

// Token returns the cached token or refreshes it.
func (r *Refresher) Token(ctx context.Context) (*Token, error) {
	r.mu.Lock()
	now := r.opts.Now()
	if r.cur != nil && now.Before(r.cur.Expiry.Add(-r.opts.Margin)) {
		t := r.cur
		r.mu.Unlock()
		return t, nil
	}
	call := r.inflight
	if call == nil {
		call = &refreshCall{done: make(chan struct{})}
		r.inflight = call
		go r.refresh(context.WithoutCancel(ctx), call)
	}
	r.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("zoho: waiting for access token: %w", ctx.Err())
	}
}

func (r *Refresher) refresh(ctx context.Context, call *refreshCall) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.RefreshTimeout)
	defer cancel()
	g, err := r.oauth.Refresh(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight = nil
	if err != nil {
		// A token still valid (we were only inside the margin) beats failing:
		// a throttled refresh (G1) must not stop work that can go on.
		if r.cur != nil && r.opts.Now().Before(r.cur.Expiry) {
			r.opts.Logger.Warn("zoho: token refresh failed, using the still valid token", "err", err, "expiry", r.cur.Expiry)
			call.tok = r.cur
		} else {
			call.err = err
		}
		close(call.done)
		return
	}
	r.cur = &Token{AccessToken: g.AccessToken, APIDomain: g.APIDomain, Expiry: g.Expiry}
	r.opts.Logger.Debug("zoho: access token refreshed", "api_domain", g.APIDomain, "expiry", g.Expiry)
	call.tok = r.cur
	close(call.done)
}

// Invalidate drops the cached token if it is still accessToken.
func (r *Refresher) Invalidate(_ context.Context, accessToken string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil && r.cur.AccessToken == accessToken {
		r.cur = nil
	}
}

// scrubURLError removes the URL (which could carry a query) from *url.Error
// messages while keeping the underlying cause for errors.As.
func scrubURLError(err error) error {
	var ue *url.Error
	if ok := asURLError(err, &ue); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func asURLError(err error, target **url.Error) bool {
	ue, ok := err.(*url.Error)
	if ok {
		*target = ue
	}
	return ok
}
