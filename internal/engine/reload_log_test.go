package engine_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/testutil"
)

// TestRulesReloadedLogsOnceAndCountsRecovery wires the watcher to the
// engine as the worker does: a bad save logs one error line, naming the
// real file, and counts result="invalid"; restoring the text in force logs
// "rules reloaded" with the version and counts result="ok".
func TestRulesReloadedLogsOnceAndCountsRecovery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prod-rules.yml")
	good := "version: 1\nrules:\n  - name: r\n    on: {source: crm.notify}\n    steps: [{action: crm.coql, with: {query: select id from Deals}}]\n"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	reg := prometheus.NewRegistry()
	var eng *engine.Engine
	reported := make(chan error, 8)
	w := rules.NewWatcher(path, set, rules.WithLogger(log), rules.OnReload(func(s *rules.Set, err error) {
		eng.RulesReloaded(s, err)
		reported <- err
	}))
	eng, err = engine.New(engine.Config{Rules: w, Actors: engine.StaticActors{}, Logger: log, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	save := func(content string) error {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w.Reload(); err != nil { // what Run does after a file event
			<-reported
			return err
		}
		select {
		case err := <-reported:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("the fix was not reported")
		}
		return nil
	}
	if save(strings.Replace(good, "crm.coql", "crm.cql", 1)) == nil {
		t.Fatal("bad save accepted")
	}
	if err := save(good); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Errorf("%d error lines for one bad save:\n%s", n, out)
	}
	if !strings.Contains(out, "file="+path) || strings.Contains(out, "rules.yaml is invalid") {
		t.Errorf("the failure must name %s:\n%s", path, out)
	}
	if !strings.Contains(out, "msg=\"rules reloaded\"") || !strings.Contains(out, "version="+set.Version()) {
		t.Errorf("no 'rules reloaded' with version %s after the fix:\n%s", set.Version(), out)
	}
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "zohook_rules_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					counts[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if counts["invalid"] != 1 || counts["ok"] != 1 {
		t.Errorf("zohook_rules_reloads_total = %v, want invalid 1, ok 1", counts)
	}
}
