package rules_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/errors/*.golden")

// TestLoadErrorsGolden checks every kind of load problem with its exact
// position. Each testdata/errors/X.yaml has the expected lines in X.golden
// (regenerate with -update and review the diff).
func TestLoadErrorsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			set, err := rules.Parse(filepath.Base(f), data)
			if err == nil {
				t.Fatalf("loaded %d rules, want errors", len(set.Rules()))
			}
			var le *rules.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LoadError: %v", err, err)
			}
			if len(le.Problems) != strings.Count(err.Error(), "\n")+1 {
				t.Errorf("Error() has not one line per problem")
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err2 := os.ReadFile(golden)
			if err2 != nil {
				t.Fatal(err2)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Errorf("problems differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestProblemFields(t *testing.T) {
	src := "version: 1\nrules:\n  - name: r\n    on: {source: crm.notify}\n    steps:\n      - action: crm.get_record\n        with: {module: Deals, id: \"1\", feilds: [a]}\n"
	_, err := rules.Parse("x.yaml", []byte(src))
	var le *rules.LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	p := le.Problems[0]
	if p.File != "x.yaml" || p.Line != 7 || p.Col != 40 || p.Rule != "r" || !strings.Contains(p.Message, `did you mean "fields"`) {
		t.Errorf("problem = %+v", p)
	}
}

func TestExampleRulesFile(t *testing.T) {
	set, err := rules.Load("../../rules.yaml")
	if err != nil {
		t.Fatalf("the example rules.yaml must load:\n%v", err)
	}
	if len(set.Rules()) < 5 {
		t.Errorf("example has %d rules", len(set.Rules()))
	}
	used := map[string]bool{}
	sources := map[string]bool{}
	for _, r := range set.Rules() {
		for _, s := range r.Sources {
			sources[s] = true
		}
		for _, st := range r.Steps {
			used[st.Action] = true
		}
	}
	for _, a := range []string{"books.get_records", "books.create_record", "crm.update_record", "crm.add_attachment", "crm.coql", "crm.raw_request"} {
		if !used[a] {
			t.Errorf("example does not use %s", a)
		}
	}
	if !sources[rules.SourceBooksWebhook] || !sources[rules.SourceCRMNotify] {
		t.Errorf("example sources: %v", sources)
	}
	if len(set.Version()) != 12 {
		t.Errorf("version %q", set.Version())
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := rules.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want not-exist", err)
	}
}

func TestYAMLFeatures(t *testing.T) {
	// Anchors, aliases and merge keys are plain YAML and must work; a key
	// written twice is a problem.
	src := `version: 1
vars: {org: "123"}
rules:
  - name: a
    on: &deals {source: crm.notify, module: Deals}
    steps:
      - action: books.get_record
        with: &common {entity: invoices, id: "1", organization_id: "${vars.org}"}
  - name: b
    on: *deals
    steps:
      - action: books.get_record
        with:
          <<: *common
          id: "2"
`
	set, err := rules.Parse("a.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(set.Match(&rules.Event{Source: "crm.notify", Module: "Deals", Operation: "update"})); got != 2 {
		t.Errorf("matched %d, want 2", got)
	}
	_, err = rules.Parse("d.yaml", []byte("version: 1\nversion: 1\nrules: []\n"))
	if err == nil || !strings.Contains(err.Error(), "d.yaml:2:1:") {
		t.Errorf("duplicate key: %v", err)
	}
}
