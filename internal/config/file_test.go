package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleConfig = `
connections:
  default:
    dc: eu
    client_id: 1000.ABC
    client_secret: {env: ZOHO_SECRET}
    refresh_token: {file: REFRESH_FILE}
    books_org_id: "10234695"
hooks:
  crm_workflow:
    deal-stage:
      secret: {env: HOOK_SECRET}
      module: Deals
      operation: update
      record_id_field: id
  books:
    invoice-paid:
      secret: inline-secret-123
      signature: true
      operation: paid
`

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	refresh := filepath.Join(dir, "refresh")
	if err := os.WriteFile(refresh, []byte("1000.refresh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile("zohook.yaml", []byte(strings.Replace(sampleConfig, "REFRESH_FILE", refresh, 1)))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ZOHO_SECRET": "s3cret", "HOOK_SECRET": "hook-s3cret"}
	getenv := func(k string) string { return env[k] }
	c := f.Connections["default"]
	if v, err := c.ClientSecret.Resolve(getenv); err != nil || v != "s3cret" {
		t.Fatalf("client secret %q %v", v, err)
	}
	if v, err := c.RefreshToken.Resolve(getenv); err != nil || v != "1000.refresh" {
		t.Fatalf("refresh token %q %v", v, err)
	}
	if v, _ := f.Hooks.Books["invoice-paid"].Secret.Resolve(getenv); v != "inline-secret-123" {
		t.Fatalf("inline secret %q", v)
	}
	if got := f.Hooks.CRMWorkflow["deal-stage"].Secret.String(); got != "[redacted]" {
		t.Fatalf("secret String() = %q", got)
	}
	if _, err := (Secret{Env: "MISSING"}).Resolve(getenv); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Fatalf("missing env: %v", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	cases := map[string]string{
		"unknown key":  "hooks:\n  crm_workflow:\n    a:\n      secrett: x\n",
		"no secret":    "hooks:\n  books:\n    a:\n      operation: paid\n",
		"bad name":     "hooks:\n  books:\n    A/B:\n      secret: x\n",
		"no module":    "hooks:\n  crm_workflow:\n    a:\n      secret: x\n",
		"unknown conn": "connections:\n  default: {dc: us}\nhooks:\n  books:\n    a:\n      secret: x\n      connection: other\n",
		"signed crm":   "hooks:\n  crm_workflow:\n    a:\n      secret: x\n      module: Deals\n      signature: true\n",
	}
	wants := map[string]string{
		"unknown key": "4:7", "no secret": "secret is required", "bad name": "name must match",
		"no module": "set module", "unknown conn": `unknown connection "other"`, "signed crm": "cannot be signed",
	}
	for name, data := range cases {
		_, err := ParseFile("z.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), wants[name]) {
			t.Errorf("%s: got %v, want it to mention %q", name, err, wants[name])
		}
	}
}
