package rules_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zohook/zohook/internal/rules"
)

// FuzzLoad feeds arbitrary bytes to Parse: it must return a set or a
// *LoadError, never panic; a set it returns must run in a dry run.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.yaml")
	seeds = append(seeds, "../../rules.yaml")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(chain))
	f.Add([]byte(matchRules))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := rules.Parse("fuzz.yaml", data)
		if err != nil {
			var le *rules.LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error is not a non-empty *LoadError: %T %v", err, err)
			}
			return
		}
		for _, r := range set.Rules() {
			ev := &rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update", RecordID: "1"}
			_, _ = r.Run(context.Background(), rules.Input{Event: ev, Record: map[string]any{}}, &rules.DryRun{})
			_ = set.Explain(ev, nil)
		}
	})
}
