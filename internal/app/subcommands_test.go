package app

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/worker"
)

func TestDLQAndReplayCommands(t *testing.T) {
	env := startLayout(t)
	ctx := context.Background()
	url := env.Embedded.ClientURL()
	pub := events.NewPublisher(env.JS, env.Stream)
	ev := &events.Envelope{ID: "ev-dead-1", Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
		Operation: "update", RecordID: "5725767000000524157", ReceivedAt: time.Now().UTC()}
	if _, err := pub.Publish(ctx, []*events.Envelope{ev}); err != nil {
		t.Fatal(err)
	}
	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	cause := worker.Permanent(&worker.Failure{Rule: "deal-won", Step: "invoice", Action: "books.create_record", Err: errors.New("code 1002: Contact does not exist.")})
	if err := dlq.DeadLetter(ctx, &worker.Message{Envelope: ev, Sequence: 1, Delivered: 1, Subject: "zoho.x"}, cause); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "ZOHOOK_NATS_URL" {
			return url
		}
		return ""
	}
	runCmd := func(args ...string) (int, string, string) {
		// stderr is shared with the NATS connection's callbacks, which may
		// still run after the command returned.
		var out bytes.Buffer
		errb := &testutil.SyncBuffer{}
		code, ok := WorkerSubcommand(ctx, args[0], args[1:], &out, errb, getenv)
		if !ok {
			t.Fatalf("%v is not a subcommand", args)
		}
		return code, out.String(), errb.String()
	}
	code, out, stderr := runCmd("dlq", "list")
	if code != 0 || !strings.Contains(out, "ev-dead-1") || !strings.Contains(out, "deal-won/invoice") || !strings.Contains(out, "1 dead letter") {
		t.Fatalf("list: %d %q %q", code, out, stderr)
	}
	code, out, _ = runCmd("dlq", "show", "ev-dead-1")
	if code != 0 || !strings.Contains(out, `"action": "books.create_record"`) || !strings.Contains(out, "Contact does not exist") {
		t.Fatalf("show: %d %s", code, out)
	}
	if code, _, _ = runCmd("dlq", "show", "nope"); code != 3 {
		t.Fatalf("show unknown: exit %d, want 3", code)
	}
	code, out, stderr = runCmd("dlq", "replay", "--all")
	if code != 0 || !strings.Contains(out, "1 event(s) replayed") {
		t.Fatalf("replay: %d %q %q", code, out, stderr)
	}
	if got := env.Messages(t); got != 2 {
		t.Fatalf("events stream has %d messages after replay, want 2", got)
	}
	code, out, _ = runCmd("dlq", "list")
	if code != 0 || !strings.Contains(out, "0 dead letter") {
		t.Fatalf("list after replay: %s", out)
	}
	code, out, stderr = runCmd("replay", "-since", "1h")
	if code != 0 || !strings.Contains(out, "2 event(s) re-published") {
		t.Fatalf("replay -since: %d %q %q", code, out, stderr)
	}
	if code, _, _ = runCmd("replay"); code != 2 {
		t.Fatalf("replay without -since: exit %d", code)
	}
	if _, ok := WorkerSubcommand(ctx, "-concurrency", nil, nil, nil, getenv); ok {
		t.Fatal("flags must not be taken for subcommands")
	}
}
