package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/testutil"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/app"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// binDir holds the binaries built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zohook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	root := repoRoot()
	for name, pkg := range map[string]string{"worker": "./cmd/worker", "receiver": "./cmd/receiver", "natsnode": "./internal/e2e/natsnode"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// natsEnv is an embedded NATS server other processes reach over TCP.
type natsEnv struct {
	emb *events.Embedded
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(t *testing.T) *natsEnv {
	t.Helper()
	emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := nats.Connect(emb.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := app.EnsureLayout(ctx, js, events.StreamConfig{}, e2eConsumers, events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	return &natsEnv{emb: emb, url: emb.ClientURL(), nc: nc, js: js}
}

// e2eConsumers: short ack wait and pinned TTL, so redeliveries and
// takeovers happen within a test's patience.
var e2eConsumers = events.ConsumerConfig{AckWait: 2 * time.Second, PinnedTTL: 2 * time.Second}

// proc is a zohook binary running as a subprocess, its output captured.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// syncBuffer: a log sink safe for concurrent writers.
type syncBuffer = testutil.SyncBuffer

// zohoEnv is the environment pointing a worker at the fake Zoho.
func zohoEnv(fake *zohotest.Server) []string {
	cr := fake.Credentials()
	return []string{
		"ZOHOOK_ZOHO_CLIENT_ID=" + cr.ClientID, "ZOHOOK_ZOHO_CLIENT_SECRET=" + cr.ClientSecret,
		"ZOHOOK_ZOHO_REFRESH_TOKEN=" + cr.RefreshToken, "ZOHOOK_ZOHO_ACCOUNTS_URL=" + fake.URL(),
		"ZOHOOK_ZOHO_BOOKS_ORG_ID=" + cr.OrgID,
	}
}

func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(filepath.Join(binDir, name), args...), out: &syncBuffer{}}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Dir = repoRoot()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// stacks makes the process print its goroutines (SIGQUIT, which also ends
// it) and returns those running zohook code: what a stalled process was
// waiting for.
func (p *proc) stacks() string {
	before := len(p.out.String())
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	_ = p.cmd.Wait()
	var out []string
	for _, g := range strings.Split(p.out.String()[before:], "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && strings.Contains(g, "zohook/internal/") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v\n%s", p.cmd.Path, err, p.out)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop on SIGTERM", p.cmd.Path)
		p.kill()
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool, logs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range logs {
				b.WriteString("\n--- " + filepath.Base(p.cmd.Path) + " output ---\n" + p.out.String())
			}
			t.Fatalf("timed out waiting for %s%s", what, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
