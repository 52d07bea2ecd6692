package zohotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock for the server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 17, 10, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// client talks to a fake over real HTTP with a token it obtained from the fake's token endpoint.
type client struct {
	t   testing.TB
	s   *Server
	tok string
	hc  *http.Client
}

func newClient(t testing.TB, opts ...Option) *client {
	t.Helper()
	s := NewServer(opts...)
	t.Cleanup(s.Close)
	c := &client{t: t, s: s, hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	c.tok = c.refresh()
	return c
}

// refresh runs a refresh_token grant and returns the new access token.
func (c *client) refresh() string {
	c.t.Helper()
	cr := c.s.Credentials()
	st, body := c.form("/oauth/v2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {cr.ClientID},
		"client_secret": {cr.ClientSecret}, "refresh_token": {cr.RefreshToken}})
	tok, _ := body["access_token"].(string)
	if st != 200 || tok == "" {
		c.t.Fatalf("refresh: %d %v", st, body)
	}
	return tok
}

func (c *client) form(path string, v url.Values) (int, map[string]any) {
	c.t.Helper()
	resp, err := c.hc.Post(c.s.URL()+path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// raw sends a request; body may be nil, []byte, string or a value to encode as JSON.
func (c *client) raw(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
		ct = "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
		ct = "application/json"
	}
	req, err := http.NewRequest(method, c.s.URL()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Zoho-oauthtoken "+c.tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

// do sends a request and decodes a JSON object answer (nil for empty bodies).
func (c *client) do(method, path string, body any, hdr ...string) (int, map[string]any) {
	c.t.Helper()
	resp, b := c.raw(method, path, body, hdr...)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("%s %s: %d non-JSON body %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m
}

func dataItems(t testing.TB, m map[string]any) []map[string]any {
	t.Helper()
	list, ok := m["data"].([]any)
	if !ok {
		t.Fatalf("no data array in %v", m)
	}
	out := make([]map[string]any, len(list))
	for i, x := range list {
		out[i] = x.(map[string]any)
	}
	return out
}

func details(m map[string]any) map[string]any {
	d, _ := m["details"].(map[string]any)
	return d
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func asList(v any) []any { l, _ := v.([]any); return l }

func newHTTPServer(t testing.TB, h http.Handler) string {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}
