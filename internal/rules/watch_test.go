package rules_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/testutil"

	"github.com/zohook/zohook/internal/rules"
)

func ruleFile(name string) string {
	return "version: 1\nrules:\n  - name: " + name + "\n    on: {source: crm.notify}\n    steps: [{action: crm.coql, with: {query: select id from Deals}}]\n"
}

type reload struct {
	set *rules.Set
	err error
}

// syncBuffer: a log sink safe for concurrent writers.
type syncBuffer = testutil.SyncBuffer

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(ruleFile("first")), 0o644); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan reload, 16)
	logs := &syncBuffer{}
	w := rules.NewWatcher(path, nil,
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
	next := func() reload {
		t.Helper()
		select {
		case r := <-reloads:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no reload")
		}
		return reload{}
	}
	// The initial load happens after the directory watch is set up.
	if r := next(); r.err != nil || r.set.Rules()[0].Name != "first" {
		t.Fatalf("initial: %+v", r)
	}

	t.Run("valid swap", func(t *testing.T) {
		if err := os.WriteFile(path, []byte(ruleFile("second")), 0o644); err != nil {
			t.Fatal(err)
		}
		r := next()
		if r.err != nil || r.set.Rules()[0].Name != "second" || w.Current() != r.set {
			t.Fatalf("reload: %+v", r)
		}
	})
	t.Run("invalid kept", func(t *testing.T) {
		before := w.Current()
		if err := os.WriteFile(path, []byte(strings.Replace(ruleFile("third"), "crm.coql", "crm.cql", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		r := next()
		var le *rules.LoadError
		if !errors.As(r.err, &le) || r.set != nil {
			t.Fatalf("want a LoadError, got %+v", r)
		}
		if w.Current() != before {
			t.Errorf("the last good set must stay")
		}
		if !strings.Contains(logs.String(), `unknown action \"crm.cql\"`) {
			t.Errorf("log lacks the problem: %s", logs.String())
		}
	})
	t.Run("editor rename replace", func(t *testing.T) {
		tmp := filepath.Join(dir, ".rules.yaml.swp")
		if err := os.WriteFile(tmp, []byte(ruleFile("fourth")), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		r := next()
		if r.err != nil || w.Current().Rules()[0].Name != "fourth" {
			t.Fatalf("after rename: %+v", r)
		}
		// The watch survives the rename: a later write is seen too.
		if err := os.WriteFile(path, []byte(ruleFile("fifth")), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := next(); r.err != nil || r.set.Rules()[0].Name != "fifth" {
			t.Fatalf("after rename and write: %+v", r)
		}
	})
	t.Run("other files ignored, same content not reloaded", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("junk: ["), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w.Reload(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(ruleFile("sixth")), 0o644); err != nil {
			t.Fatal(err)
		}
		// The next reload reported is sixth: neither other.yaml nor the
		// unchanged Reload produced one.
		if r := next(); r.err != nil || r.set.Rules()[0].Name != "sixth" {
			t.Fatalf("got %+v", r)
		}
	})
}
