package zohotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Zoho's CRM date-time layout (ISO 8601 with a colon in the offset, no fractional seconds).
const crmTimeLayout = "2006-01-02T15:04:05-07:00"

// maxBodyBytes bounds what the fake reads from a request: a little more than the 20 MB attachment cap so that an
// oversized upload is still recognised as such (→ 413) instead of being cut off mid-part.
const maxBodyBytes = 21 << 20

// Server is a fake Zoho (Accounts + CRM v8 + Books v3) on one loopback listener.
type Server struct {
	cfg     config
	handler http.Handler
	ts      *httptest.Server // nil for NewUnstarted
	log     *slog.Logger

	baseMu  sync.RWMutex
	baseURL string

	// mu guards all Zoho-side state (accounts, CRM, Books, channels). API handlers run with it held; delays
	// (latency, faults) happen outside it so that slow requests do not block others.
	mu       sync.Mutex
	creds    Credentials
	accounts accountsState
	crm      crmState
	books    map[string]*booksOrg
	booksEnt map[string]*booksEntity
	watch    watchState
	failures []WebhookFailure
	idSeq    int64 // CRM ids
	bookSeq  int64 // Books ids
	crmRate  window
	booksRL  map[string]*window

	faultMu sync.Mutex
	faults  []*faultEntry

	callMu sync.Mutex
	calls  []Call

	oas *oasValidator

	notifier *notifier
}

// Credentials are valid OAuth client credentials for one fake server.
type Credentials struct {
	ClientID     string
	ClientSecret string
	RefreshToken string
	OrgID        string // the Books organization created at start
}

type config struct {
	clock            func() time.Time
	tokenTTL         time.Duration
	refreshLimit     int
	refreshWindow    time.Duration
	tokenErrorStatus int
	maxActiveTokens  int
	latency          time.Duration
	coqlMaxLimit     int
	booksRateN       int
	booksRatePer     time.Duration
	crmRateN         int
	crmRatePer       time.Duration
	notifications    bool
	oasDir           string
	logger           *slog.Logger
	grantTTL         time.Duration
	modules          []string
}

// Option configures a Server.
type Option func(*config)

// WithClock sets the server clock used for token expiry, channel expiry, grant codes, page tokens, rate windows
// and Created_Time/Modified_Time.
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// WithTokenTTL sets the access-token lifetime (default 1 h); expires_in is reported accordingly.
func WithTokenTTL(d time.Duration) Option { return func(c *config) { c.tokenTTL = d } }

// WithRefreshLimit sets the access-token throttle per refresh token (default 10 per 10 minutes, §1.5).
func WithRefreshLimit(n int, window time.Duration) Option {
	return func(c *config) { c.refreshLimit, c.refreshWindow = n, window }
}

// WithTokenErrorStatus sets the HTTP status of token-endpoint errors. Zoho's status is UNCONFIRMED (§1.3,
// §11.1); the default is 200, which is what clients must tolerate.
func WithTokenErrorStatus(code int) Option { return func(c *config) { c.tokenErrorStatus = code } }

// WithMaxActiveTokens sets how many access tokens a refresh token may have alive (default 10, §1.5); minting one
// more invalidates the oldest.
func WithMaxActiveTokens(n int) Option { return func(c *config) { c.maxActiveTokens = n } }

// WithLatency adds a delay to every request.
func WithLatency(d time.Duration) Option { return func(c *config) { c.latency = d } }

// WithCOQLMaxLimit sets the largest accepted COQL LIMIT (default 2,000, §3).
func WithCOQLMaxLimit(n int) Option { return func(c *config) { c.coqlMaxLimit = n } }

// WithBooksRateLimit limits Books requests per organization to n per window (code 44 beyond); n = 0 is off.
func WithBooksRateLimit(n int, per time.Duration) Option {
	return func(c *config) { c.booksRateN, c.booksRatePer = n, per }
}

// WithCRMRateLimit limits CRM requests to n per window (429 TOO_MANY_REQUESTS beyond); n = 0 is off.
func WithCRMRateLimit(n int, per time.Duration) Option {
	return func(c *config) { c.crmRateN, c.crmRatePer = n, per }
}

// WithNotifications makes CRM writes through the API deliver §5.7 callbacks to live watch channels.
func WithNotifications(on bool) Option { return func(c *config) { c.notifications = on } }

// WithOpenAPIValidation validates CRM requests and responses against the OpenAPI files in dir; violations are
// collected in ContractViolations.
func WithOpenAPIValidation(dir string) Option { return func(c *config) { c.oasDir = dir } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithGrantCodeTTL sets how long grant codes stay valid (default 3 minutes, §1.5).
func WithGrantCodeTTL(d time.Duration) Option { return func(c *config) { c.grantTTL = d } }

// WithModules adds CRM module API names (custom modules) to the standard set the fake accepts.
func WithModules(names ...string) Option {
	return func(c *config) { c.modules = append(c.modules, names...) }
}

func defaultConfig() config {
	return config{
		clock:            time.Now,
		tokenTTL:         time.Hour,
		refreshLimit:     10,
		refreshWindow:    10 * time.Minute,
		tokenErrorStatus: http.StatusOK,
		maxActiveTokens:  10,
		coqlMaxLimit:     2000,
		grantTTL:         3 * time.Minute,
		logger:           slog.New(slog.DiscardHandler),
	}
}

// NewServer starts a fake Zoho on 127.0.0.1:0. Closing it is the caller's job.
func NewServer(opts ...Option) *Server {
	s := NewUnstarted(opts...)
	s.ts = httptest.NewServer(s.handler)
	s.SetBaseURL(s.ts.URL)
	return s
}

// NewUnstarted builds a fake Zoho without a listener: serve Handler() yourself and call SetBaseURL.
func NewUnstarted(opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{cfg: cfg, log: cfg.logger, books: map[string]*booksOrg{}, booksRL: map[string]*window{}}
	s.idSeq = 5725767000001000000
	s.bookSeq = 982000001000000
	s.creds = Credentials{
		ClientID:     "1000." + strings.ToUpper(randHex(15)),
		ClientSecret: randHex(21),
		OrgID:        "10234695",
	}
	s.accounts.init()
	s.creds.RefreshToken = s.accounts.newRefreshToken("ZohoCRM.modules.ALL ZohoCRM.coql.READ ZohoCRM.notifications.ALL ZohoBooks.fullaccess.all")
	s.crm.init(cfg.modules)
	s.watch.init()
	s.booksEnt = newBooksEntities()
	s.books[s.creds.OrgID] = newBooksOrg(s.creds.OrgID, "Zillum")
	s.notifier = newNotifier(s.log)
	if cfg.oasDir != "" {
		s.oas = newOASValidator(cfg.oasDir)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// Handler returns the fake's HTTP handler (for NewUnstarted).
func (s *Server) Handler() http.Handler { return s.handler }

// SetBaseURL sets the base URL the fake reports (api_domain, accounts-server, resource_uri).
func (s *Server) SetBaseURL(u string) {
	s.baseMu.Lock()
	s.baseURL = strings.TrimRight(u, "/")
	s.baseMu.Unlock()
}

// URL returns the base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string {
	s.baseMu.RLock()
	defer s.baseMu.RUnlock()
	return s.baseURL
}

// Close stops the listener (if NewServer started one) and the notification sender.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
	s.notifier.close()
}

// Credentials returns client credentials, a refresh token and the Books organization id valid for this server.
func (s *Server) Credentials() Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds
}

func (s *Server) now() time.Time { return s.cfg.clock() }

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)[:n*2]
}

// ---- request plumbing -------------------------------------------------------------------------------------

// request is what an API handler sees: the original request plus its fully read body.
type request struct {
	r    *http.Request
	body []byte
	segs []string // path segments after the API prefix
}

func (rq *request) query(k string) string { return rq.r.URL.Query().Get(k) }

// response is what an API handler produces; the plumbing records, validates and writes it.
type response struct {
	status int
	header http.Header
	body   []byte
}

func jsonResp(status int, v any) *response {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // handlers only marshal maps/slices of JSON values
	}
	return &response{status: status, header: http.Header{"Content-Type": {"application/json;charset=UTF-8"}}, body: b}
}

func emptyResp(status int) *response { return &response{status: status, header: http.Header{}} }

type apiKind int

const (
	apiOther apiKind = iota
	apiAccounts
	apiCRM
	apiBooks
)

func kindOf(path string) apiKind {
	switch {
	case strings.HasPrefix(path, "/oauth/"):
		return apiAccounts
	case strings.HasPrefix(path, "/crm/v8/") || path == "/crm/v8":
		return apiCRM
	case strings.HasPrefix(path, "/books/v3/") || path == "/books/v3":
		return apiBooks
	}
	return apiOther
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	idx := s.recordCall(r, body)
	kind := kindOf(r.URL.Path)
	resp := s.serveAPI(r, body, kind)
	if resp == nil { // client went away during a delay
		s.setCallStatus(idx, 499)
		return
	}
	s.setCallStatus(idx, resp.status)
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	if len(resp.body) > 0 && r.Method != http.MethodHead {
		_, _ = w.Write(resp.body)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) serveAPI(r *http.Request, body []byte, kind apiKind) *response {
	validate := kind == apiCRM && s.oas != nil
	if validate {
		s.oas.checkRequest(r, body)
	}
	resp, hold := s.serveAPIInner(r, body, kind)
	if hold > 0 {
		// Processed; the answer comes late, or never reaches a client that
		// gave up or died meanwhile (Fault.AnswerDelay).
		time.Sleep(hold)
	}
	if validate {
		s.oas.checkResponse(r, body, resp) // injected faults included: a custom fault body must honour the contract too
	}
	return resp
}

func (s *Server) serveAPIInner(r *http.Request, body []byte, kind apiKind) (_ *response, hold time.Duration) {
	if !sleepCtx(r.Context(), s.cfg.latency) {
		return nil, 0
	}
	if f, ok := s.matchFault(r); ok {
		if !sleepCtx(r.Context(), f.Delay) {
			return nil, 0
		}
		if f.Status > 0 {
			return faultResponse(f, kind), 0
		}
		hold = f.AnswerDelay
	}
	return s.dispatchAPI(r, body, kind), hold
}

func (s *Server) dispatchAPI(r *http.Request, body []byte, kind apiKind) *response {
	if len(body) > maxBodyBytes {
		return tooLarge(kind)
	}
	rq := &request{r: r, body: body}
	switch kind {
	case apiAccounts:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.serveAccounts(rq)
	case apiCRM:
		rq.segs = splitPath(strings.TrimPrefix(r.URL.Path, "/crm/v8"))
		return s.serveCRMLocked(rq)
	case apiBooks:
		rq.segs = splitPath(strings.TrimPrefix(r.URL.Path, "/books/v3"))
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.serveBooks(rq)
	}
	return jsonResp(http.StatusNotFound, map[string]any{"code": "INVALID_URL_PATTERN", "details": map[string]any{},
		"message": "Please check if the URL trying to access is a correct one", "status": "error"})
}

func (s *Server) serveCRMLocked(rq *request) *response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serveCRM(rq)
}

func tooLarge(kind apiKind) *response {
	if kind == apiBooks {
		return jsonResp(http.StatusRequestEntityTooLarge, booksErr(33003, "Attachment size exceeds the maximum limit."))
	}
	return jsonResp(http.StatusRequestEntityTooLarge, crmErr("FILE_SIZE_MORE_THAN_ALLOWED_SIZE", "Please check whether the input values are correct",
		map[string]any{"limit": 20 * 1024 * 1024}))
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// bearerToken extracts the access token from "Zoho-oauthtoken <tok>" (case-sensitive prefix, §1.6) or
// "Bearer <tok>".
func bearerToken(h http.Header) string {
	a := h.Get("Authorization")
	for _, p := range []string{"Zoho-oauthtoken ", "Bearer "} {
		if strings.HasPrefix(a, p) {
			return strings.TrimSpace(a[len(p):])
		}
	}
	return ""
}

// ---- small helpers used across files -----------------------------------------------------------------------

// window is a fixed-window request counter on the server clock (deterministic under a fake clock, unlike a
// token bucket on the wall clock).
type window struct {
	start time.Time
	n     int
}

func (w *window) allow(now time.Time, limit int, per time.Duration) bool {
	if w.start.IsZero() || !now.Before(w.start.Add(per)) {
		w.start, w.n = now, 0
	}
	if w.n >= limit {
		return false
	}
	w.n++
	return true
}

// deepCopy copies plain JSON values (maps, slices, scalars) so callers never share state with the store.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}

func copyRec(m map[string]any) map[string]any { return deepCopy(m).(map[string]any) }
