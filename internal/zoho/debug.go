package zoho

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const redacted = "[REDACTED]"

// sensitiveKey matches JSON keys, query parameters and header names whose
// values must never be logged.
func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "secret", "password", "authorization", "cookie", "api_key", "apikey", "client_id", "code"} {
		if strings.Contains(k, s) {
			// "code" alone is a grant code in OAuth queries, but Zoho's own
			// status "code" in bodies is useful: only redact it in queries.
			if s == "code" && k != "code" {
				continue
			}
			return true
		}
	}
	return false
}

func redactQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	c := url.Values{}
	for k, vs := range q {
		if sensitiveKey(k) {
			c[k] = []string{redacted}
		} else {
			c[k] = vs
		}
	}
	return c.Encode()
}

func redactHeader(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if sensitiveKey(k) {
			out[k] = redacted
		} else {
			out[k] = strings.Join(vs, ", ")
		}
	}
	return out
}

// redactJSON walks a JSON document and blanks sensitive keys; non-JSON
// bodies are summarised by size only.
func redactJSON(body []byte, contentType string) string {
	if len(body) == 0 {
		return ""
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		if strings.HasPrefix(contentType, "text/") {
			return truncate(string(body), 2048)
		}
		return "<" + itoa(len(body)) + " bytes " + contentType + ">"
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, vv := range t {
				if k != "code" && sensitiveKey(k) {
					t[k] = redacted
				} else {
					t[k] = walk(vv)
				}
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		}
		return x
	}
	b, _ := json.Marshal(walk(v))
	return truncate(string(b), 4096)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}

func itoa(n int) string { return strconv.Itoa(n) }

// scrubSecrets is the last line of defence: whatever the structure, known
// secret values are replaced before a log line is written.
func (c *Client) scrubSecrets(tok *Token, s string) string {
	// Almost every string holds no secret: look before building anything
	// (this runs for every field of every recorded exchange).
	for _, v := range []string{tok.AccessToken, c.cfg.RefreshToken, c.cfg.ClientSecret} {
		if len(v) >= 4 && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}

func (c *Client) logRequest(ctx context.Context, r *request, u *url.URL, h http.Header, tok *Token) {
	hdr, _ := json.Marshal(redactHeader(h))
	c.logger.LogAttrs(ctx, slog.LevelInfo, "zoho request",
		slog.String("api", r.api), slog.String("method", r.method),
		slog.String("url", c.scrubSecrets(tok, u.Scheme+"://"+u.Host+u.Path)),
		slog.String("query", c.scrubSecrets(tok, redactQuery(u.Query()))),
		slog.String("headers", c.scrubSecrets(tok, string(hdr))),
		slog.String("body", c.scrubSecrets(tok, redactJSON(r.body, r.contentType))))
}

func (c *Client) logResponse(ctx context.Context, r *request, u *url.URL, res *rawResult, d time.Duration, tok *Token) {
	c.logger.LogAttrs(ctx, slog.LevelInfo, "zoho response",
		slog.String("api", r.api), slog.String("method", r.method), slog.String("path", u.Path),
		slog.Int("status", res.status), slog.Duration("duration", d),
		slog.String("body", c.scrubSecrets(tok, redactJSON(res.body, res.header.Get("Content-Type")))))
}
