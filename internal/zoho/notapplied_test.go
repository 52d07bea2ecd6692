package zoho

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

// NotApplied decides whether the worker may treat a failed write as not in
// doubt: only answers and refusals that prove Zoho did nothing qualify.
func TestNotApplied(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"crm 400", &Error{API: APICRM, HTTPStatus: 400, Code: "INVALID_DATA"}, true},
		{"books 404", fmt.Errorf("wrapped: %w", &Error{API: APIBooks, HTTPStatus: 404, Code: "1002"}), true},
		{"429", &Error{API: APICRM, HTTPStatus: 429}, true},
		{"401", &Error{API: APICRM, HTTPStatus: 401, Code: "INVALID_TOKEN"}, true},
		{"bad input", &InputError{Action: "crm.raw_request", Input: "path", Reason: "x"}, true},
		{"bad path", &PathError{Path: "../x", Reason: "escapes"}, true},
		{"no token", &TokenError{Code: "invalid_code"}, true},
		{"no credentials", ErrNoCredentials, true},
		{"every record failed", &BatchError{Total: 2, Failed: make([]RecordError, 2)}, true},
		{"some records failed", &BatchError{Total: 2, Failed: make([]RecordError, 1)}, false},
		{"500", &Error{API: APICRM, HTTPStatus: 500}, false},
		{"timeout", context.DeadlineExceeded, false},
		{"connection reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, false},
	}
	for _, c := range cases {
		if got := NotApplied(c.err); got != c.want {
			t.Errorf("%s: NotApplied = %v, want %v", c.name, got, c.want)
		}
	}
}

// Books' daily quota (code 45) is a rate limit whatever the HTTP status it
// comes with: retried later, never a permanent failure.
func TestBooksDailyQuotaIsRetryable(t *testing.T) {
	err := &Error{API: APIBooks, HTTPStatus: 400, Code: "45"}
	if _, ok := IsRateLimited(err); !ok || !IsRetryable(err) {
		t.Fatalf("code 45: rate limited %v, retryable %v; want both", ok, IsRetryable(err))
	}
}
