package worker

import (
	"encoding/base64"
	"testing"
)

// Event ids that are valid key tokens stay readable; anything else (a dot
// would add a token, a wildcard would match others) is encoded.
func TestEntryKey(t *testing.T) {
	for id, want := range map[string]string{
		"0f3a9c":        "ev.0f3a9c",
		"seq-12_A":      "ev.seq-12_A",
		"a.b":           "ev.b64_" + base64.RawURLEncoding.EncodeToString([]byte("a.b")),
		"x*":            "ev.b64_" + base64.RawURLEncoding.EncodeToString([]byte("x*")),
		"é":             "ev.b64_" + base64.RawURLEncoding.EncodeToString([]byte("é")),
		"":              "ev.b64_",
		"with space id": "ev.b64_" + base64.RawURLEncoding.EncodeToString([]byte("with space id")),
	} {
		if got := entryKey(id); got != want {
			t.Errorf("entryKey(%q) = %q, want %q", id, got, want)
		}
	}
}
