package app

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// bannerCurl extracts the sample curl command (both lines) from a banner.
var bannerCurl = regexp.MustCompile(`(?m)^\s+(curl -sS -X POST \S+ .*\\\n\s+-d '.*')$`)

// bannerURL finds the notify URL in the banner's curl command.
var bannerURL = regexp.MustCompile(`curl -sS -X POST (\S+) `)

// pasteBannerCurl runs the banner's command through sh -c with curl
// replaced by a function that prints its -d argument, as a paste into a
// shell would build it, and returns the URL and that body.
func pasteBannerCurl(t *testing.T, banner string) (string, []byte) {
	t.Helper()
	m := bannerCurl.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no curl command in the banner:\n%s", banner)
	}
	script := `curl() { while [ $# -gt 0 ]; do if [ "$1" = "-d" ]; then printf '%s' "$2"; fi; shift; done; }` + "\n" + m[1]
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", script, err)
	}
	return bannerURL.FindStringSubmatch(m[1])[1], out
}

// runBannerCurl decodes the body a paste of the banner's curl sends.
func runBannerCurl(t *testing.T, banner string) map[string]any {
	t.Helper()
	_, out := pasteBannerCurl(t, banner)
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("the pasted command sends %q: not JSON: %v", out, err)
	}
	return body
}

// TestDevBannerCurlIsANewEventEachPaste: the printed curl, run by a shell,
// sends valid JSON whose server_time is the time of the paste in
// milliseconds (a fixed one made every later paste a duplicate event).
func TestDevBannerCurlIsANewEventEachPaste(t *testing.T) {
	var buf bytes.Buffer
	printDevBanner(&buf, "[::]:8080", nil, nil, devToken)
	before := time.Now().Unix()
	body := runBannerCurl(t, buf.String())
	after := time.Now().Unix()
	n, ok := body["server_time"].(json.Number)
	if !ok {
		t.Fatalf("server_time %T %v, want a number", body["server_time"], body["server_time"])
	}
	ms, err := n.Int64()
	if err != nil || ms%1000 != 0 || ms/1000 < before || ms/1000 > after {
		t.Errorf("server_time %s, want the paste time (%d..%d s) in ms", n, before, after)
	}
	if body["token"] != devToken || body["module"] != "Deals" || body["operation"] != "update" {
		t.Errorf("body %v", body)
	}
	if u, _ := pasteBannerCurl(t, buf.String()); u != "http://localhost:8080/zoho/crm/notify" {
		t.Errorf("banner URL:\n%s", buf.String())
	}
}

// TestDevBannerHidesAChosenToken: a token the operator set is a secret and
// the banner lands in container logs: it prints a placeholder instead.
func TestDevBannerHidesAChosenToken(t *testing.T) {
	const chosen = "s3cret-notify-token-from-env"
	var buf bytes.Buffer
	printDevBanner(&buf, "127.0.0.1:8080", nil, nil, chosen)
	out := buf.String()
	if strings.Contains(out, chosen) {
		t.Fatalf("the banner prints the operator's token:\n%s", out)
	}
	body := runBannerCurl(t, out)
	if body["token"] != "<your -crm-notify-tokens>" || !strings.Contains(out, "Replace <your -crm-notify-tokens>") {
		t.Errorf("token %v; banner:\n%s", body["token"], out)
	}
}
