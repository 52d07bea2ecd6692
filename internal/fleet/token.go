package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho"
)

// Refresher mints a new access token from the refresh token; *zoho.OAuth satisfies it.
type Refresher interface {
	Refresh(ctx context.Context) (*zoho.Grant, error)
}

var (
	_ Refresher        = (*zoho.OAuth)(nil)
	_ zoho.TokenSource = (*TokenSource)(nil)
)

// ErrRefreshFailed is matched (errors.Is) by every *RefreshError.
var ErrRefreshFailed = errors.New("fleet: access token refresh failed")

// RefreshError is returned by TokenSource.Token when no valid access token
// exists and the fleet's last refresh failed. Until RetryAt no process
// refreshes again (Zoho throttles refreshes: 10 per 10 minutes).
type RefreshError struct {
	// Conn is the connection name.
	Conn string
	// By is the holder id of the process whose refresh failed.
	By string
	// RetryAt is the earliest time the fleet will try again.
	RetryAt time.Time
	// Err is the cause: the *zoho.TokenError or *zoho.Error from Zoho. When
	// another process failed, it is rebuilt from the stored code and message
	// (a *zoho.TokenError when the code is known).
	Err error
}

func (e *RefreshError) Error() string {
	return fmt.Sprintf("fleet: no access token for connection %q: refresh by %s failed (next attempt after %s): %v",
		e.Conn, e.By, e.RetryAt.Format(time.RFC3339), e.Err)
}

func (e *RefreshError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRefreshFailed) true.
func (e *RefreshError) Is(target error) bool { return target == ErrRefreshFailed }

// TokenOption configures NewTokenSource.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	bucket         string
	conn           string
	replicas       int
	margin         time.Duration
	lockTTL        time.Duration
	refreshTimeout time.Duration
	failureBackoff time.Duration
	holder         string
	now            func() time.Time
	logger         *slog.Logger
	kv             events.KVOptions
}

// WithTokenBucket sets the KV bucket (default "zohook_tokens").
func WithTokenBucket(name string) TokenOption { return func(o *tokenOptions) { o.bucket = name } }

// WithConnection sets the connection name, the key prefix in the bucket
// (default "default"); one per Zoho refresh token.
func WithConnection(name string) TokenOption { return func(o *tokenOptions) { o.conn = name } }

// WithTokenReplicas sets the replicas used if the bucket must be created (default 1).
func WithTokenReplicas(n int) TokenOption { return func(o *tokenOptions) { o.replicas = n } }

// WithMargin refreshes this long before expiry (default 5 min).
func WithMargin(d time.Duration) TokenOption { return func(o *tokenOptions) { o.margin = d } }

// WithLockTTL sets the refresh lock's ttl (default 30 s): a process that dies
// while refreshing blocks the others at most this long (plus one poll).
func WithLockTTL(d time.Duration) TokenOption { return func(o *tokenOptions) { o.lockTTL = d } }

// WithRefreshTimeout bounds one token request (default: 2/3 of the lock
// ttl, so that a slow request does not outlive the lock that protects it).
func WithRefreshTimeout(d time.Duration) TokenOption {
	return func(o *tokenOptions) { o.refreshTimeout = d }
}

// WithFailureBackoff sets how long the fleet waits after a failed refresh
// before anyone tries again (default 1 min). Zoho allows 10 refreshes per
// 10 minutes per refresh token and answers "Access Denied" beyond: a
// shorter backoff risks burning the allowance.
func WithFailureBackoff(d time.Duration) TokenOption {
	return func(o *tokenOptions) { o.failureBackoff = d }
}

// WithHolderID names this process in the KV values and logs (default DefaultHolderID()).
func WithHolderID(id string) TokenOption { return func(o *tokenOptions) { o.holder = id } }

// WithClock sets the clock for expiry decisions (default time.Now). It must
// be the clock the Refresher used to compute Grant.Expiry.
func WithClock(now func() time.Time) TokenOption { return func(o *tokenOptions) { o.now = now } }

// WithTokenKV sets how the bucket's calls are bounded and reported
// (events.KVOptions; its Logger defaults to the source's logger).
func WithTokenKV(kv events.KVOptions) TokenOption { return func(o *tokenOptions) { o.kv = kv } }

// WithTokenLogger sets the logger (default slog.Default()). Tokens are never logged.
func WithTokenLogger(l *slog.Logger) TokenOption { return func(o *tokenOptions) { o.logger = l } }

// tokenRecord is the JSON stored under "<conn>.token".
type tokenRecord struct {
	AccessToken string         `json:"access_token,omitempty"`
	APIDomain   string         `json:"api_domain,omitempty"`
	Expiry      time.Time      `json:"expiry"`
	MintedBy    string         `json:"minted_by,omitempty"`
	MintedAt    time.Time      `json:"minted_at"`
	Failure     *refreshFailed `json:"failure,omitempty"`
}

// refreshFailed records the fleet's last failed refresh (no secrets: Zoho's
// error code and the zoho package's scrubbed message).
type refreshFailed struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	RetryAt time.Time `json:"retry_at"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
	// HTTPStatus of the token response when Zoho answered.
	HTTPStatus int `json:"http_status,omitempty"`
}

// String keeps the access token out of %v.
func (r tokenRecord) String() string {
	return fmt.Sprintf("fleet.tokenRecord{APIDomain:%q Expiry:%s MintedBy:%q}", r.APIDomain, r.Expiry.Format(time.RFC3339), r.MintedBy)
}

// LogValue keeps the access token out of logs.
func (r tokenRecord) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_domain", r.APIDomain), slog.Time("expiry", r.Expiry), slog.String("minted_by", r.MintedBy))
}

func (r *tokenRecord) token() *zoho.Token {
	return &zoho.Token{AccessToken: r.AccessToken, APIDomain: r.APIDomain, Expiry: r.Expiry}
}

// TokenSource shares one Zoho access token between the processes of the
// fleet through NATS KV. Token serves an in-memory copy while it is more
// than the margin away from expiry; otherwise it reads the KV copy, and if
// that is stale too, one process (holding the refresh lock) refreshes while
// the others wait for the new token to appear.
type TokenSource struct {
	oauth Refresher
	o     tokenOptions
	kv    jetstream.KeyValue
	lock  *Lease
	key   string

	mu        sync.Mutex
	cur       *zoho.Token
	invalid   string    // access token Zoho rejected: a KV copy of it is stale
	coolUntil time.Time // fleet refresh backoff seen by this process
	coolErr   *RefreshError
	inflight  *tokenCall
}

type tokenCall struct {
	done chan struct{}
	tok  *zoho.Token
	err  error
}

// NewTokenSource opens (or creates) the token bucket and returns a
// TokenSource refreshing through oauth.
func NewTokenSource(ctx context.Context, js jetstream.JetStream, oauth Refresher, opts ...TokenOption) (*TokenSource, error) {
	o := tokenOptions{
		bucket: DefaultTokenBucket, conn: "default", replicas: 1,
		margin: 5 * time.Minute, lockTTL: 30 * time.Second, failureBackoff: time.Minute,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.refreshTimeout <= 0 {
		o.refreshTimeout = o.lockTTL * 2 / 3
	}
	if o.holder == "" {
		o.holder = DefaultHolderID()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	switch {
	case js == nil || oauth == nil:
		return nil, errors.New("fleet: token source: nil JetStream or Refresher")
	case !validKey(o.conn) || !validKey(o.conn+".token"):
		return nil, fmt.Errorf("fleet: token source: invalid connection name %q", o.conn)
	case o.lockTTL <= 0 || o.margin < 0 || o.failureBackoff <= 0:
		return nil, errors.New("fleet: token source: lock ttl and failure backoff must be positive, margin not negative")
	}
	kv, err := ensureKV(ctx, js, TokenBucketSpec(o.bucket, o.replicas).KeyValueConfig, o.kv.LoggingTo(o.logger))
	if err != nil {
		return nil, err
	}
	lock, err := NewLease(js, o.conn+".lock", o.holder, o.lockTTL,
		WithLeaseBucket(o.bucket), WithLeaseReplicas(o.replicas), WithLeaseLogger(o.logger), WithLeaseKV(o.kv))
	if err != nil {
		return nil, err
	}
	lock.kv = kv
	return &TokenSource{oauth: oauth, o: o, kv: kv, lock: lock, key: o.conn + ".token"}, nil
}

// Token returns a valid access token: the cached one, the fleet's, or a new one.
func (t *TokenSource) Token(ctx context.Context) (*zoho.Token, error) {
	t.mu.Lock()
	now := t.o.now()
	if t.cur != nil && now.Before(t.cur.Expiry.Add(-t.o.margin)) {
		tok := t.cur
		t.mu.Unlock()
		return tok, nil
	}
	if now.Before(t.coolUntil) {
		// The fleet is backing off after a failed refresh: no KV traffic,
		// no refresh; a token that still works beats an error.
		tok, err := t.cur, error(t.coolErr)
		t.mu.Unlock()
		if tok != nil && now.Before(tok.Expiry) {
			return tok, nil
		}
		return nil, err
	}
	call := t.inflight
	if call == nil {
		call = &tokenCall{done: make(chan struct{})}
		t.inflight = call
		// Detached: one impatient caller must not fail the fetch the
		// others are waiting for.
		go t.run(context.WithoutCancel(ctx), call)
	}
	t.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fleet: waiting for access token: %w", ctx.Err())
	}
}

// Invalidate drops the cached token if it is still accessToken (Zoho
// rejected it); the next Token then treats a KV copy of it as stale too.
// A stale accessToken (already replaced) changes nothing, so N workers
// hitting the same 401 cause one refresh.
func (t *TokenSource) Invalidate(_ context.Context, accessToken string) {
	if accessToken == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && t.cur.AccessToken == accessToken {
		t.cur = nil
		t.invalid = accessToken
	}
}

func (t *TokenSource) run(ctx context.Context, call *tokenCall) {
	// Waiting for a dead refresher costs up to a lock ttl, then our own
	// refresh up to the refresh timeout.
	ctx, cancel := context.WithTimeout(ctx, 2*t.o.lockTTL+t.o.refreshTimeout+5*time.Second)
	defer cancel()
	tok, err := t.fetch(ctx)
	t.mu.Lock()
	t.inflight = nil
	t.mu.Unlock()
	call.tok, call.err = tok, err
	close(call.done)
}

// usable: present, not the one Zoho rejected, and outside the margin.
func (t *TokenSource) usable(r *tokenRecord, invalid string, now time.Time) bool {
	return r != nil && r.AccessToken != "" && r.AccessToken != invalid && now.Before(r.Expiry.Add(-t.o.margin))
}

func (t *TokenSource) read(ctx context.Context) (*tokenRecord, uint64, error) {
	e, err := t.kv.Get(ctx, t.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("fleet: read token %s: %w", t.key, err)
	}
	var r tokenRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		// A corrupt record is replaced by the next refresh (CAS on its revision).
		t.o.logger.Warn("fleet: token record unreadable, refreshing", "key", t.key, "err", err)
		return nil, e.Revision(), nil
	}
	return &r, e.Revision(), nil
}

// adopt makes tok the cached token and forgets a rejected one it replaces.
func (t *TokenSource) adopt(tok *zoho.Token) *zoho.Token {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur = tok
	if tok.AccessToken != t.invalid {
		t.invalid = ""
	}
	t.coolUntil, t.coolErr = time.Time{}, nil
	return tok
}

func (t *TokenSource) snapshot() (cur *zoho.Token, invalid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur, t.invalid
}

// fetch gets a fresh token from KV, or refreshes under the fleet lock, or
// waits for the process that does.
func (t *TokenSource) fetch(ctx context.Context) (*zoho.Token, error) {
	// Watch first: an update between our read and our wait must wake us.
	w, err := t.kv.Watch(ctx, t.o.conn+".*", jetstream.UpdatesOnly())
	if err != nil {
		return t.fallback(fmt.Errorf("fleet: watch %s: %w", t.key, err))
	}
	defer func() { _ = w.Stop() }()
	for {
		rec, _, err := t.read(ctx)
		if err != nil {
			return t.fallback(err)
		}
		_, invalid := t.snapshot()
		now := t.o.now()
		if t.usable(rec, invalid, now) {
			return t.adopt(rec.token()), nil
		}
		if rec != nil && rec.Failure != nil && now.Before(rec.Failure.RetryAt) {
			return t.coolDown(rec, invalid, now)
		}
		ok, err := t.lock.Acquire(ctx)
		if err != nil {
			t.o.logger.Warn("fleet: refresh lock unavailable", "key", t.key, "err", err)
		}
		if ok {
			return t.refreshLocked(ctx)
		}
		wait := max(t.o.lockTTL/4, time.Millisecond)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return t.fallback(fmt.Errorf("fleet: waiting for the fleet's token refresh: %w", ctx.Err()))
		case <-w.Updates():
		case <-timer.C:
		}
		timer.Stop()
	}
}

// fallback serves the cached token while it has not expired when KV is
// unreachable: losing NATS must not stop Zoho calls that can go on.
func (t *TokenSource) fallback(err error) (*zoho.Token, error) {
	cur, _ := t.snapshot()
	if cur != nil && t.o.now().Before(cur.Expiry) {
		t.o.logger.Warn("fleet: using the cached access token", "err", err, "expiry", cur.Expiry)
		return cur, nil
	}
	return nil, err
}

// coolDown answers during the fleet's backoff after a failed refresh.
func (t *TokenSource) coolDown(rec *tokenRecord, invalid string, now time.Time) (*zoho.Token, error) {
	f := rec.Failure
	var cause error = errors.New(f.Message)
	if f.Code != "" {
		cause = &zoho.TokenError{Code: f.Code, Description: f.Message, HTTPStatus: f.HTTPStatus}
	}
	rerr := &RefreshError{Conn: t.o.conn, By: f.By, RetryAt: f.RetryAt, Err: cause}
	t.mu.Lock()
	t.coolUntil, t.coolErr = f.RetryAt, rerr
	cur := t.cur
	t.mu.Unlock()
	if rec.AccessToken != "" && rec.AccessToken != invalid && now.Before(rec.Expiry) {
		t.mu.Lock()
		t.cur = rec.token()
		t.mu.Unlock()
		return rec.token(), nil
	}
	if cur != nil && now.Before(cur.Expiry) {
		return cur, nil
	}
	return nil, rerr
}

// refreshLocked runs with the fleet lock held.
func (t *TokenSource) refreshLocked(ctx context.Context) (*zoho.Token, error) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := t.lock.Release(rctx); err != nil {
			t.o.logger.Warn("fleet: refresh lock release failed; it expires by itself", "key", t.key, "err", err)
		}
	}()
	// Someone may have refreshed between our read and our lock.
	rec, rev, err := t.read(ctx)
	if err != nil {
		return t.fallback(err)
	}
	_, invalid := t.snapshot()
	now := t.o.now()
	if t.usable(rec, invalid, now) {
		return t.adopt(rec.token()), nil
	}
	if rec != nil && rec.Failure != nil && now.Before(rec.Failure.RetryAt) {
		return t.coolDown(rec, invalid, now)
	}
	rctx, cancel := context.WithTimeout(ctx, t.o.refreshTimeout)
	g, rerr := t.oauth.Refresh(rctx)
	cancel()
	now = t.o.now()
	if rerr != nil {
		return t.recordFailure(ctx, rec, rev, invalid, now, rerr)
	}
	nrec := tokenRecord{AccessToken: g.AccessToken, APIDomain: g.APIDomain, Expiry: g.Expiry, MintedBy: t.o.holder, MintedAt: now}
	if err := t.write(ctx, &nrec, rev); err != nil {
		// The token is valid whatever KV says: use it here; the others
		// will refresh on their own (a Zoho account allows several live tokens).
		t.o.logger.Warn("fleet: could not share the new access token", "key", t.key, "err", err)
	} else {
		t.o.logger.Info("fleet: access token refreshed", "key", t.key, "holder", t.o.holder, "expiry", g.Expiry)
	}
	return t.adopt(nrec.token()), nil
}

func (t *TokenSource) write(ctx context.Context, r *tokenRecord, rev uint64) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("fleet: encode token record: %w", err)
	}
	if rev == 0 {
		_, err = t.kv.Create(ctx, t.key, b)
	} else {
		_, err = t.kv.Update(ctx, t.key, b, rev)
	}
	if err != nil {
		return fmt.Errorf("fleet: write token %s: %w", t.key, err)
	}
	return nil
}

// recordFailure publishes the failure so that no process of the fleet
// retries before RetryAt, then serves a still-valid token or fails.
func (t *TokenSource) recordFailure(ctx context.Context, rec *tokenRecord, rev uint64, invalid string, now time.Time, cause error) (*zoho.Token, error) {
	backoff := t.o.failureBackoff
	var te *zoho.TokenError
	code, msg, status := "", cause.Error(), 0
	if errors.As(cause, &te) {
		code, msg, status = te.Code, te.Description, te.HTTPStatus
	}
	nrec := tokenRecord{}
	if rec != nil {
		nrec = *rec
	}
	nrec.Failure = &refreshFailed{By: t.o.holder, At: now, RetryAt: now.Add(backoff), Code: code, Message: msg, HTTPStatus: status}
	if err := t.write(ctx, &nrec, rev); err != nil {
		t.o.logger.Warn("fleet: could not share the refresh failure", "key", t.key, "err", err)
	}
	t.o.logger.Error("fleet: access token refresh failed", "key", t.key, "err", cause, "retry_at", nrec.Failure.RetryAt)
	rerr := &RefreshError{Conn: t.o.conn, By: t.o.holder, RetryAt: nrec.Failure.RetryAt, Err: cause}
	t.mu.Lock()
	t.coolUntil, t.coolErr = nrec.Failure.RetryAt, rerr
	cur := t.cur
	t.mu.Unlock()
	if nrec.AccessToken != "" && nrec.AccessToken != invalid && now.Before(nrec.Expiry) {
		tok := nrec.token()
		t.mu.Lock()
		t.cur = tok
		t.mu.Unlock()
		return tok, nil
	}
	if cur != nil && cur.AccessToken != invalid && now.Before(cur.Expiry) {
		return cur, nil
	}
	return nil, rerr
}
