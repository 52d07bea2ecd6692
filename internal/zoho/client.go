package zoho

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/zohook/zohook/internal/tracing"
)

// Limiter is the client-side rate limiter interface (satisfied by
// *rate.Limiter); the worker can plug in a limiter shared across processes.
type Limiter interface {
	Wait(ctx context.Context) error
}

var _ Limiter = (*rate.Limiter)(nil)

// RetryPolicy says which failures are retried and how long to wait.
// The zero value means "no retries".
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt.
	MaxRetries int
	// BaseDelay is the first backoff step (or the constant delay).
	BaseDelay time.Duration
	// MaxDelay caps one exponential backoff step (not a Retry-After from Zoho).
	MaxDelay time.Duration
	// Constant waits BaseDelay between attempts instead of exponential
	// backoff with full jitter.
	Constant bool
	// RetryAllErrors retries every failure (4xx included); by default only
	// network errors, 5xx, 429 and the token throttle are retried.
	RetryAllErrors bool
}

// DefaultRetryPolicy: 4 retries, exponential backoff with full jitter from
// 500 ms, capped at 30 s per step; Retry-After / X-Rate-Limit-Reset win.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 4, BaseDelay: 500 * time.Millisecond, MaxDelay: 30 * time.Second}
}

func (p RetryPolicy) delay(attempt int, hinted time.Duration) time.Duration {
	if hinted > 0 {
		return hinted
	}
	base := p.BaseDelay
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if p.Constant {
		return base
	}
	maxD := p.MaxDelay
	if maxD <= 0 {
		maxD = 30 * time.Second
	}
	d := maxD
	if attempt < 30 && base<<attempt > 0 && base<<attempt < maxD {
		d = base << attempt
	}
	// Full jitter spreads the retries of many workers hitting the same limit.
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func (p RetryPolicy) retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *PathError
	var ce *ConfigError
	if errors.As(err, &pe) || errors.As(err, &ce) {
		return false
	}
	var te *TokenError
	if errors.As(err, &te) && te.Permanent() {
		return false
	}
	return p.RetryAllErrors || IsRetryable(err)
}

// Response carries the HTTP outcome and paging information of a call.
type Response struct {
	StatusCode int
	Header     http.Header
	// Attempts is how many HTTP requests the call took (retries included).
	Attempts int
	// Info is CRM's "info" object (lists, COQL, search, notifications).
	Info *PageInfo
	// PageContext is Books' "page_context" (lists).
	PageContext *PageContext
}

// NotModified reports a 304 answer to If-Modified-Since (no records returned).
func (r *Response) NotModified() bool { return r != nil && r.StatusCode == http.StatusNotModified }

// PageInfo is CRM's paging object.
type PageInfo struct {
	MoreRecords       bool   `json:"more_records"`
	NextPageToken     string `json:"next_page_token,omitempty"`
	PreviousPageToken string `json:"previous_page_token,omitempty"`
	PageTokenExpiry   string `json:"page_token_expiry,omitempty"`
	Page              int    `json:"page,omitempty"`
	PerPage           int    `json:"per_page,omitempty"`
	Count             int    `json:"count"`
	SortBy            string `json:"sort_by,omitempty"`
	SortOrder         string `json:"sort_order,omitempty"`
}

// PageContext is Books' paging object.
type PageContext struct {
	Page          int    `json:"page"`
	PerPage       int    `json:"per_page"`
	HasMorePage   bool   `json:"has_more_page"`
	ReportName    string `json:"report_name,omitempty"`
	AppliedFilter string `json:"applied_filter,omitempty"`
	SortColumn    string `json:"sort_column,omitempty"`
	SortOrder     string `json:"sort_order,omitempty"`
}

// Client is the Zoho CRM + Books client. It is safe for concurrent use.
type Client struct {
	CRM   *CRMService
	Books *BooksService

	cfg          Config
	hc           *http.Client
	ts           TokenSource
	retry        RetryPolicy
	limiters     map[string]Limiter
	logger       *slog.Logger
	debug        bool
	userAgent    string
	coqlPageSize int
	maxBody      int64
	// actions: the action table, built once per client (every event
	// runs a few actions; rebuilding it cost a tenth of a worker's
	// allocations).
	actions map[string]action
}

type clientOptions struct {
	hc           *http.Client
	ts           TokenSource
	retry        *RetryPolicy
	crmLimiter   Limiter
	booksLimiter Limiter
	logger       *slog.Logger
	debug        bool
	userAgent    string
	refresher    RefresherOptions
	coqlPageSize int
	maxBody      int64
}

// Option configures NewClient.
type Option func(*clientOptions)

// WithHTTPClient sets the HTTP client (default: a client with a 60 s timeout
// and a transport keeping MaxIdleConnsPerHost idle connections per host).
func WithHTTPClient(hc *http.Client) Option { return func(o *clientOptions) { o.hc = hc } }

// WithTokenSource replaces the built-in Refresher (e.g. a token shared through NATS KV).
// The refresh token is then not required in Config.
func WithTokenSource(ts TokenSource) Option { return func(o *clientOptions) { o.ts = ts } }

// WithRetryPolicy sets the default retry policy (default DefaultRetryPolicy()).
func WithRetryPolicy(p RetryPolicy) Option { return func(o *clientOptions) { o.retry = &p } }

// WithCRMLimiter throttles CRM calls client-side.
func WithCRMLimiter(l Limiter) Option { return func(o *clientOptions) { o.crmLimiter = l } }

// WithBooksLimiter throttles Books calls client-side (Books allows 100/min per org).
func WithBooksLimiter(l Limiter) Option { return func(o *clientOptions) { o.booksLimiter = l } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *clientOptions) { o.logger = l } }

// WithDebug logs every request and response (secrets redacted).
func WithDebug(on bool) Option { return func(o *clientOptions) { o.debug = on } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *clientOptions) { o.userAgent = ua } }

// WithRefresherOptions tunes the built-in Refresher (margin, clock).
func WithRefresherOptions(r RefresherOptions) Option {
	return func(o *clientOptions) { o.refresher = r }
}

// WithCOQLPageSize sets the LIMIT used by COQLAll pages (default 2000, Zoho's v8 maximum).
func WithCOQLPageSize(n int) Option { return func(o *clientOptions) { o.coqlPageSize = n } }

// WithMaxResponseBytes caps a response body (default 64 MiB).
func WithMaxResponseBytes(n int64) Option { return func(o *clientOptions) { o.maxBody = n } }

// NewClient builds a client. Without WithTokenSource, cfg must pass Validate.
func NewClient(cfg Config, opts ...Option) (*Client, error) {
	var o clientOptions
	for _, f := range opts {
		f(&o)
	}
	if o.ts == nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	} else if err := cfg.checkValues(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, hc: o.hc, ts: o.ts, logger: o.logger, debug: o.debug, userAgent: o.userAgent, actions: actionTable(),
		coqlPageSize: o.coqlPageSize, maxBody: o.maxBody, limiters: map[string]Limiter{}}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 60 * time.Second, Transport: defaultTransport()}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if o.retry != nil {
		c.retry = *o.retry
	} else {
		c.retry = DefaultRetryPolicy()
	}
	if c.ts == nil {
		ro := o.refresher
		if ro.Logger == nil {
			ro.Logger = c.logger
		}
		c.ts = NewRefresher(cfg, c.hc, &ro)
	}
	if o.crmLimiter != nil {
		c.limiters[APICRM] = o.crmLimiter
	}
	if o.booksLimiter != nil {
		c.limiters[APIBooks] = o.booksLimiter
	}
	if c.userAgent == "" {
		c.userAgent = "zohook"
	}
	if c.coqlPageSize <= 0 {
		c.coqlPageSize = 2000
	}
	if c.maxBody <= 0 {
		c.maxBody = 64 << 20
	}
	c.CRM = &CRMService{c: c}
	c.Books = &BooksService{c: c}
	return c, nil
}

// MaxIdleConnsPerHost is how many idle connections the default transport
// keeps per Zoho host. net/http's default keeps 2: a worker running 16 to 64
// events at once would then open a new TLS connection for most calls and
// close it again. CRM and Books share www.zohoapis.* in most data centers.
const MaxIdleConnsPerHost = 64

// defaultTransport is shared by every client built without WithHTTPClient
// (one per Zoho connection), so their idle connections live in one pool.
var defaultTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	t.MaxIdleConns = 4 * MaxIdleConnsPerHost // accounts, CRM, Books hosts and a spare
	return t
})

// Config returns the client's configuration (print it; it redacts secrets).
func (c *Client) Config() Config { return c.cfg }

// TokenSource returns the token source in use.
func (c *Client) TokenSource() TokenSource { return c.ts }

// request is one logical API call (possibly several HTTP attempts).
type request struct {
	api         string
	method      string
	path        string // escaped, relative to the API base, checked by safeRelPath
	query       url.Values
	header      http.Header
	body        []byte
	contentType string
	retry       *RetryPolicy
	timeout     time.Duration
	debug       bool
}

// rawResult is the HTTP outcome of a request.
type rawResult struct {
	status   int
	header   http.Header
	body     []byte
	attempts int
	// ambiguous: an earlier attempt of this request failed without proof
	// that Zoho did nothing, so this answer may describe a repeat.
	ambiguous bool
}

func (r *rawResult) response() *Response {
	if r == nil {
		return nil
	}
	return &Response{StatusCode: r.status, Header: r.header, Attempts: r.attempts}
}

func (c *Client) base(api, apiDomain string) string {
	if api == APIBooks {
		return c.cfg.BooksBase(apiDomain)
	}
	return c.cfg.CRMBase(apiDomain)
}

// buildURL joins base and rel, refusing anything that leaves the base.
func buildURL(base, rel string, q url.Values) (*url.URL, error) {
	bu, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("zoho: bad API base: %w", err)
	}
	bp := strings.TrimRight(bu.Path, "/")
	// Callers may pass the base path itself ("/crm/v8/Leads"): accept it once.
	unesc, _ := url.PathUnescape(rel)
	if bp != "" && strings.HasPrefix("/"+unesc, bp+"/") {
		rel = strings.TrimPrefix(strings.TrimPrefix(rel, "/"), strings.TrimPrefix(bp, "/")+"/")
	}
	u, err := url.Parse(bu.Scheme + "://" + bu.Host + bp + "/" + strings.TrimPrefix(rel, "/"))
	if err != nil {
		return nil, &PathError{Path: rel, Reason: "not a valid URL path"}
	}
	if u.Host != bu.Host || u.Scheme != bu.Scheme || path.Clean(u.Path) != strings.TrimRight(u.Path, "/") || !strings.HasPrefix(u.Path, bp+"/") {
		return nil, &PathError{Path: rel, Reason: "resolves outside the API base"}
	}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// safeRelPath validates a caller-supplied path relative to an API base and
// returns it escaped. It never contacts anything.
func safeRelPath(p string) (string, error) {
	orig := p
	fail := func(reason string) (string, error) { return "", &PathError{Path: orig, Reason: reason} }
	if strings.TrimSpace(p) == "" {
		return fail("empty path")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fail("control character")
		}
	}
	if strings.HasPrefix(p, "//") || strings.Contains(p, "://") || strings.Contains(p, `\`) {
		return fail("absolute URL or host reference; give a path relative to the API base")
	}
	if strings.ContainsAny(p, "?#") {
		return fail("query or fragment in path; use Query")
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return fail("absolute URL; give a path relative to the API base")
	}
	unesc, err := url.PathUnescape(p)
	if err != nil {
		return fail("bad percent-encoding")
	}
	if strings.ContainsAny(unesc, `\?#`) || strings.Contains(unesc, "//") && strings.HasPrefix(unesc, "//") {
		return fail("encoded separator")
	}
	segs := strings.Split(strings.Trim(unesc, "/"), "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case "":
			return fail("empty path segment")
		case ".", "..":
			return fail("dot segment")
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return fail("control character")
			}
		}
		out = append(out, url.PathEscape(s))
	}
	return strings.Join(out, "/"), nil
}

// segs escapes path segments built from module names and ids.
func segs(parts ...string) (string, error) {
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/\\?#") {
			return "", &PathError{Path: strings.Join(parts, "/"), Reason: fmt.Sprintf("invalid path segment %q", p)}
		}
	}
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = url.PathEscape(p)
	}
	return strings.Join(esc, "/"), nil
}

// do runs a request with auth, limiter, retries and 401-refresh-once.
// On a non-2xx answer it returns the result AND an *Error.
func (c *Client) do(ctx context.Context, r *request) (*rawResult, error) {
	pol := c.retry
	if r.retry != nil {
		pol = *r.retry
	}
	retries, reauthed := 0, false
	attempts := 0
	// ambiguous: an earlier attempt failed in a way that does not prove Zoho
	// did nothing (5xx, lost answer); a later refusal then proves nothing
	// about that attempt (a retried DELETE is refused because the first
	// one landed).
	ambiguous := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("zoho %s: %s: %w", r.api, r.method, err)
		}
		res, err, reauth := c.attempt(ctx, r, &attempts)
		if res != nil {
			res.ambiguous = ambiguous
		}
		if err == nil {
			return res, nil
		}
		if ambiguous {
			err = &maybeAppliedError{err}
		}
		if reauth && !reauthed {
			reauthed = true
			continue
		}
		if retries >= pol.MaxRetries || !pol.retryable(err) {
			return res, err
		}
		if (r.method == http.MethodPost || r.method == http.MethodPatch) && r.retry == nil && !notProcessed(err) {
			// A POST creates (a PATCH may not be idempotent either):
			// repeating it after a 5xx or a broken connection may do it
			// twice. Only answers that guarantee Zoho did nothing (429,
			// token trouble, a connection never made) are retried here; the
			// worker's journal resolves the rest.
			return res, err
		}
		ambiguous = ambiguous || !notProcessed(err)
		var hint time.Duration
		var ze *Error
		if errors.As(err, &ze) {
			hint = ze.RetryAfter
		}
		wait := pol.delay(retries, hint)
		retries++
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// Sleeping past the deadline would only turn Zoho's answer into a ctx error.
			return res, err
		}
		c.logger.LogAttrs(ctx, slog.LevelDebug, "zoho: retrying", slog.String("api", r.api), slog.String("method", r.method),
			slog.String("path", r.path), slog.Int("retry", retries), slog.Duration("wait", wait), slog.String("err", err.Error()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("zoho %s: %s %s: %w (last error: %w)", r.api, r.method, r.path, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// maybeAppliedError marks the final error of a request that was retried
// after an ambiguous failure: an earlier attempt may have been carried out
// even though the last answer says otherwise (NotApplied is false).
type maybeAppliedError struct{ err error }

func (e *maybeAppliedError) Error() string {
	return e.err.Error() + " (after a retry: an earlier attempt may have been carried out)"
}
func (e *maybeAppliedError) Unwrap() error { return e.err }

// attempt performs one HTTP exchange. reauth=true asks the caller to retry
// once after the token was invalidated.
func (c *Client) attempt(ctx context.Context, r *request, attempts *int) (res *rawResult, err error, reauth bool) {
	if l := c.limiters[r.api]; l != nil {
		if err := l.Wait(ctx); err != nil {
			return nil, fmt.Errorf("zoho %s: rate limiter: %w", r.api, err), false
		}
	}
	tok, err := c.ts.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("zoho %s: %w", r.api, err), false
	}
	u, err := buildURL(c.base(r.api, tok.APIDomain), r.path, r.query)
	if err != nil {
		return nil, err, false
	}
	actx := ctx
	if r.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("zoho %s: build request: %w", r.api, err), false
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Authorization", "Zoho-oauthtoken "+tok.AccessToken)
	req.Header.Set("User-Agent", c.userAgent)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	debug := c.debug || r.debug
	if debug {
		c.logRequest(ctx, r, u, req.Header, tok)
	}
	*attempts++
	start := time.Now()
	if rec := exchangesFrom(ctx); rec != nil {
		// Deferred: it sees the final res and err of every return below.
		n := *attempts
		scrub := func(s string) string { return c.scrubSecrets(tok, s) }
		defer func() { recordExchange(rec, r.api, req, r.body, n, time.Since(start), res, err, scrub) }()
	}
	if tracing.On() {
		// One client span per HTTP attempt: method, path template, status
		// and Zoho's code; never the token, the query or the body.
		tmpl := pathTemplate(c.scrubSecrets(tok, u.Path))
		_, span := tracing.Start(ctx, trace.SpanKindClient, r.method+" ", tmpl)
		n := *attempts
		defer func() { endAttemptSpan(span, r.api, r.method, tmpl, u.Host, n, res, err) }()
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("zoho %s: %s %s: %w", r.api, r.method, u.Path, ctx.Err()), false
		}
		if actx.Err() != nil {
			return nil, fmt.Errorf("zoho %s: %s %s: %w: attempt timed out after %s", r.api, r.method, u.Path, errTransport, r.timeout), false
		}
		return nil, fmt.Errorf("zoho %s: %s %s: %w: %w", r.api, r.method, u.Path, errTransport, scrubURLError(err)), false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("zoho %s: %s %s: %w", r.api, r.method, u.Path, ctx.Err()), false
		}
		return nil, fmt.Errorf("zoho %s: %s %s: reading body: %w: %w", r.api, r.method, u.Path, errTransport, err), false
	}
	if int64(len(data)) > c.maxBody {
		return nil, fmt.Errorf("zoho %s: %s %s: response larger than %d bytes", r.api, r.method, u.Path, c.maxBody), false
	}
	res = &rawResult{status: resp.StatusCode, header: resp.Header, body: data, attempts: *attempts}
	if debug {
		c.logResponse(ctx, r, u, res, time.Since(start), tok)
	}
	if resp.StatusCode < 400 {
		return res, nil, false
	}
	ze := decodeError(r.api, r.method, u.Path, resp.StatusCode, resp.Header, data)
	if resp.StatusCode == http.StatusUnauthorized && tokenRejected(ze) {
		c.ts.Invalidate(ctx, tok.AccessToken)
		return res, ze, true
	}
	return res, ze, false
}

// pathTemplate replaces the ids in a URL path by {id}
// (/crm/v8/Deals/5725767000000524157 → /crm/v8/Deals/{id}): any segment
// with a digit, other than an API version (v8), or with a character other
// than letters, '_', '-' and '.', is an id or a value, never a name.
func pathTemplate(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		version := len(s) > 1 && s[0] == 'v' && strings.Trim(s[1:], "0123456789") == ""
		if s == "" || version {
			continue
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-' || r == '.') {
				segs[i] = "{id}"
				break
			}
		}
	}
	return strings.Join(segs, "/")
}

// endAttemptSpan ends an HTTP attempt's span with what exchange.go
// records of it: the status, and Zoho's code (of the error, else of the
// answer). Messages are left out: Zoho quotes field values in them.
func endAttemptSpan(span trace.Span, api, method, tmpl, host string, attempt int, res *rawResult, err error) {
	if span.IsRecording() {
		span.SetAttributes(tracing.ZohoAPI.String(api), tracing.HTTPMethod.String(method), tracing.URLTemplate.String(tmpl),
			tracing.ServerAddress.String(host), tracing.Attempt.Int(attempt))
		code := ""
		var ze *Error
		switch {
		case errors.As(err, &ze):
			code = ze.Code
		case res != nil:
			code, _ = answerCode(res.body)
		}
		if code != "" {
			span.SetAttributes(tracing.ZohoCode.String(code))
		}
		switch {
		case res != nil:
			span.SetAttributes(tracing.HTTPStatus.Int(res.status))
			if res.status >= 400 {
				span.SetAttributes(tracing.ErrorType.String(strconv.Itoa(res.status)))
				span.SetStatus(codes.Error, strings.TrimSpace(strconv.Itoa(res.status)+" "+code))
			}
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			span.SetAttributes(tracing.ErrorType.String("timeout"))
			span.SetStatus(codes.Error, "no answer: timeout or cancelled")
		case err != nil:
			span.SetAttributes(tracing.ErrorType.String("transport"))
			span.SetStatus(codes.Error, "no answer")
		}
	}
	span.End()
}

// tokenRejected: codes after which a fresh token may help (G4).
func tokenRejected(e *Error) bool {
	switch e.Code {
	case "", "INVALID_TOKEN", "AUTHENTICATION_FAILURE", "INVALID_OAUTHTOKEN", "57":
		return true
	}
	return false
}

// decodeError builds an *Error from any Zoho error body (CRM bare object,
// CRM data[]/watch[] arrays, Books {code,message}, legacy 429 shape).
func decodeError(api, method, p string, status int, h http.Header, body []byte) *Error {
	e := &Error{API: api, Method: method, Path: p, HTTPStatus: status}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		e.RetryAfter = retryAfter(h, time.Now())
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		e.Message = http.StatusText(status)
		return e
	}
	e.Code = codeString(m["code"])
	if s, ok := m["error"].(string); ok && (e.Code == "" || isNumeric(e.Code)) && api == APICRM {
		e.Code = s // legacy {"code":429,"error":"TOO_MANY_REQUESTS"}
	}
	e.Message, _ = m["message"].(string)
	if e.Message == "" {
		e.Message, _ = m["error_info"].(string)
	}
	e.Details, _ = m["details"].(map[string]any)
	for _, key := range []string{"data", "watch"} {
		if arr, ok := m[key].([]any); ok {
			for i, it := range arr {
				im, _ := it.(map[string]any)
				if im == nil || im["status"] == "success" {
					continue
				}
				re := RecordError{Index: i, Code: codeString(im["code"]), Message: str(im["message"])}
				re.Details, _ = im["details"].(map[string]any)
				e.RecordErrors = append(e.RecordErrors, re)
			}
			if e.Code == "" && len(e.RecordErrors) > 0 {
				e.Code, e.Message = e.RecordErrors[0].Code, e.RecordErrors[0].Message
			}
		}
	}
	return e
}

func codeString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

func isNumeric(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// retryAfter reads Retry-After (seconds or HTTP date) or Books'
// X-Rate-Limit-Reset (seconds until the window resets).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
			return time.Duration(n * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	if v := strings.TrimSpace(h.Get("X-Rate-Limit-Reset")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 && n < 24*3600 {
			return time.Duration(n * float64(time.Second))
		}
	}
	return 0
}

// jsonBody marshals v for a request body.
func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("zoho: encoding request body: %w", err)
	}
	return b, nil
}

// decodeJSON decodes a response body keeping numbers exact (Zoho ids are
// 19-digit numbers in some places; float64 would corrupt them).
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("zoho: decoding response: %w", err)
	}
	return nil
}

// notProcessed reports failures after which Zoho certainly did not act on
// the request: rate limiting, token errors, or a connection that was never
// established.
func notProcessed(err error) bool {
	if _, ok := IsRateLimited(err); ok {
		return true
	}
	var te *TokenError
	if errors.As(err, &te) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
