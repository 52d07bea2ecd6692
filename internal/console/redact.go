package console

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
)

// secretField reports whether a JSON, form or query key names a secret:
// its value is never shown. Zoho's own "code" (SUCCESS, INVALID_DATA) is
// not one; an OAuth grant code only travels to Accounts, whose exchanges
// the engine does not journal.
func secretField(k string) bool {
	k = strings.ToLower(strings.TrimSpace(k))
	k = strings.NewReplacer("-", "_", " ", "_").Replace(k)
	switch k {
	case "token", "access_token", "refresh_token", "id_token", "client_secret", "secret", "password", "passwd",
		"authorization", "authtoken", "api_key", "apikey", "zapikey", "signature", "x_zohook_secret", "x_zoho_webhook_signature",
		"webhook_secret", "private_key", "cookie", "set_cookie":
		return true
	}
	return strings.HasSuffix(k, "_secret") || strings.HasSuffix(k, "_password") || strings.HasSuffix(k, "_token")
}

// redactJSON returns data with the values of secret-named keys replaced,
// at any depth, indented for reading. Data that is not JSON is returned as
// a JSON string with secret-named form or query parameters redacted.
func redactJSON(data []byte) json.RawMessage {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		b, _ := json.Marshal(redactText(string(data)))
		return b
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // pages escape for HTML themselves; "Bowman & Co" stays readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(redactValue(v)); err != nil {
		return nil
	}
	return bytes.TrimRight(out.Bytes(), "\n")
}

func redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if secretField(k) {
				t[k] = redacted
				continue
			}
			t[k] = redactValue(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = redactValue(x)
		}
		return t
	case string:
		// A JSON document inside a string (Books' JSONString form field).
		if s := strings.TrimSpace(t); len(s) > 1 && (s[0] == '{' || s[0] == '[') && json.Valid([]byte(s)) {
			return string(redactJSON([]byte(s)))
		}
		return t
	}
	return v
}

// redactMap redacts a decoded map (a record snapshot, a step output).
func redactMap(m map[string]any) json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return redactJSON(b)
}

// redactText redacts secret-named parameters of a form or query string.
func redactText(s string) string {
	if v, err := url.ParseQuery(s); err == nil && len(v) > 0 && strings.Contains(s, "=") {
		changed := false
		for k := range v {
			if secretField(k) {
				v[k] = []string{redacted}
				changed = true
			}
		}
		if changed {
			return v.Encode()
		}
	}
	return s
}

// redactQuery redacts a query's secret-named parameters.
func redactQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	out := url.Values{}
	for k, vs := range q {
		if secretField(k) {
			out[k] = []string{redacted}
			continue
		}
		out[k] = vs
	}
	return out.Encode() // as sent: encoded
}
