package fuzzci

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

type target struct{ pkg, name string }

var fuzzFunc = regexp.MustCompile(`^func (Fuzz\w+)\(\w+ \*testing\.F\)`)

// targets finds every fuzz target under root.
func targets(t *testing.T, root string) []target {
	t.Helper()
	var out []target
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := fuzzFunc.FindStringSubmatch(sc.Text()); m != nil {
				rel, _ := filepath.Rel(root, filepath.Dir(path))
				out = append(out, target{pkg: "./" + filepath.ToSlash(rel), name: m[1]})
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Each target runs alone (the engine's workers limited to one so that the
// end-to-end tests running beside it keep their share of the cores). A
// crash fails the test with the engine's report; the failing input is saved
// under the package's testdata/fuzz, as `go test -fuzz` always does, and
// from then on replays in the ordinary run.
func TestFuzzTargetsShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no fuzzing")
	}
	// A count, not a duration: with a duration, Go 1.26's fuzz coordinator
	// can report its own deadline as a failure ("context deadline exceeded"
	// with no failing input) when the deadline lands while a worker is busy,
	// which is likely on a loaded 2-core CI machine (golang/go#75804, fixed
	// in Go 1.27). A count has no deadline to race; starved, it runs slower
	// instead of failing. ZOHOOK_FUZZTIME takes either form.
	fuzztime := os.Getenv("ZOHOOK_FUZZTIME")
	if fuzztime == "" {
		fuzztime = "2000x"
	}
	root := repoRoot()
	all := targets(t, root)
	// The repository's decoders and loader must stay covered: if a rename
	// drops one, this list says so instead of fuzzing less in silence.
	for _, want := range []string{"FuzzCRMNotify", "FuzzCRMWorkflowHook", "FuzzBooksHook", "FuzzLoad"} {
		found := false
		for _, tg := range all {
			found = found || tg.name == want
		}
		if !found {
			t.Errorf("fuzz target %s not found", want)
		}
	}
	for _, tg := range all {
		t.Run(tg.name, func(t *testing.T) {
			cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+tg.name+"$", "-fuzztime", fuzztime,
				// Minimizing a new input is capped by a count for the same reason.
				"-fuzzminimizetime", "200x", "-parallel", "1", tg.pkg)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go test -fuzz %s %s: %v\n%s", tg.name, tg.pkg, err, out)
			}
			t.Logf("%s %s: %s", tg.pkg, tg.name, lastLine(string(out), "fuzz: elapsed"))
		})
	}
}

// lastLine returns the last line of out starting with prefix (the
// engine's final progress report: executions and new inputs found).
func lastLine(out, prefix string) string {
	last := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			last = l
		}
	}
	return last
}
