package zoho

import "testing"

// TestRedactJSONKeysKeepsTheBodyAsSent: only secret values change; key
// order, number text and escapes stay as sent, and "code" in a body is
// data, not a grant code.
func TestRedactJSONKeysKeepsTheBodyAsSent(t *testing.T) {
	tests := map[string]string{
		`{"b":1500,"token":{"x":1},"a":[1,2.50,"\u003c"],"code":"ITEM-1"}`:    `{"b":1500,"token":"[REDACTED]","a":[1,2.50,"\u003c"],"code":"ITEM-1"}`,
		`{"watch":[{"channel_id":"1","Token":"t","notify_url":"https://x"}]}`: `{"watch":[{"channel_id":"1","Token":"[REDACTED]","notify_url":"https://x"}]}`,
		`{"data":[{"Last_Name":"x"}],"trigger":[]}`:                           `{"data":[{"Last_Name":"x"}],"trigger":[]}`,
	}
	for in, want := range tests {
		if got := string(redactJSONKeys([]byte(in))); got != want {
			t.Errorf("redact(%s)\n got %s\nwant %s", in, got, want)
		}
	}
}
