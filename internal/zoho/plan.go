package zoho

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// PlannedRequest is one HTTP request an action would send to Zoho.
type PlannedRequest struct {
	Method string
	// URL is absolute, query included (organization_id, wf_trigger, ...).
	URL string
	// Header holds Content-Type and the headers a raw request sets; the
	// Authorization and User-Agent headers the client adds are left out.
	Header http.Header
	// Body is the body as sent: JSON, a form, or multipart/form-data (whose
	// boundary is random, so it differs from one plan to the next).
	Body []byte
}

// ContentType is the request's media type without parameters ("" when
// there is no body).
func (p PlannedRequest) ContentType() string {
	ct, _, _ := strings.Cut(p.Header.Get("Content-Type"), ";")
	return strings.TrimSpace(ct)
}

// maxPlanned bounds the requests one plan may record: an action that pages
// (all: true) stops after the first page because the planned answers say no
// more follow, so a plan that keeps going is a bug, not a big list.
const maxPlanned = 100

// PlanAction returns the requests RunAction would send for the action and
// inputs, sending nothing. It runs RunAction itself, with a transport that
// records each request instead of sending it and answers with an empty
// success, so the method, URL, query and body are the ones RunAction builds
// (there is no second copy of the request building to drift). Inputs the
// client refuses give the same *InputError or *PathError as RunAction.
//
// Only the first request of a paging action (all: true) is planned: the
// next pages depend on Zoho's answers. cfg needs no credentials; its URLs
// and DC decide the base URL, its BooksOrgID the organization_id Books calls
// carry when the inputs give none.
func PlanAction(ctx context.Context, cfg Config, action string, in map[string]any) ([]PlannedRequest, error) {
	rec := &planTransport{}
	c, err := NewClient(cfg,
		WithTokenSource(planToken{}),
		WithHTTPClient(&http.Client{Transport: rec}),
		WithRetryPolicy(RetryPolicy{}),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, fmt.Errorf("zoho plan: %w", err)
	}
	_, err = c.RunAction(ctx, action, in)
	reqs := rec.planned()
	if err != nil && (len(reqs) == 0 || !answerError(err)) {
		return reqs, err
	}
	return reqs, nil
}

// answerError reports errors that come from the planned answers rather
// than from the inputs: those say nothing about the requests.
func answerError(err error) bool {
	var ze *Error
	var be *BatchError
	return errors.As(err, &ze) || errors.As(err, &be)
}

// planToken is the token source of a plan: no Zoho account is involved.
type planToken struct{}

func (planToken) Token(context.Context) (*Token, error) {
	return &Token{AccessToken: "planned", Expiry: time.Now().Add(time.Hour)}, nil
}

func (planToken) Invalidate(context.Context, string) {}

// planTransport records requests and answers each with a success that
// keeps the action going without inventing data: one success item per
// record written (CRM checks the count), no further pages.
type planTransport struct {
	mu   sync.Mutex
	reqs []PlannedRequest
}

func (p *planTransport) planned() []PlannedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PlannedRequest(nil), p.reqs...)
}

func (p *planTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("zoho plan: reading request body: %w", err)
		}
		body = b
	}
	h := r.Header.Clone()
	h.Del("Authorization")
	h.Del("User-Agent")
	p.mu.Lock()
	if len(p.reqs) >= maxPlanned {
		p.mu.Unlock()
		return nil, fmt.Errorf("zoho plan: more than %d requests for one action", maxPlanned)
	}
	p.reqs = append(p.reqs, PlannedRequest{Method: r.Method, URL: r.URL.String(), Header: h, Body: body})
	p.mu.Unlock()

	answer, err := json.Marshal(plannedAnswer(r, body))
	if err != nil {
		return nil, fmt.Errorf("zoho plan: %w", err)
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(answer)),
		ContentLength: int64(len(answer)),
		Request:       r,
	}, nil
}

// plannedAnswer is a body both APIs read as success: Books' code 0, and
// CRM's data[] with one SUCCESS item per record the request names.
func plannedAnswer(r *http.Request, body []byte) map[string]any {
	n := 1
	var req struct {
		Data []json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &req) == nil && len(req.Data) > 0 {
		n = len(req.Data)
	} else if ids := r.URL.Query().Get("ids"); ids != "" {
		n = strings.Count(ids, ",") + 1
	}
	items := make([]any, n)
	for i := range items {
		items[i] = map[string]any{"code": "SUCCESS", "status": "success", "message": "planned, not sent", "details": map[string]any{}}
	}
	return map[string]any{"code": 0, "message": "planned, not sent", "data": items}
}
