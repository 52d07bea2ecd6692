package zohotest

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// accountsState is Zoho Accounts: refresh tokens, access tokens and grant codes (§1).
type accountsState struct {
	refresh   map[string]*refreshToken
	access    map[string]*accessToken
	codes     map[string]*grantCode
	refreshes int // refresh_token grants that minted a token
}

type refreshToken struct {
	scope   string
	revoked bool
	mints   []time.Time // access tokens minted, for the §1.5 throttle
	active  []string    // live access tokens, oldest first
}

type accessToken struct {
	refresh string
	expires time.Time
}

type grantCode struct {
	expires     time.Time
	redirectURI string // "" for self-client codes
	scope       string
	offline     bool
}

func (a *accountsState) init() {
	a.refresh = map[string]*refreshToken{}
	a.access = map[string]*accessToken{}
	a.codes = map[string]*grantCode{}
}

func zohoToken() string { return "1000." + randHex(16) + "." + randHex(16) }

func (a *accountsState) newRefreshToken(scope string) string {
	t := zohoToken()
	a.refresh[t] = &refreshToken{scope: scope}
	return t
}

// IssueGrantCode returns a one-time grant code (self-client flow) valid for 3 minutes on the server clock.
func (s *Server) IssueGrantCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := zohoToken()
	s.accounts.codes[code] = &grantCode{expires: s.now().Add(s.cfg.grantTTL), scope: "ZohoCRM.modules.ALL ZohoBooks.fullaccess.all", offline: true}
	return code
}

// TokenRefreshes counts refresh_token grants that minted an access token.
func (s *Server) TokenRefreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accounts.refreshes
}

// ExpireAccessTokens makes every access token expired now, as if an hour passed (handy without a fake clock).
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.accounts.access {
		t.expires = time.Time{}
	}
}

// validAccessToken reports whether tok is a live access token.
func (s *Server) validAccessToken(tok string) bool {
	if tok == "" {
		return false
	}
	t, ok := s.accounts.access[tok]
	return ok && s.now().Before(t.expires)
}

func accessDenied() map[string]any {
	return map[string]any{"error_description": "You have made too many requests continuously. Please try again after some time.",
		"error": "Access Denied", "status": "failure"}
}

func (s *Server) tokenErr(code string) *response {
	if code == "Access Denied" {
		return jsonResp(s.cfg.tokenErrorStatus, accessDenied())
	}
	return jsonResp(s.cfg.tokenErrorStatus, map[string]any{"error": code})
}

func (s *Server) serveAccounts(rq *request) *response {
	switch rq.r.URL.Path {
	case "/oauth/v2/token":
		if rq.r.Method != http.MethodPost {
			return jsonResp(http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request"})
		}
		return s.token(rq)
	case "/oauth/v2/token/revoke", "/oauth/v2/revoke/token":
		if rq.r.Method != http.MethodPost {
			return jsonResp(http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request"})
		}
		return s.revoke(rq)
	case "/oauth/v2/auth":
		return s.authorize(rq)
	}
	return jsonResp(http.StatusNotFound, map[string]any{"error": "invalid_request"})
}

// params merges query and form-body parameters: Zoho examples use the query string, the SDK a form body (§1.3).
func params(rq *request) url.Values {
	v := rq.r.URL.Query()
	if strings.HasPrefix(rq.r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(rq.body)); err == nil {
			for k, xs := range form {
				if v.Get(k) == "" {
					v[k] = xs
				}
			}
		}
	}
	return v
}

func (s *Server) token(rq *request) *response {
	p := params(rq)
	if p.Get("client_id") != s.creds.ClientID {
		return s.tokenErr("invalid_client")
	}
	if p.Get("client_secret") != s.creds.ClientSecret {
		return s.tokenErr("invalid_client_secret")
	}
	now := s.now()
	switch p.Get("grant_type") {
	case "authorization_code":
		code, ok := s.accounts.codes[p.Get("code")]
		if !ok || !now.Before(code.expires) {
			return s.tokenErr("invalid_code")
		}
		if code.redirectURI != "" && p.Get("redirect_uri") != code.redirectURI {
			return s.tokenErr("invalid_redirect_uri")
		}
		delete(s.accounts.codes, p.Get("code")) // one-time
		body := map[string]any{"scope": code.scope, "api_domain": s.URL(), "token_type": "Bearer",
			"expires_in": int(s.cfg.tokenTTL / time.Second)}
		var rt string
		if code.offline {
			rt = s.accounts.newRefreshToken(code.scope)
			body["refresh_token"] = rt
		} else {
			// Online access: an access token not tied to a stored refresh token (it still needs an owner for the
			// active-token bookkeeping, so give it a hidden one).
			rt = s.accounts.newRefreshToken(code.scope)
		}
		body["access_token"] = s.mint(rt, now)
		return jsonResp(http.StatusOK, body)
	case "refresh_token":
		rt, ok := s.accounts.refresh[p.Get("refresh_token")]
		if !ok || rt.revoked {
			return s.tokenErr("invalid_code")
		}
		if !s.throttleOK(rt, now) {
			return s.tokenErr("Access Denied")
		}
		tok := s.mint(p.Get("refresh_token"), now)
		s.accounts.refreshes++
		return jsonResp(http.StatusOK, map[string]any{"access_token": tok, "scope": rt.scope, "api_domain": s.URL(),
			"token_type": "Bearer", "expires_in": int(s.cfg.tokenTTL / time.Second)})
	}
	return s.tokenErr("unsupported_grant_type")
}

// throttleOK applies the §1.5 limit: n access tokens per refresh token per window.
func (s *Server) throttleOK(rt *refreshToken, now time.Time) bool {
	if s.cfg.refreshLimit <= 0 {
		return true
	}
	keep := rt.mints[:0]
	for _, t := range rt.mints {
		if now.Before(t.Add(s.cfg.refreshWindow)) {
			keep = append(keep, t)
		}
	}
	rt.mints = keep
	return len(rt.mints) < s.cfg.refreshLimit
}

// mint creates an access token for refresh token rtID, invalidating the oldest one beyond the active cap.
func (s *Server) mint(rtID string, now time.Time) string {
	rt := s.accounts.refresh[rtID]
	tok := zohoToken()
	s.accounts.access[tok] = &accessToken{refresh: rtID, expires: now.Add(s.cfg.tokenTTL)}
	rt.mints = append(rt.mints, now)
	rt.active = append(rt.active, tok)
	for s.cfg.maxActiveTokens > 0 && len(rt.active) > s.cfg.maxActiveTokens {
		delete(s.accounts.access, rt.active[0])
		rt.active = rt.active[1:]
	}
	return tok
}

// revoke implements §1.4: revoking a refresh token also kills its access tokens.
func (s *Server) revoke(rq *request) *response {
	tok := params(rq).Get("token")
	if rt, ok := s.accounts.refresh[tok]; ok && !rt.revoked {
		rt.revoked = true
		for _, a := range rt.active {
			delete(s.accounts.access, a)
		}
		rt.active = nil
		return jsonResp(http.StatusOK, map[string]any{"status": "success"})
	}
	if a, ok := s.accounts.access[tok]; ok {
		delete(s.accounts.access, tok)
		if rt := s.accounts.refresh[a.refresh]; rt != nil {
			for i, x := range rt.active {
				if x == tok {
					rt.active = append(rt.active[:i:i], rt.active[i+1:]...)
					break
				}
			}
		}
		return jsonResp(http.StatusOK, map[string]any{"status": "success"})
	}
	return jsonResp(http.StatusBadRequest, map[string]any{"error": "invalid_token", "status": "failure"})
}

// authorize is the consent page: it consents at once and redirects with the §1.2 multi-DC parameters.
func (s *Server) authorize(rq *request) *response {
	q := rq.r.URL.Query()
	if q.Get("client_id") != s.creds.ClientID {
		return jsonResp(http.StatusBadRequest, map[string]any{"error": "invalid_client"})
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || redirect.Host == "" {
		return jsonResp(http.StatusBadRequest, map[string]any{"error": "invalid_redirect_uri"})
	}
	if q.Get("response_type") != "code" {
		return jsonResp(http.StatusBadRequest, map[string]any{"error": "unsupported_response_type"})
	}
	code := zohoToken()
	scope := strings.ReplaceAll(q.Get("scope"), ",", " ")
	s.accounts.codes[code] = &grantCode{expires: s.now().Add(s.cfg.grantTTL), redirectURI: q.Get("redirect_uri"),
		scope: scope, offline: q.Get("access_type") == "offline"}
	rv := redirect.Query()
	rv.Set("code", code)
	rv.Set("location", "us")
	rv.Set("accounts-server", s.URL())
	if st := q.Get("state"); st != "" {
		rv.Set("state", st)
	}
	redirect.RawQuery = rv.Encode()
	return &response{status: http.StatusFound, header: http.Header{"Location": {redirect.String()}}}
}
