package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// stampRules: one CRM update per event, carrying the event id, so the fake
// shows exactly which events were acted on, how often, and in what order.
const stampRules = `
version: 1
rules:
  - name: stamp
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "${event.id}" } }
`

// receiverWithEmbeddedNATS starts a receiver that embeds its NATS server
// (as production single-node installs do: credentials required) and
// returns it with its public base URL, NATS URL and data directory.
func receiverWithEmbeddedNATS(t *testing.T, token string, args ...string) (recv *proc, base, natsURL, dataDir string) {
	t.Helper()
	addr, natsAddr := freeAddr(t), freeAddr(t)
	dataDir = t.TempDir()
	recv = startProc(t, "receiver", []string{"ZOHOOK_CRM_NOTIFY_TOKENS=" + token},
		append([]string{"-addr", addr, "-nats-listen", natsAddr, "-data-dir", dataDir, "-admin-addr", "127.0.0.1:0",
			"-log-format", "text", "-publish-timeout", "2s", "-ack-wait", "2s", "-pinned-ttl", "2s"}, args...)...)
	base = "http://" + addr
	waitFor(t, "receiver ready", 20*time.Second, httpReady(base+"/readyz"), recv)
	return recv, base, "nats://" + natsAddr, dataDir
}

// stampWorker starts a worker against a receiver's embedded NATS, finding
// the credentials in the receiver's data directory.
func stampWorker(t *testing.T, fake *zohotest.Server, natsURL, dataDir, name string) *proc {
	t.Helper()
	return startProc(t, "worker", zohoEnv(fake), "-nats-url", natsURL, "-data-dir", dataDir, "-rules", writeRules(t, stampRules),
		"-admin-addr", "127.0.0.1:0", "-name", name, "-crm-rate", "0", "-log-format", "text", "-shutdown-grace", "5s", "-concurrency", "8")
}

// stamps returns, per event id, how many times the fake received its
// update.
func stamps(fake *zohotest.Server) map[string]int {
	out := map[string]int{}
	for _, c := range fake.CallsTo(http.MethodPut, "/crm/v8/Deals") {
		body := string(c.Body)
		if i := strings.Index(body, `"Description":"`); i >= 0 {
			rest := body[i+len(`"Description":"`):]
			out[rest[:strings.IndexByte(rest, '"')]]++
		}
	}
	return out
}

// Issue 14: a 2xx is a promise. With no worker running, the work stream
// fills up: the receiver answers 503 (Zoho retries later) instead of 2xx
// for events it would then drop; every event that got 2xx is handled once
// a worker starts, and the receiver accepts again once the backlog drains.
func TestFullWorkStreamAnswers503AndLosesNothing(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	const token = "full-notify-token-3Qd"
	recv, base, natsURL, dataDir := receiverWithEmbeddedNATS(t, token, "-work-max-bytes", "1048576")
	poster := newNotifyPoster(base, token)
	accepted, refused := 0, 0
	for i := 0; refused < 5 && i < 20000; i++ {
		rid := fake.CRMInsert("Deals", map[string]any{"Deal_Name": fmt.Sprint("d ", i)})
		switch code := poster.post(i, rid); code {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("notification %d answered %d", i, code)
		}
	}
	if refused == 0 || accepted < 100 {
		t.Fatalf("%d accepted, %d refused: the 1 MiB work stream never filled", accepted, refused)
	}
	// Full: Zoho is told to come back in a minute, not seconds.
	full := fake.CRMInsert("Deals", map[string]any{"Deal_Name": "full"})
	resp, err := http.Post(base+"/zoho/crm/notify", "application/json", strings.NewReader(
		`{"server_time":1764400999999,"module":"Deals","ids":["`+full+`"],"operation":"update","channel_id":"1000000068001","token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("full: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	w := stampWorker(t, fake, natsURL, dataDir, "w1")
	waitFor(t, "every accepted event handled", 120*time.Second, func() bool { return len(stamps(fake)) >= accepted }, w, recv)
	for id, n := range stamps(fake) {
		if n != 1 {
			t.Fatalf("event %s acted on %d times", id, n)
		}
	}
	got := stamps(fake)
	for id := range poster.acceptedIDs() {
		if got[id] != 1 {
			t.Fatalf("accepted event %s acted on %d times", id, got[id])
		}
	}
	// Drained: accepting again.
	rid := fake.CRMInsert("Deals", map[string]any{"Deal_Name": "after"})
	if code := poster.post(99999, rid); code != http.StatusOK {
		t.Fatalf("after the backlog drained: %d", code)
	}
}

// Issue 14: the history's age limit never applies to events nobody handled:
// with -history-max-age 3s and no worker for 6 s, every accepted event is
// still handled when a worker starts.
func TestHistoryAgeNeverDropsUnhandledEvents(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	const token = "age-notify-token-7Rt"
	recv, base, natsURL, dataDir := receiverWithEmbeddedNATS(t, token, "-history-max-age", "3s", "-duplicate-window", "2s")
	poster := newNotifyPoster(base, token)
	for i := range 50 {
		rid := fake.CRMInsert("Deals", map[string]any{"Deal_Name": "d"})
		if code := poster.post(i, rid); code != http.StatusOK {
			t.Fatalf("notification %d: %d", i, code)
		}
	}
	time.Sleep(6 * time.Second) // twice the history's age: the history dropped them, the work stream did not
	w := stampWorker(t, fake, natsURL, dataDir, "w1")
	waitFor(t, "all 50 handled", 60*time.Second, func() bool { return len(stamps(fake)) == 50 }, w, recv)
}

// Issue 14: the embedded NATS server refuses anonymous clients and unknown
// keys; a worker on the same machine connects with the seed the receiver
// wrote; /metrics is on the admin listener, not the public port.
func TestEmbeddedNATSAndOperationalEndpointsAreClosed(t *testing.T) {
	const token = "closed-notify-token-1Wx"
	recv, base, natsURL, dataDir := receiverWithEmbeddedNATS(t, token)
	if nc, err := nats.Connect(natsURL, nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the embedded NATS server")
	}
	stranger := t.TempDir()
	if _, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: stranger, Auth: true}); err != nil {
		t.Fatal(err)
	}
	o, err := nats.NkeyOptionFromSeed(events.EmbeddedSeedFile(stranger, events.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(natsURL, o, nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an unknown key connected")
	}
	// A worker without the credentials is told what is missing.
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	wcmd := exec.Command(filepath.Join(binDir, "worker"), "-nats-url", natsURL, "-data-dir", t.TempDir(), "-rules",
		filepath.Join(repoRoot(), "rules.yaml"), "-admin-addr", "")
	wcmd.Env = zohoEnv(fake)
	out, err := wcmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot reach NATS") || !strings.Contains(string(out), "-data-dir") {
		t.Fatalf("worker without credentials: %v\n%s", err, out)
	}
	// The public port serves no metrics.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics: %d", resp.StatusCode)
	}
	admin := adminAddr(t, recv)
	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(admin, "127.0.0.1:") {
		t.Fatalf("admin /metrics at %s: %d", admin, resp.StatusCode)
	}
	_ = dataDir
}

// adminAddr reads the admin listener's address from a process's log.
func adminAddr(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	waitFor(t, "admin listener", 10*time.Second, func() bool {
		for _, line := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(line, "admin endpoints") {
				if i := strings.Index(line, "addr="); i >= 0 {
					addr = strings.Fields(line[i+len("addr="):])[0]
					return true
				}
			}
		}
		return false
	}, p)
	return addr
}

// Issue 14: a flag combination NATS would refuse fails at start, within a
// second, naming both flags (it used to hang 30 s, then print error 10052).
func TestBadFlagCombinationFailsAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "receiver"), "-history-max-age", "30s", "-data-dir", t.TempDir(),
		"-nats-listen", "", "-addr", "127.0.0.1:0", "-admin-addr", "")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2\n%s", err, out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
	for _, want := range []string{"-duplicate-window", "-history-max-age"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("message lacks %s:\n%s", want, out)
		}
	}
}
