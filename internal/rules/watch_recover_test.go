package rules_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/rules"
)

// TestWatcherReportsEveryRecovery: a broken save followed by a fix that
// restores the text in force is a reload the operator must see ("rules
// reloaded" with the version, an OnReload success for the ok metric),
// every time; each bad save logs exactly one failure, naming the file.
func TestWatcherReportsEveryRecovery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prod-rules.yml")
	good := ruleFile("first")
	bad := strings.Replace(good, "crm.coql", "crm.cql", 1)
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	initial, err := rules.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan reload, 16)
	logs := &syncBuffer{}
	w := rules.NewWatcher(path, initial,
		rules.WithDebounce(20*time.Millisecond),
		rules.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		rules.OnReload(func(s *rules.Set, err error) { reloads <- reload{s, err} }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// Run sets up its directory watch asynchronously: write until the
	// first reload is seen, so no save is lost before the watch exists.
	save := func(content string) reload {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-reloads:
				return r
			case <-time.After(500 * time.Millisecond):
			case <-deadline:
				t.Fatal("no reload reported")
			}
		}
	}
	count := func(s string) int { return strings.Count(logs.String(), s) }

	for round := 1; round <= 2; round++ {
		if r := save(bad); r.err == nil {
			t.Fatalf("round %d: bad save reported %+v", round, r)
		}
		// Wait out any straggling event of that save before counting.
		time.Sleep(100 * time.Millisecond)
		if n := count("rules reload failed"); n != round {
			t.Fatalf("round %d: %d failure lines, want one per bad save:\n%s", round, n, logs)
		}
		r := save(good)
		if r.err != nil || r.set == nil || r.set.Version() != initial.Version() {
			t.Fatalf("round %d: fix reported %+v, want the restored version %s", round, r, initial.Version())
		}
		if n := count("rules reloaded"); n != round {
			t.Fatalf("round %d: %d 'rules reloaded' lines, want %d:\n%s", round, n, round, logs)
		}
	}
	out := logs.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "rules reload failed") && !strings.Contains(line, "file="+path) {
			t.Errorf("failure line does not name %s: %s", path, line)
		}
		if strings.Contains(line, "rules reloaded") && !strings.Contains(line, "version="+initial.Version()) {
			t.Errorf("reload line lacks the version: %s", line)
		}
	}
	// The same valid text again, with no failure between: nothing to report.
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reloads:
		t.Fatalf("unchanged file reported %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
}
