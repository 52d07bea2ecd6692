package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"html"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Authentication: outside -dev every request needs the password, as HTTP
// Basic (any user name; browsers prompt for it) or as a Bearer token
// (scripts). Both are compared in constant time (as SHA-256 digests, so the
// length does not leak either).
func (c *Console) authenticated(r *http.Request) bool {
	if c.cfg.Password == "" {
		return c.cfg.Dev
	}
	var got string
	if _, pass, ok := r.BasicAuth(); ok {
		got = pass
	} else if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = strings.TrimSpace(tok)
	} else {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(c.cfg.Password))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Cross-site requests: every state-changing action is a POST, and a POST
// passes only when
//   - the browser says it comes from the console's own origin
//     (Sec-Fetch-Site, else Origin against Host: http.CrossOriginProtection),
//     so a page elsewhere cannot make a logged-in browser replay events; and
//   - a form carries the console's form token (forms of other sites cannot
//     know it), or the body is JSON (which no cross-site form can send
//     without a CORS preflight the console never grants).
func (c *Console) guard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusForbidden, "cross-site request refused: state-changing requests must come from the console's own pages")
	}))
	checked := cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			switch mt {
			case "application/json":
			case "application/x-www-form-urlencoded", "multipart/form-data":
				if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.formToken())) {
					c.fail(w, r, http.StatusForbidden, "form token missing or wrong: reload the page and try again")
					return
				}
			default:
				c.fail(w, r, http.StatusUnsupportedMediaType, "POST a form from the console's pages or a JSON body (Content-Type: application/json)")
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if !c.authenticated(r) {
			h.Set("WWW-Authenticate", `Basic realm="zohook console", charset="UTF-8"`)
			c.fail(w, r, http.StatusUnauthorized, "authentication required: the console password as HTTP Basic (any user name) or Bearer token")
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// formToken is what the console's forms carry (see guard): a MAC under a
// key of this process, so only pages the console served know it.
func (c *Console) formToken() string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte("zohook console form"))
	return hex.EncodeToString(m.Sum(nil))
}

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// scrubber replaces known secret values wherever they appear in an answer,
// also in their JSON-, HTML- and URL-escaped forms.
type scrubber struct{ r *strings.Replacer }

const redacted = "[REDACTED]"

// templateEscaper escapes as html/template does in text and attributes.
var templateEscaper = strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "+", "&#43;", "\x00", "\uFFFD")

func newScrubber(secrets []string) *scrubber {
	var pairs []string
	seen := map[string]bool{}
	add := func(s string) {
		if len(s) < 4 || seen[s] {
			return
		}
		seen[s] = true
		pairs = append(pairs, s, redacted)
	}
	// Longest first: a secret containing another must go whole.
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		add(s)
		if b, err := json.Marshal(s); err == nil {
			add(string(b[1 : len(b)-1]))
		}
		add(html.EscapeString(s))
		add(templateEscaper.Replace(s))
		if b, err := json.Marshal(s); err == nil {
			add(templateEscaper.Replace(string(b[1 : len(b)-1])))
		}
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
	}
	if len(pairs) == 0 {
		return &scrubber{}
	}
	return &scrubber{r: strings.NewReplacer(pairs...)}
}

func (s *scrubber) bytes(b []byte) []byte {
	if s == nil || s.r == nil {
		return b
	}
	return []byte(s.r.Replace(string(b)))
}
