package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// custom is a layout a production receiver was started with: every setting
// differs from the flags' defaults.
var custom = LayoutOptions{StreamReplicas: 1, Partitions: 4, WorkMaxBytes: 64 << 20, HistoryMaxAge: 48 * time.Hour,
	HistoryMaxBytes: 128 << 20, DuplicateWindow: 5 * time.Minute, AckWait: 45 * time.Second, PinnedTTL: 20 * time.Second}

// snapshot reads the configuration of every stream (KV buckets included)
// and every consumer of the work stream.
func snapshot(t *testing.T, js jetstream.JetStream) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		s, err := js.Stream(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		out["stream "+n] = s.CachedInfo().Config
		cons := s.ListConsumers(ctx)
		for ci := range cons.Info() {
			if ci.Config.Durable != "" && !strings.HasPrefix(ci.Name, "JS_SRC_") {
				out["consumer "+n+"/"+ci.Name] = ci.Config
			}
		}
	}
	return out
}

func diffSnapshots(t *testing.T, what string, before, after map[string]any) {
	t.Helper()
	for k, v := range before {
		if !reflect.DeepEqual(v, after[k]) {
			t.Errorf("%s changed %s:\nbefore %+v\nafter  %+v", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s created %s", what, k)
		}
	}
}

// Operator commands and workers only look the layout up: every command,
// run with default flags against a layout made with custom ones, leaves
// every setting as it was. A receiver restarted with default flags warns
// about each difference and changes nothing.
func TestCommandsNeverReshapeTheLayout(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	// The eventstest streams have other settings: start from the custom layout.
	for _, n := range []string{env.Stream.Name, env.Stream.HistoryName} {
		_ = env.JS.DeleteStream(ctx, n)
	}
	if _, err := EnsureLayout(ctx, env.JS, custom.Stream(), custom.Consumer(), events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, env.JS)
	url := env.Embedded.ClientURL()
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	vars := map[string]string{"ZOHOOK_NATS_URL": url, zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret,
		zoho.EnvRefreshToken: cr.RefreshToken, zoho.EnvAccountsURL: fake.URL()}
	getenv := func(k string) string { return vars[k] }
	for _, args := range [][]string{
		{"status"}, {"status", "-json"}, {"dlq", "list"}, {"replay", "-since", "1h"}, {"channels", "list"}, {"setup"},
	} {
		var out bytes.Buffer
		code, ok := WorkerSubcommand(ctx, args[0], args[1:], &out, &testutil.SyncBuffer{}, getenv)
		if !ok {
			t.Fatalf("%v is not a command", args)
		}
		if args[0] == "setup" {
			if code != ExitFailure || !strings.Contains(out.String(), "nothing was changed") {
				t.Errorf("setup with default flags against a custom layout: exit %d\n%s", code, out.String())
			}
		}
		diffSnapshots(t, strings.Join(args, " "), before, snapshot(t, env.JS))
	}

	// A worker with default flags: runs, changes nothing.
	o := WorkerOptions{Rules: "../../rules.yaml", MaxDeliver: 5, EventTimeout: time.Minute, ShutdownGrace: time.Second,
		LogFormat: "text", LogLevel: "info", Getenv: getenv, NATS: NATSOptions{URL: url}}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var wlog testutil.SyncBuffer
	if err := RunWorker(wctx, o, &wlog); err != nil {
		t.Fatalf("worker: %v\n%s", err, wlog.String())
	}
	if !strings.Contains(wlog.String(), "worker consuming") {
		t.Fatalf("the worker did not run:\n%s", wlog.String())
	}
	diffSnapshots(t, "a worker", before, snapshot(t, env.JS))

	// A receiver restarted with default flags keeps NATS's settings and
	// names each difference.
	var rlog testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&rlog, nil))
	bb := &Backbone{NC: env.NC, JS: env.JS}
	var defaults LayoutOptions
	if err := ownLayout(ctx, bb, defaults.withDefaults(), log); err != nil {
		t.Fatal(err)
	}
	diffSnapshots(t, "a receiver with default flags", before, snapshot(t, env.JS))
	for _, want := range []string{"setting=max_bytes", "setting=max_age", "setting=ack_wait", "stored=48h", "flag=720h"} {
		if !strings.Contains(rlog.String(), want) {
			t.Errorf("receiver log lacks %q:\n%s", want, rlog.String())
		}
	}
	if bb.Stream.Partitions != 4 || bb.Stream.HistoryMaxAge != 48*time.Hour || bb.Consumer.AckWait != 45*time.Second {
		t.Fatalf("the receiver uses %+v %+v, not what NATS holds", bb.Stream, bb.Consumer)
	}
}

// `worker setup` is the explicit way to change the layout: -apply applies
// growing changes, shrinking ones need -allow-shrink, the partition count
// never changes.
func TestSetupAppliesOnlyWhatWasAsked(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	for _, n := range []string{env.Stream.Name, env.Stream.HistoryName} {
		_ = env.JS.DeleteStream(ctx, n)
	}
	if _, err := EnsureLayout(ctx, env.JS, custom.Stream(), custom.Consumer(), events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "ZOHOOK_NATS_URL" {
			return env.Embedded.ClientURL()
		}
		return ""
	}
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code, _ := WorkerSubcommand(ctx, "setup", append([]string{"-partitions", "4"}, args...), &out, &testutil.SyncBuffer{}, getenv)
		return code, out.String()
	}
	read := func() events.StreamConfig {
		s, err := events.ReadLayout(ctx, env.JS, events.StreamConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Longer history (grow) and a smaller work stream (shrink).
	args := []string{"-history-max-age", "96h", "-history-max-bytes", "128MiB", "-work-max-bytes", "33554432", "-duplicate-window", "5m",
		"-ack-wait", "45s", "-pinned-ttl", "20s"}
	args[3] = "134217728"
	if code, out := run(args...); code != ExitFailure || read().HistoryMaxAge != 48*time.Hour {
		t.Fatalf("dry run changed the layout or did not report: %d\n%s", code, out)
	}
	code, out := run(append(args, "-apply")...)
	if got := read(); code != ExitFailure || got.HistoryMaxAge != 96*time.Hour || got.WorkMaxBytes != 64<<20 || !strings.Contains(out, "shrinks: add -allow-shrink") {
		t.Fatalf("-apply: exit %d, layout %+v\n%s", code, got, out)
	}
	code, out = run(append(args, "-apply", "-allow-shrink")...)
	if got := read(); code != ExitOK || got.WorkMaxBytes != 32<<20 {
		t.Fatalf("-apply -allow-shrink: exit %d, layout %+v\n%s", code, got, out)
	}
	// Partitions: never in place.
	var out2 bytes.Buffer
	code, _ = WorkerSubcommand(ctx, "setup", []string{"-partitions", "8", "-apply", "-allow-shrink", "-json"}, &out2, &testutil.SyncBuffer{}, getenv)
	var outs []events.Outcome
	if err := json.Unmarshal(out2.Bytes(), &outs); err != nil || code != ExitFailure {
		t.Fatalf("partitions change: exit %d %v\n%s", code, err, out2.String())
	}
	if read().Partitions != 4 {
		t.Fatal("the partition count changed")
	}
	// -apply is an action flag: the environment cannot set it.
	envApply := func(k string) string {
		if k == "ZOHOOK_APPLY" || k == "ZOHOOK_ALLOW_SHRINK" {
			return "true"
		}
		return getenv(k)
	}
	was := read().HistoryMaxAge
	var out3 bytes.Buffer
	WorkerSubcommand(ctx, "setup", []string{"-partitions", "4", "-history-max-age", "1h"}, &out3, &testutil.SyncBuffer{}, envApply)
	if read().HistoryMaxAge != was {
		t.Fatal("ZOHOOK_APPLY in the environment applied a change")
	}
	_ = prometheus.NewRegistry
}
