package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

func TestChannelsCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := startLayout(t)
	fake := zohotest.NewServer()
	defer fake.Close()
	cr := fake.Credentials()
	vars := map[string]string{"ZOHOOK_NATS_URL": env.Embedded.ClientURL(), zoho.EnvClientID: cr.ClientID,
		zoho.EnvClientSecret: cr.ClientSecret, zoho.EnvRefreshToken: cr.RefreshToken, zoho.EnvAccountsURL: fake.URL()}
	getenv := func(k string) string { return vars[k] }
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(`version: 1
rules:
  - name: r
    on: { source: crm.notify, module: Deals, operation: create }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: x } }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		// stderr is shared with the NATS connection's callbacks, which may
		// still run after the command returned.
		var out bytes.Buffer
		errb := &testutil.SyncBuffer{}
		code := channelsCommand(ctx, args, &out, errb, getenv)
		return code, out.String(), errb.String()
	}
	if code, _, errs := run("sync", "-rules", rulesFile); code != 2 || !strings.Contains(errs, "-notify-url") {
		t.Fatalf("sync without -notify-url: %d %s", code, errs)
	}
	code, out, errs := run("sync", "-rules", rulesFile, "-notify-url", "https://hooks.example.com/zoho/crm/notify")
	if code != 0 || !strings.Contains(out, "created: 1") {
		t.Fatalf("sync: %d %s %s", code, out, errs)
	}
	chs := fake.Channels()
	if len(chs) != 1 || chs[0].Events[0] != "Deals.create" {
		t.Fatalf("channels %+v", chs)
	}
	code, out, errs = run("list")
	if code != 0 || !strings.Contains(out, chs[0].ChannelID) || !strings.Contains(out, "Deals.create") || strings.Contains(out, chs[0].Token) {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	code, out, errs = run("disable", chs[0].ChannelID)
	if code != 0 || len(fake.Channels()) != 0 {
		t.Fatalf("disable: %d %s %s", code, out, errs)
	}
	if code, _, _ := run("frobnicate"); code != 2 {
		t.Fatal("unknown verb accepted")
	}
}
