package receiver

import (
	"bytes"
	"net/http"
	"strings"
)

// A configured secret (a notification token, a hook secret) must never be
// stored in an event: the stream is kept for weeks and read by every worker
// and operator. The credential field itself is removed before storing
// ("token" of a notification, the hook's secret field). A secret anywhere
// else in the body (in another value, inside a key, escaped or not) means
// either a misconfigured webhook (the secret templated into the wrong
// place) or a secret that has leaked into CRM data. Such a body is refused
// with 400 rather than stored with the secret cut out: rewriting the
// customer's data in silence would hide the problem, while the refusal
// shows in Zoho's webhook failures and in the receiver's log ("callback
// refused", without the secret), so the operator fixes the template or
// rotates the secret.
var errSecretInBody = &RequestError{Status: http.StatusBadRequest, Body: ErrorBody{
	Error: "callback carries a configured secret outside its credential field: not stored " +
		"(fix the webhook body, or rotate the secret if it reached record data)"}}

// secretList holds the plaintext secrets the receiver knows at start: hook
// secrets and static notification tokens (channel tokens kept in NATS KV
// are known one at a time, as the request's own token).
type secretList [][]byte

// secretLister is implemented by token verifiers that can tell the tokens
// they accept (StaticTokens), so that no body stores any of them.
type secretLister interface {
	Secrets() []string
}

func newSecretList(cfg Config) secretList {
	var out secretList
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, []byte(s))
		}
	}
	for _, h := range cfg.CRMWorkflowHooks {
		add(h.Secret)
	}
	for _, h := range cfg.BooksHooks {
		add(h.Secret)
	}
	if l, ok := cfg.CRMTokens.(secretLister); ok {
		for _, t := range l.Secrets() {
			add(t)
		}
	}
	return out
}

// carriedBy reports whether the JSON document doc (as it is about to be
// stored) holds extra or any known secret anywhere: in a key, a string or
// a number's digits. Escapes can spell a secret the bytes do not show
// ("\u0073ecret"), so string literals with escapes are also compared
// unescaped. Cost on a 1 KiB body without escapes: one bytes.Index per
// secret.
func (l secretList) carriedBy(doc []byte, extra string) bool {
	if extra != "" && bytes.Contains(doc, []byte(extra)) {
		return true
	}
	for _, s := range l {
		if bytes.Contains(doc, s) {
			return true
		}
	}
	if bytes.IndexByte(doc, '\\') < 0 {
		return false
	}
	for i := 0; i < len(doc); {
		q := bytes.IndexByte(doc[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		end := stringEnd(doc, start)
		if lit := doc[start:end]; bytes.IndexByte(lit, '\\') >= 0 {
			if text, ok := jsonString(lit); ok && l.inText(text, extra) {
				return true
			}
		}
		i = end
	}
	return false
}

func (l secretList) inText(text, extra string) bool {
	if extra != "" && strings.Contains(text, extra) {
		return true
	}
	for _, s := range l {
		if strings.Contains(text, string(s)) {
			return true
		}
	}
	return false
}
