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

// TestAnswerCode: Zoho's codes at the top level (errors, Books) and in
// per-record results; a data row's field named code is not one.
func TestAnswerCode(t *testing.T) {
	tests := []struct{ body, code, message string }{
		{`{"code":"INVALID_TOKEN","message":"invalid oauth token","status":"error"}`, "INVALID_TOKEN", "invalid oauth token"},
		{`{"code":0,"message":"success","invoice":{"invoice_id":"1"}}`, "0", "success"},
		{`{"data":[{"code":"SUCCESS","details":{"id":"1"},"message":"record updated","status":"success"}]}`, "SUCCESS", "record updated"},
		{`{"data":[{"code":"ITEM-7","Name":"a COQL row"}],"info":{"count":1,"more_records":false}}`, "", ""},
		{`{"data":[{"id":"1","Last_Name":"x"}]}`, "", ""},
		{`not json`, "", ""},
	}
	for _, tc := range tests {
		if code, msg := answerCode([]byte(tc.body)); code != tc.code || msg != tc.message {
			t.Errorf("answerCode(%s) = %q, %q; want %q, %q", tc.body, code, msg, tc.code, tc.message)
		}
	}
}
