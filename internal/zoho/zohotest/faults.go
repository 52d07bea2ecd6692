package zohotest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault makes matching requests fail or slow down.
type Fault struct {
	Method     string        // "" = any
	PathPrefix string        // e.g. "/books/v3/invoices", "/crm/v8/Deals", "/oauth/v2/token"
	Status     int           // e.g. 429, 500, 503, 400; 0 = only delay, then serve normally
	Body       string        // "" = the Zoho-shaped default body for that API and status
	RetryAfter time.Duration // if > 0, sent as Retry-After (whole seconds, rounded up)
	Delay      time.Duration // sleep before answering (for client timeouts)
	// AnswerDelay: process the request normally, then hold the answer this
	// long: a client that gives up (or dies) meanwhile never learns that
	// Zoho acted. Ignored when Status is set.
	AnswerDelay time.Duration
	Times       int // how many matching requests it applies to; 0 = until ClearFaults
}

type faultEntry struct {
	f    Fault
	left int // remaining uses when f.Times > 0
}

// Inject adds a fault; faults are tried in the order they were injected and the first match applies.
func (s *Server) Inject(f Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, &faultEntry{f: f, left: f.Times})
}

// ClearFaults removes all faults.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = nil
}

func (s *Server) matchFault(r *http.Request) (Fault, bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i, e := range s.faults {
		if e.f.Method != "" && !strings.EqualFold(e.f.Method, r.Method) {
			continue
		}
		if !strings.HasPrefix(r.URL.Path, e.f.PathPrefix) {
			continue
		}
		if e.f.Times > 0 {
			e.left--
			if e.left <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return e.f, true
	}
	return Fault{}, false
}

func faultResponse(f Fault, kind apiKind) *response {
	var resp *response
	if f.Body != "" {
		resp = &response{status: f.Status, header: http.Header{"Content-Type": {"application/json;charset=UTF-8"}}, body: []byte(f.Body)}
	} else {
		resp = jsonResp(f.Status, defaultFaultBody(kind, f.Status))
	}
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		resp.header.Set("Retry-After", strconv.Itoa(secs))
	}
	return resp
}

// defaultFaultBody returns the body Zoho sends for a status on each API (§1.3, §2.3, §7, §8.3).
func defaultFaultBody(kind apiKind, status int) any {
	switch kind {
	case apiAccounts:
		if status == http.StatusTooManyRequests || status == http.StatusForbidden {
			return accessDenied()
		}
		return map[string]any{"error": "server_error", "status": "failure"}
	case apiBooks:
		switch {
		case status == http.StatusTooManyRequests:
			return booksErr(44, booksRateMsg)
		case status == http.StatusUnauthorized:
			return booksErr(57, "You are not authorized to perform this operation")
		case status == http.StatusNotFound:
			return booksErr(5, "Invalid URL Passed")
		case status >= 500:
			return booksErr(1000, "Internal error")
		default:
			return booksErr(2, "Invalid value passed")
		}
	default:
		switch {
		case status == http.StatusTooManyRequests:
			return crmTooMany()
		case status == http.StatusUnauthorized:
			return crmErr("INVALID_TOKEN", "invalid oauth token", nil)
		case status == http.StatusForbidden:
			return crmErr("NO_PERMISSION", "permission denied", nil)
		case status == http.StatusNotFound:
			return crmErr("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", nil)
		case status >= 500:
			return crmErr("INTERNAL_ERROR", "Internal server error occurred.", nil)
		default:
			return crmErr("INVALID_DATA", "invalid data", nil)
		}
	}
}
