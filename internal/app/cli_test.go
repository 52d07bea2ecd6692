package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

func noEnv(string) string { return "" }

// goDuration matches durations as Go prints them (10m0s, 1h0m0s).
var goDuration = regexp.MustCompile(`[0-9]m0s|[0-9]h0m`)

// runWorkerMain runs the worker binary's main with args.
func runWorkerMain(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	errb := &testutil.SyncBuffer{}
	code := WorkerMain(ctx, args, &out, errb, getenv)
	return code, out.String(), errb.String()
}

// `worker stauts` used to fall through to starting a worker: it is a
// usage error naming the command meant and listing them all.
func TestUnknownCommandIsAUsageError(t *testing.T) {
	start := time.Now()
	code, out, errs := runWorkerMain(t, noEnv, "stauts")
	if code != ExitUsage || out != "" || !strings.Contains(errs, `unknown command "stauts" (did you mean "status"?)`) {
		t.Fatalf("exit %d\nstdout %q\nstderr %s", code, out, errs)
	}
	for _, c := range workerCommands {
		if !strings.Contains(errs, "worker "+c.synopsis) {
			t.Errorf("the list lacks %q:\n%s", c.name, errs)
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("an unknown command took long: did it start a worker?")
	}
	if code, _, errs := runWorkerMain(t, noEnv, "frobnicate"); code != ExitUsage || strings.Contains(errs, "did you mean") {
		t.Fatalf("far from every command: exit %d %s", code, errs)
	}
}

// Every command's -h goes to stdout with exit 0 and the exit codes; no
// help prints a duration as 10m0s.
func TestEveryHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"help"}, {"help", "status"}, {"status", "-h"}, {"doctor", "-h"}, {"setup", "-h"}, {"version", "-h"},
		{"dlq", "-h"}, {"dlq", "list", "-h"}, {"dlq", "show", "-h"}, {"dlq", "replay", "-h"},
		{"replay", "-h"}, {"channels", "-h"}, {"channels", "list", "-h"}, {"channels", "sync", "-h"}, {"channels", "disable", "-h"},
		{"auth", "-h"}, {"auth", "token", "-h"}, {"auth", "login", "-h"}, {"auth", "exchange", "-h"}, {"auth", "revoke", "-h"},
		{"rules", "-h"}, {"rules", "check", "-h"}, {"config", "-h"}, {"config", "check", "-h"}, {"config", "schema", "-h"},
	} {
		code, out, errs := runWorkerMain(t, noEnv, args...)
		if code != ExitOK || out == "" || errs != "" {
			t.Errorf("worker %s: exit %d, stdout %d bytes, stderr %q", strings.Join(args, " "), code, len(out), errs)
			continue
		}
		if goDuration.MatchString(out) {
			t.Errorf("worker %s prints a duration as Go does:\n%s", strings.Join(args, " "), out)
		}
		if args[0] != "rules" && (args[0] != "help" || len(args) == 1) && !strings.Contains(out, "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found.") {
			t.Errorf("worker %s: no exit codes in -h:\n%s", strings.Join(args, " "), out)
		}
	}
	code, out, _ := runWorkerMain(t, noEnv, "-h")
	if code != ExitOK || !strings.Contains(out, "(default 10m)") || !strings.Contains(out, "worker doctor [-json]") {
		t.Fatalf("worker -h: %d\n%s", code, out)
	}
	var rout bytes.Buffer
	rerr := &testutil.SyncBuffer{}
	if code := ReceiverMain(context.Background(), []string{"-h"}, &rout, rerr, noEnv); code != ExitOK || rerr.String() != "" ||
		!strings.Contains(rout.String(), "(default 720h)") || !strings.Contains(rout.String(), "Exit codes") {
		t.Fatalf("receiver -h: %d %q\n%s", code, rerr.String(), rout.String())
	}
}

// Mistakes exit 2 before anything connects: stray arguments, unknown
// flags, missing arguments.
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "extra"}, `unexpected argument "extra"`},
		{[]string{"status", "-nope"}, "flag provided but not defined: -nope"},
		{[]string{"dlq"}, "usage: worker dlq"},
		{[]string{"dlq", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"dlq", "show"}, "give one EVENT_ID"},
		{[]string{"dlq", "replay"}, "give one EVENT_ID or -all"},
		{[]string{"dlq", "replay", "-all", "ev-1"}, "give one EVENT_ID or -all"},
		{[]string{"dlq", "replay", "ev-1", "-in-doubt", "done"}, "flags go before arguments"},
		{[]string{"dlq", "replay", "-in-doubt", "maybe", "ev-1"}, "want done or resend"},
		{[]string{"dlq", "frob"}, `unknown command "frob"`},
		{[]string{"replay"}, "-since is required"},
		{[]string{"replay", "-since", "1h", "extra"}, `unexpected argument "extra"`},
		{[]string{"setup", "extra"}, `unexpected argument "extra"`},
		{[]string{"doctor", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"channels", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"help", "stauts"}, `did you mean "status"`},
		{[]string{"-concurrency", "4", "extra"}, `unexpected argument "extra"`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	} {
		code, out, errs := runWorkerMain(t, noEnv, c.args...)
		if code != ExitUsage || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("worker %s: exit %d (want 2), stdout %q, stderr %q (want %q)", strings.Join(c.args, " "), code, out, errs, c.want)
		}
	}
	var out bytes.Buffer
	errb := &testutil.SyncBuffer{}
	if code := ReceiverMain(context.Background(), []string{"extra"}, &out, errb, noEnv); code != ExitUsage || !strings.Contains(errb.String(), `unexpected argument "extra"`) {
		t.Fatalf("receiver extra: %d %s", code, errb.String())
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}} {
		code, out, _ := runWorkerMain(t, noEnv, args...)
		if code != ExitOK || !strings.HasPrefix(out, "worker ") || !strings.Contains(out, "module:   github.com/zohook/zohook") ||
			!strings.Contains(out, "revision: ") || !strings.Contains(out, "go:       go1.") {
			t.Errorf("worker %v: %d\n%s", args, code, out)
		}
		var rout bytes.Buffer
		if code := ReceiverMain(context.Background(), args, &rout, &testutil.SyncBuffer{}, noEnv); code != ExitOK ||
			!strings.HasPrefix(rout.String(), "receiver ") || !strings.Contains(rout.String(), "go:       go1.") {
			t.Errorf("receiver %v: %d\n%s", args, code, rout.String())
		}
	}
	code, out, _ := runWorkerMain(t, noEnv, "version", "-json")
	var v VersionInfo
	if err := json.Unmarshal([]byte(out), &v); code != ExitOK || err != nil || v.Program != "worker" || !strings.HasPrefix(v.Go, "go1.") || v.Version == "" {
		t.Fatalf("version -json: %d %v %s", code, err, out)
	}
}

// silentListener accepts TCP connections and never answers: a NATS
// address behind a firewall that drops, or a hung server.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "nats://" + ln.Addr().String()
}

// closedPort is an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "nats://" + addr
}

// With NATS out of reach every command that needs it fails within about
// 5 s (the connect timeout) with "cannot reach NATS at URL: reason", and
// returns: nothing hangs afterwards.
func TestCommandsFailFastWithoutNATS(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	refreshes := fake.TokenRefreshes()
	for _, target := range []struct{ name, url string }{{"refused", closedPort(t)}, {"silent", silentListener(t)}} {
		t.Run(target.name, func(t *testing.T) {
			vars := map[string]string{"ZOHOOK_NATS_URL": target.url, zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret,
				zoho.EnvRefreshToken: cr.RefreshToken, zoho.EnvAccountsURL: fake.URL()}
			getenv := func(k string) string { return vars[k] }
			for _, args := range [][]string{
				{"status"}, {"status", "-json"}, {"dlq", "list"}, {"dlq", "show", "ev-1"}, {"dlq", "replay", "ev-1"}, {"replay", "-since", "1h"},
				{"replay", "-since", "1h", "-dry-run"}, {"setup"}, {"channels", "list"}, {"doctor", "-rules", "../../rules.yaml"},
			} {
				t.Run(strings.Join(args, " "), func(t *testing.T) {
					t.Parallel()
					start := time.Now()
					code, out, errs := runWorkerMain(t, getenv, args...)
					took := time.Since(start)
					msg := errs
					if args[0] == "doctor" {
						msg = out // doctor reports it as its nats line
					}
					if code != ExitFailure || !strings.Contains(msg, "cannot reach NATS at "+target.url+": ") {
						t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errs)
					}
					// nats.go's connect timeout is 5 s; allow for a loaded machine.
					if took > 7*time.Second {
						t.Errorf("took %s", took)
					}
				})
			}
		})
	}
	if fake.TokenRefreshes() != refreshes {
		t.Errorf("a command spent a token refresh while NATS was out of reach (doctor must not)")
	}
}

// One-off action flags never read ZOHOOK_*: ZOHOOK_ALL=1 does not turn
// `dlq replay` into "replay everything", ZOHOOK_JSON does not change an
// output, ZOHOOK_SINCE does not start a replay.
func TestActionFlagsIgnoreTheEnvironment(t *testing.T) {
	env := startLayout(t)
	ctx := context.Background()
	pub := events.NewPublisher(env.JS, env.Stream)
	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ev-a", "ev-b"} {
		ev := &events.Envelope{ID: id, Source: events.SourceCRMNotify, Connection: "default", Module: "Deals", Operation: "update",
			RecordID: "57257670000005241" + id[3:], ReceivedAt: time.Now().UTC()}
		if err := dlq.DeadLetter(ctx, &worker.Message{Envelope: ev, Sequence: 1, Delivered: 1, Subject: "zoho.x"}, worker.Permanent(errors.New("refused"))); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"ZOHOOK_NATS_URL": env.Embedded.ClientURL(), "ZOHOOK_ALL": "1", "ZOHOOK_JSON": "true",
		"ZOHOOK_SINCE": "1h", "ZOHOOK_DRY_RUN": "true", "ZOHOOK_IN_DOUBT": "done"}
	getenv := func(k string) string { return vars[k] }
	if code, _, errs := runWorkerMain(t, getenv, "dlq", "replay"); code != ExitUsage || !strings.Contains(errs, "give one EVENT_ID or -all") {
		t.Fatalf("dlq replay with ZOHOOK_ALL=1: exit %d %s", code, errs)
	}
	if n, err := dlq.Count(ctx); err != nil || n != 2 {
		t.Fatalf("dead letters after `dlq replay` with ZOHOOK_ALL=1: %d %v", n, err)
	}
	if code, out, _ := runWorkerMain(t, getenv, "dlq", "list"); code != ExitOK || strings.HasPrefix(out, "{") || !strings.Contains(out, "2 dead letter(s)") {
		t.Fatalf("dlq list with ZOHOOK_JSON: %d\n%s", code, out)
	}
	if code, _, errs := runWorkerMain(t, getenv, "replay"); code != ExitUsage || !strings.Contains(errs, "-since is required") {
		t.Fatalf("replay with ZOHOOK_SINCE: %d %s", code, errs)
	}
	// -in-doubt from the environment would record a step as done.
	if code, out, errs := runWorkerMain(t, getenv, "dlq", "replay", "ev-a"); code != ExitOK || !strings.Contains(out, "1 event(s) replayed") {
		t.Fatalf("dlq replay ev-a: %d %s %s", code, out, errs)
	}
}

// `-json` listings: one shape each (see docs/pending/issue12-readme.md).
func TestDLQListJSON(t *testing.T) {
	env := startLayout(t)
	ctx := context.Background()
	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, events.NewPublisher(env.JS, env.Stream))
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "ZOHOOK_NATS_URL" {
			return env.Embedded.ClientURL()
		}
		return ""
	}
	code, out, errs := runWorkerMain(t, getenv, "dlq", "list", "-json")
	if code != ExitOK || strings.TrimSpace(out) != "{\n  \"dead_letters\": [],\n  \"count\": 0\n}" {
		t.Fatalf("empty dlq list -json: %d %s %s", code, out, errs)
	}
	ev := &events.Envelope{ID: "ev-json", Source: events.SourceCRMNotify, Connection: "default", Module: "Deals", Operation: "update",
		RecordID: "5725767000000524157", ReceivedAt: time.Now().UTC()}
	if err := dlq.DeadLetter(ctx, &worker.Message{Envelope: ev, Sequence: 7, Delivered: 3, Subject: "zoho.x"},
		worker.Permanent(&worker.Failure{Rule: "r", Step: "s", Action: "crm.update_record", Err: errors.New("INVALID_DATA")})); err != nil {
		t.Fatal(err)
	}
	// A stored message that is not an event is listed too (it used to crash the list).
	if err := dlq.DeadLetterRaw(ctx, "zoho.garbage", 9, []byte("not json"), worker.Permanent(errors.New("undecodable"))); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runWorkerMain(t, getenv, "dlq", "list", "-json")
	var got struct {
		DeadLetters []struct {
			ID     string               `json:"id"`
			Event  *struct{ ID string } `json:"event"`
			Rule   string               `json:"rule"`
			Error  string               `json:"error"`
			DeadAt time.Time            `json:"dead_at"`
		} `json:"dead_letters"`
		Count int `json:"count"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != ExitOK || err != nil || got.Count != 2 || len(got.DeadLetters) != 2 {
		t.Fatalf("dlq list -json: %d %v %s %s", code, err, out, errs)
	}
	if d := got.DeadLetters[0]; d.ID != "ev-json" || d.Event == nil || d.Event.ID != "ev-json" || d.Rule != "r" || !strings.Contains(d.Error, "INVALID_DATA") || d.DeadAt.IsZero() {
		t.Fatalf("first dead letter %+v", d)
	}
	if d := got.DeadLetters[1]; d.ID != "seq-9" || d.Event != nil {
		t.Fatalf("raw dead letter %+v", d)
	}
	if code, out, _ := runWorkerMain(t, getenv, "dlq", "list"); code != ExitOK || !strings.Contains(out, "seq-9") || !strings.Contains(out, "2 dead letter(s)") {
		t.Fatalf("dlq list: %d\n%s", code, out)
	}
}
