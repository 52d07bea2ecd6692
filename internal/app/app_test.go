package app

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/testutil"
)

// syncBuffer: a log sink safe for concurrent writers.
type syncBuffer = testutil.SyncBuffer

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The README's first command: -dev starts everything, prints a curl that
// works, and the event reaches the in-process worker.
func TestDevModeEndToEnd(t *testing.T) {
	var stdout, stderr syncBuffer
	var o ReceiverOptions
	o.Addr, o.Dev, o.Connection, o.BodyLimit = "127.0.0.1:0", true, "default", 1<<20
	o.PublishTimeout, o.ShutdownGrace, o.LogLevel = 2*time.Second, 5*time.Second, "info"
	o.NATS = NATSOptions{Listen: "127.0.0.1:0", DataDir: t.TempDir()}
	o.Getenv = func(string) string { return "" } // no Zoho credentials: the fake is used
	o.Worker = WorkerOptions{Rules: "../../rules.yaml", MaxDeliver: 5, EventTimeout: time.Minute, ShutdownGrace: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunReceiver(ctx, o, &stdout, &stderr) }()

	waitUntil(t, "banner with a curl", func() bool { return bannerCurl.MatchString(stdout.String()) })
	url, sample := pasteBannerCurl(t, stdout.String())
	resp, err := http.Post(url, "application/json", bytes.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"accepted":1`) {
		t.Fatalf("sample curl: %d %s", resp.StatusCode, body)
	}
	waitUntil(t, "the example Closed-Won rule ran against the fake Zoho", func() bool {
		return strings.Contains(stderr.String(), "event handled") && strings.Contains(stderr.String(), "record_id=5725767000000524157")
	})
	logs := stderr.String()
	for _, want := range []string{
		`msg="rule done" event_id=`, "rule=deal-won-create-invoice",
		"action=books.create_record", "action=crm.update_record", "result=\"invoice_number INV-",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("worker log lacks %q:\n%s", want, logs)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not shut down")
	}
	if !strings.Contains(stderr.String(), "receiver stopped") {
		t.Fatalf("no clean stop in logs:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), devToken) {
		t.Fatal("logs contain the notification token")
	}
}

// startLayout starts an embedded NATS with the whole layout, as a
// receiver creates it (4 partitions).
func startLayout(t *testing.T) *eventstest.Env {
	t.Helper()
	env := eventstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := EnsureLayout(ctx, env.JS, env.Stream, events.ConsumerConfig{}, events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	return env
}
