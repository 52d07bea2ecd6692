package zoho

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ResponseType selects how Raw decodes the body.
type ResponseType string

// Response types of RawRequest.
const (
	ResponseJSON   ResponseType = "json"
	ResponseText   ResponseType = "text"
	ResponseBinary ResponseType = "binary"
)

// RawRequest is an arbitrary call relative to the CRM or Books API base.
type RawRequest struct {
	// Method: GET, POST, PUT, PATCH or DELETE.
	Method string
	// Path relative to the API base ("Leads/123", "settings/modules",
	// "invoices/1/status/sent"). Absolute URLs, "//host", ".." and anything
	// resolving outside the base are refused with *PathError before any request.
	Path  string
	Query url.Values
	// Headers are added to the request; Authorization and Host cannot be set.
	Headers http.Header
	// JSON is marshalled as the body (exclusive with Form/Files).
	JSON any
	// Form is sent urlencoded, or as multipart fields when Files is set.
	Form url.Values
	// Files are multipart parts by form field name.
	Files map[string]File
	// ResponseType: json (default), text or binary.
	ResponseType ResponseType
	// Timeout bounds each attempt (0 = the HTTP client's timeout).
	Timeout time.Duration
	// Retry overrides the client's retry policy for this request.
	Retry *RetryPolicy
	// Debug logs this request and its answer (secrets redacted).
	Debug bool
	// OrgID (Books only) overrides Config.BooksOrgID for organization_id.
	OrgID string
}

// RawResponse is what Raw returns, also next to an error for non-2xx answers.
type RawResponse struct {
	Status int
	Header http.Header
	// Body is the decoded JSON value (any), a string (text) or []byte (binary).
	// A JSON response that does not parse is returned as a string.
	Body any
	// Bytes is the undecoded body.
	Bytes []byte
}

// Raw sends a raw CRM request.
func (s *CRMService) Raw(ctx context.Context, rr *RawRequest) (*RawResponse, *Response, error) {
	return s.c.raw(ctx, APICRM, rr, "")
}

// Raw sends a raw Books request; organization_id is added unless Query has it.
func (s *BooksService) Raw(ctx context.Context, rr *RawRequest) (*RawResponse, *Response, error) {
	org := s.c.cfg.BooksOrgID
	if rr != nil && rr.OrgID != "" {
		org = rr.OrgID
	}
	return s.c.raw(ctx, APIBooks, rr, org)
}

func (c *Client) raw(ctx context.Context, api string, rr *RawRequest, org string) (*RawResponse, *Response, error) {
	if rr == nil {
		return nil, nil, &InputError{Input: "request", Reason: "nil"}
	}
	method := strings.ToUpper(strings.TrimSpace(rr.Method))
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil, nil, &InputError{Input: "method", Reason: "one of GET, POST, PUT, PATCH, DELETE"}
	}
	rel, err := safeRelPath(rr.Path)
	if err != nil {
		return nil, nil, err
	}
	switch rr.ResponseType {
	case "", ResponseJSON, ResponseText, ResponseBinary:
	default:
		return nil, nil, &InputError{Input: "response_type", Reason: "json, text or binary"}
	}
	r := &request{api: api, method: method, path: rel, query: url.Values{}, header: http.Header{}, timeout: rr.Timeout, retry: rr.Retry, debug: rr.Debug}
	for k, v := range rr.Query {
		r.query[k] = v
	}
	if api == APIBooks && org != "" && r.query.Get("organization_id") == "" {
		r.query.Set("organization_id", org)
	}
	for k, vs := range rr.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Authorization", "Host", "Content-Length", "Transfer-Encoding", "Content-Type", "Cookie":
			return nil, nil, &InputError{Input: "headers", Reason: "header " + k + " is set by the client"}
		}
		r.header[k] = vs
	}
	switch {
	case rr.JSON != nil && (len(rr.Form) > 0 || len(rr.Files) > 0):
		return nil, nil, &InputError{Input: "json", Reason: "json and form/files are exclusive"}
	case rr.JSON != nil:
		if r.body, err = jsonBody(rr.JSON); err != nil {
			return nil, nil, err
		}
		r.contentType = "application/json"
	case len(rr.Files) > 0:
		if r.body, r.contentType, err = multipartBody(rr.Form, rr.Files); err != nil {
			return nil, nil, err
		}
	case len(rr.Form) > 0:
		r.body = []byte(rr.Form.Encode())
		r.contentType = "application/x-www-form-urlencoded"
	}
	res, err := c.do(ctx, r)
	if res == nil {
		return nil, nil, err
	}
	out := &RawResponse{Status: res.status, Header: res.header, Bytes: res.body}
	switch rr.ResponseType {
	case ResponseBinary:
		out.Body = res.body
	case ResponseText:
		out.Body = string(res.body)
	default:
		var v any
		if derr := decodeJSON(res.body, &v); derr != nil {
			out.Body = string(res.body)
		} else {
			out.Body = v
		}
	}
	return out, res.response(), err
}
