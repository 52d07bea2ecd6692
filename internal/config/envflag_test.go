package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"ZOHOOK_ADDR":          ":9999",
		"ZOHOOK_NATS_URL":      "nats://a:4222",
		"ZOHOOK_DEV":           "true",
		"ZOHOOK_GRACE":         "45s",
		"ZOHOOK_NOTIFY_TOKENS": "a, b,,c",
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "")
	url := fs.String("nats-url", "", "")
	dev := fs.Bool("dev", false, "")
	grace := fs.Duration("grace", time.Second, "")
	var toks StringList
	fs.Var(&toks, "notify-tokens", "")
	if err := fs.Parse([]string{"-addr", ":7000"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(fs, "ZOHOOK_", func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *addr != ":7000" {
		t.Errorf("command line must win over env: addr = %q", *addr)
	}
	if *url != "nats://a:4222" || !*dev || *grace != 45*time.Second {
		t.Errorf("env not applied: url=%q dev=%v grace=%v", *url, *dev, *grace)
	}
	if got := strings.Join(toks, "|"); got != "a|b|c" {
		t.Errorf("list = %q", got)
	}
}

func TestApplyEnvErrorHidesValue(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Duration("grace", time.Second, "")
	err := ApplyEnv(fs, "ZOHOOK_", func(k string) string {
		if k == "ZOHOOK_GRACE" {
			return "s3cr3t-not-a-duration"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "ZOHOOK_GRACE") {
		t.Fatalf("want error naming the variable, got %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks the value: %v", err)
	}
}

func TestUsageListsEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("nats-url", "", "NATS `URLs`")
	var buf bytes.Buffer
	PrintDefaults(&buf, fs, "ZOHOOK_")
	if !strings.Contains(buf.String(), "env ZOHOOK_NATS_URL") || !strings.Contains(buf.String(), "-nats-url URLs") {
		t.Fatalf("usage: %s", buf.String())
	}
}
