package zohotest

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Call is one request the fake received, recorded in arrival order.
type Call struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	Status int // 0 while the request is still being served; 499 if the client went away
	At     time.Time
}

func (s *Server) recordCall(r *http.Request, body []byte) int {
	c := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body, At: s.now()}
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

func (s *Server) setCallStatus(i, status int) {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	if i < len(s.calls) { // ResetCalls may have run meanwhile
		s.calls[i].Status = status
	}
}

// Calls returns every request received so far, in arrival order.
func (s *Server) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the calls whose method matches (""= any) and whose path starts with pathPrefix.
func (s *Server) CallsTo(method, pathPrefix string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if (method == "" || strings.EqualFold(method, c.Method)) && strings.HasPrefix(c.Path, pathPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.calls = nil
}
