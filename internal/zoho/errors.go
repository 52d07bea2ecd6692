package zoho

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// API names used in Error.API.
const (
	APICRM      = "crm"
	APIBooks    = "books"
	APIAccounts = "accounts"
)

// ErrNotFound is wrapped when a record does not exist (CRM answers 204 to a
// GET of an unknown id, Books code 1002, HTTP 404). Use IsNotFound.
var ErrNotFound = errors.New("zoho: not found")

// Error is a request-level failure reported by Zoho (or an HTTP status
// without a decodable body). It never contains tokens or secrets: only the
// method, the path (no query) and Zoho's own code/message/details.
type Error struct {
	// HTTPStatus is the response status code.
	HTTPStatus int
	// Code is the CRM code ("INVALID_TOKEN") or the Books numeric code as a string ("1002").
	Code string
	// Message is Zoho's message.
	Message string
	// Details is the CRM "details" object (nil for Books).
	Details map[string]any
	// API is "crm", "books" or "accounts".
	API string
	// Method and Path identify the request (path without the query string).
	Method, Path string
	// RecordErrors holds per-record errors when a write failed as a whole
	// with a data[] array (CRM answers 400 with data[] when every record fails).
	RecordErrors []RecordError
	// RetryAfter is what Zoho asked us to wait (Retry-After or X-Rate-Limit-Reset), 0 when unknown.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zoho %s: %s %s: HTTP %d", e.API, e.Method, e.Path, e.HTTPStatus)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.RecordErrors) > 0 {
		fmt.Fprintf(&b, " (%d record errors, first: %s)", len(e.RecordErrors), e.RecordErrors[0].Error())
	}
	return b.String()
}

// Is lets errors.Is(err, ErrNotFound) match 404s and Books code 1002.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && (e.HTTPStatus == 404 || e.Code == "1002")
}

// Retryable reports whether repeating the request later may succeed.
func (e *Error) Retryable() bool {
	switch {
	case e.HTTPStatus == 429, e.HTTPStatus >= 500:
		return true
	case e.Code == "TOO_MANY_REQUESTS", e.Code == "44", e.Code == "45", e.Code == "1070":
		return true
	}
	return false
}

// RecordError is the error of one record in a batch write.
type RecordError struct {
	// Index is the position of the record in the caller's input slice.
	Index   int
	Code    string
	Message string
	Details map[string]any
}

func (e RecordError) Error() string {
	s := fmt.Sprintf("record %d: %s: %s", e.Index, e.Code, e.Message)
	if f, ok := e.Details["api_name"].(string); ok {
		s += " (field " + f + ")"
	}
	return s
}

// BatchError is returned by the batch writers (Create/Update/Upsert/Delete)
// when at least one record failed. The results slice returned next to it is
// still complete: successes carry ids, failures carry their code. Decision:
// partial failure is an error, because silently ignoring a failed record
// breaks exactly-once processing; callers that accept partial success can
// errors.As the *BatchError and carry on.
type BatchError struct {
	API    string
	Total  int
	Failed []RecordError
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "zoho %s: %d of %d records failed", e.API, len(e.Failed), e.Total)
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-3)
			break
		}
		b.WriteString("; " + f.Error())
	}
	return b.String()
}

// AllFailed reports whether no record succeeded.
func (e *BatchError) AllFailed() bool { return len(e.Failed) == e.Total }

// TokenError is an error answer of the Zoho Accounts token endpoint (often
// an HTTP 200 carrying {"error": ...}).
type TokenError struct {
	// Code is Zoho's "error" value: invalid_code, invalid_client, invalid_client_secret, Access Denied, ...
	Code string
	// Description is error_description when present.
	Description string
	// HTTPStatus of the token response.
	HTTPStatus int
}

func (e *TokenError) Error() string {
	s := "zoho accounts: token request failed: " + e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Throttled reports the "Access Denied" answer given when more than 10 tokens
// were requested in 10 minutes: retry later, never immediately (G1).
func (e *TokenError) Throttled() bool {
	return strings.EqualFold(e.Code, "Access Denied") || strings.EqualFold(e.Code, "access_denied")
}

// Permanent reports failures that no retry can fix: revoked/used code or
// refresh token, unknown client in this DC, wrong secret or redirect URI.
func (e *TokenError) Permanent() bool {
	switch strings.ToLower(e.Code) {
	case "invalid_code", "invalid_client", "invalid_client_secret", "invalid_redirect_uri", "unauthorized_client", "invalid_grant":
		return true
	}
	return false
}

// PathError is returned by Raw (and Books entity paths) when a path is not
// strictly relative to the API base. No request is sent.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string { return fmt.Sprintf("zoho: refused path %q: %s", e.Path, e.Reason) }

// InputError reports a bad action input (RunAction) or argument.
type InputError struct {
	Action string
	Input  string
	Reason string
}

func (e *InputError) Error() string {
	if e.Action == "" {
		return fmt.Sprintf("zoho: input %q: %s", e.Input, e.Reason)
	}
	return fmt.Sprintf("zoho: action %s: input %q: %s", e.Action, e.Input, e.Reason)
}

// IsRetryable reports whether err is transient: network errors, HTTP 5xx and
// 429, Books codes 44/1070 and the token endpoint's throttle. Context
// cancellation and deadline are not retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ze *Error
	if errors.As(err, &ze) {
		return ze.Retryable()
	}
	var te *TokenError
	if errors.As(err, &te) {
		return te.Throttled()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, errTransport)
}

// errTransport marks failures of the HTTP round trip itself (connection
// refused/reset, truncated body).
var errTransport = errors.New("zoho: transport error")

// IsRateLimited reports whether err is a rate-limit answer and how long Zoho
// asked to wait (0 when it did not say).
func IsRateLimited(err error) (wait time.Duration, ok bool) {
	var ze *Error
	if errors.As(err, &ze) && (ze.HTTPStatus == 429 || ze.Code == "TOO_MANY_REQUESTS" || ze.Code == "44" || ze.Code == "45" || ze.Code == "1070") {
		return ze.RetryAfter, true
	}
	var te *TokenError
	if errors.As(err, &te) && te.Throttled() {
		return 0, true
	}
	return 0, false
}

// IsAuth reports authentication/authorization failures that need a human:
// HTTP 401/403 after the automatic refresh, Books code 57, permanent token
// errors and missing credentials.
func IsAuth(err error) bool {
	if errors.Is(err, ErrNoCredentials) {
		return true
	}
	var ze *Error
	if errors.As(err, &ze) {
		return ze.HTTPStatus == 401 || ze.HTTPStatus == 403 || ze.Code == "57"
	}
	var te *TokenError
	return errors.As(err, &te) && te.Permanent()
}

// IsNotFound reports a missing record or URL (CRM 204 on get, HTTP 404, Books 1002).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// NotApplied reports failures that prove Zoho did not carry the request
// out, so sending it again cannot do anything twice: it was refused before
// it was sent (bad input or path, no access token, no credentials), or Zoho
// answered 4xx (rejected, rate-limited, unauthorized) or failed every record
// of a batch. Timeouts, 5xx and broken connections are not among them: Zoho
// may have acted before the answer was lost.
func NotApplied(err error) bool {
	var ma *maybeAppliedError
	if err == nil || errors.As(err, &ma) {
		return false
	}
	var (
		ie *InputError
		pe *PathError
		te *TokenError
		ze *Error
		be *BatchError
	)
	switch {
	case errors.As(err, &ie), errors.As(err, &pe), errors.As(err, &te), errors.Is(err, ErrNoCredentials):
		return true
	case errors.As(err, &ze):
		return ze.HTTPStatus >= 400 && ze.HTTPStatus < 500
	case errors.As(err, &be):
		return be.AllFailed()
	}
	return false
}

// MaybeApplied reports the final error of a request the client retried
// after an ambiguous failure (a 5xx, a lost answer): whatever the last
// answer says, an earlier attempt may have been carried out. The worker
// treats the step as in doubt rather than as refused.
func MaybeApplied(err error) bool {
	var ma *maybeAppliedError
	return errors.As(err, &ma)
}
