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

// ParseCommand is every command's convention: -h to stdout (exit 0), a bad
// flag or a stray argument to stderr (exit 2), configuration flags from
// ZOHOOK_*, action flags never.
func TestParseCommand(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *bool) {
		fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
		url := fs.String("nats-url", "", "NATS `URLs`")
		fs.Duration("wait", 10*time.Minute, "how long")
		all := ActionBool(fs, "all", "everything")
		fs.Usage = Usage(fs, "ZOHOOK_", "usage: cmd [flags]")
		return fs, url, all
	}
	env := func(k string) string {
		return map[string]string{"ZOHOOK_NATS_URL": "nats://a:4222", "ZOHOOK_ALL": "true"}[k]
	}
	var out, errb bytes.Buffer
	fs, url, all := newFS()
	if code, ok := ParseCommand(fs, nil, env, &out, &errb, 0); !ok || code != ExitOK || *url != "nats://a:4222" || *all {
		t.Fatalf("parse: %d %v url=%q all=%v", code, ok, *url, *all)
	}
	fs, _, _ = newFS()
	if code, ok := ParseCommand(fs, []string{"-h"}, env, &out, &errb, 0); ok || code != ExitOK || errb.Len() != 0 ||
		!strings.Contains(out.String(), "usage: cmd") || !strings.Contains(out.String(), "(default 10m)") ||
		!strings.Contains(out.String(), ExitCodesHelp[1:]) || !strings.Contains(out.String(), "(not read from the environment)") {
		t.Fatalf("-h: %d %v\nstdout %s\nstderr %s", code, ok, out.String(), errb.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "cmd: flag provided but not defined: -nope"},
		{[]string{"extra"}, `cmd: unexpected argument "extra" (see -h)`},
		{[]string{"-all", "x", "-wait", "1m"}, `unexpected argument "x"`},
	} {
		out.Reset()
		errb.Reset()
		fs, _, _ = newFS()
		if code, ok := ParseCommand(fs, c.args, env, &out, &errb, 0); ok || code != ExitUsage || out.Len() != 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: %d %v\nstdout %q\nstderr %q", c.args, code, ok, out.String(), errb.String())
		}
	}
	errb.Reset()
	fs, _, _ = newFS()
	if code, ok := ParseCommand(fs, []string{"id", "-all"}, env, &out, &errb, 1); ok || code != ExitUsage || !strings.Contains(errb.String(), "flags go before arguments") {
		t.Errorf("flag after argument: %d %v %q", code, ok, errb.String())
	}
	errb.Reset()
	fs, _, _ = newFS()
	bad := func(k string) string { return map[string]string{"ZOHOOK_WAIT": "soon"}[k] }
	if code, ok := ParseCommand(fs, nil, bad, &out, &errb, 0); ok || code != ExitUsage || !strings.Contains(errb.String(), "ZOHOOK_WAIT") {
		t.Errorf("bad env: %d %v %q", code, ok, errb.String())
	}
}

func TestDefaultsPrintAsTyped(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Duration("wait", 90*time.Minute, "")
	fs.Int("n", 10, "")
	fs.String("name", "default", "")
	fs.Bool("on", true, "")
	var buf bytes.Buffer
	PrintDefaults(&buf, fs, "ZOHOOK_")
	for _, want := range []string{"(default 1h30m)", "(default 10)", `(default "default")`, "(default true)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("lacks %s:\n%s", want, buf.String())
		}
	}
}
