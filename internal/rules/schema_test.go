package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite docs/schema/rules.schema.json from the loader's definitions")

const (
	schemaFile  = "../../docs/schema/rules.schema.json"
	exampleFile = "../../rules.yaml"
	docsFile    = "../../docs/rules.md"
)

// compileSchema compiles the generated schema; ptr selects a sub-schema
// ("" for the whole file, "#/$defs/rule" ...).
func compileSchema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	data, err := SchemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("rules.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("rules.schema.json" + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	return sch
}

// instance converts YAML to what a YAML language server validates: the
// JSON data model (anchors, aliases and merge keys resolved).
func instance(t *testing.T, data []byte) (any, error) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return toJSONModel(t, v), nil
}

func toJSONModel(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The schema is a valid draft 2020-12 schema, the checked-in copy is the
// generated one, and every action and input carries a description.
func TestSchemaFileUpToDate(t *testing.T) {
	data, err := SchemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	compileSchema(t, "")
	if *updateSchema {
		if err := os.WriteFile(schemaFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	onDisk, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./internal/rules -run TestSchemaFileUpToDate -update-schema)", err)
	}
	if !bytes.Equal(onDisk, data) {
		t.Errorf("%s is not what the loader's definitions generate: run\n  go test ./internal/rules -run TestSchemaFileUpToDate -update-schema\n(or worker rules schema > docs/schema/rules.schema.json) and commit it", schemaFile)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	defs := s["$defs"].(map[string]any)
	for _, a := range Actions() {
		with, ok := defs["with."+a.Name].(map[string]any)
		if !ok {
			t.Errorf("no schema for %s", a.Name)
			continue
		}
		ps := with["properties"].(map[string]any)
		for _, in := range append(slices.Clone(a.Required), a.Optional...) {
			p, ok := ps[in].(map[string]any)
			if !ok || p["description"] == "" {
				t.Errorf("%s: input %s has no description", a.Name, in)
			}
		}
		if len(ps) != len(a.Required)+len(a.Optional) {
			t.Errorf("%s: schema has %d inputs, the action %d", a.Name, len(ps), len(a.Required)+len(a.Optional))
		}
	}
}

// The rules.yaml example names the checked-in schema for editors.
func TestExampleNamesSchema(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	const want = "# yaml-language-server: $schema=docs/schema/rules.schema.json"
	if first != want {
		t.Errorf("rules.yaml starts with %q, want %q", first, want)
	}
}

// kindPool are literal values as the loader sees them (int64, float64,
// string, bool, nil, map[string]any, []any). Integral floats (1.0) are
// left out on purpose: YAML tells 1.0 from 1 and the loader refuses 1.0
// where it wants a whole number, but JSON Schema's "integer" is a
// mathematical integer, so the schema accepts it (a gap no schema can
// close).
func kindPool() []any {
	strs := []string{"", " ", "\u00a0", "\u3000x", "x", "GET", "get", "Post", "patch ", "PUT", "json", "JSON", "text", "binary",
		"asc", "DESC", "all", "default", "workflow", "Workflow", "blueprint", "orchestration",
		"/Notes", "Notes", "settings/modules", "//evil.example/x", "http://evil.example", "a:b", "/a:b", "1x:y", ":x",
		"../x", "/a/../b", "/a/./b", "/a/..", "..", "/a/%2e%2e/b", "a%2F..%2Fb", "/x?y=1", "/x#y", `a\b`, "/x\x01", "/x\x7f",
		"%zz", "%4", "/ok%20x", "/a//b", " /x", "/users@host",
		"30s", "1.5h", "30", "0", "-1s", "+2m", "1h30m", ".5s", "5.s", "1µs", "1μs", "2d", "s", "-",
		"select id from Deals", "  SELECT x", "select", "selectx from", "delete from Deals", "\tselect\tid",
		"5725767000000524157", "a,b", "${event.id}"}
	pool := []any{nil, true, false, int64(0), int64(1), int64(-1), int64(200), int64(201), int64(1500), uint64(18446744073709551615),
		1.5, -0.5,
		map[string]any{}, map[string]any{"a": "b"}, map[string]any{"a": int64(1), "b": true, "c": nil}, map[string]any{"a": map[string]any{"b": int64(1)}},
		map[string]any{"a": []any{}},
		[]any{}, []any{"a"}, []any{"a", int64(1)}, []any{int64(1)}, []any{1.5}, []any{nil}, []any{""}, []any{" "},
		[]any{map[string]any{"a": int64(1)}}, []any{map[string]any{}}, []any{map[string]any{}, "x"},
		[]any{"workflow"}, []any{"workflow", "blueprint"}, []any{"all"}, []any{"Workflow"},
		[]any{map[string]any{"name": "f", "file_name": "a.txt", "content": "x"}},
		[]any{map[string]any{"name": "f", "file_name": "a.txt", "content_base64": "eA=="}},
		[]any{map[string]any{"name": "f", "file_name": "a.txt"}},
		[]any{map[string]any{"name": "f", "file_name": "a.txt", "content": "x", "content_base64": "eA=="}},
		[]any{map[string]any{"name": "", "file_name": "a", "content": ""}},
		[]any{map[string]any{"name": "f", "file_name": "a", "content": int64(1)}},
		[]any{map[string]any{"name": "f", "file_name": "a", "content": "x", "extra": int64(1)}},
		[]any{map[string]any{"file_name": "a", "content": "x"}},
		[]any{map[string]any{"name": "f", "file_name": "a", "content": nil}},
	}
	for _, s := range strs {
		pool = append(pool, s)
	}
	return pool
}

// Each kind's schema accepts exactly the literal values checkLiteral
// accepts (the loader's check of a literal input).
func TestKindSchemasAgreeWithCheckLiteral(t *testing.T) {
	for k := kAny; k <= kFiles; k++ {
		ks, err := kindSchema(k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(ks)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		url := fmt.Sprintf("kind%d.json", k)
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			t.Fatalf("kind %d: %v\n%s", k, err, b)
		}
		for _, v := range kindPool() {
			loaderOK := checkLiteral(k, v) == ""
			schemaOK := sch.Validate(toJSONModel(t, v)) == nil
			if loaderOK != schemaOK {
				t.Errorf("kind %d, value %#v: loader accepts %v (%s), schema accepts %v", k, v, loaderOK, checkLiteral(k, v), schemaOK)
			}
		}
	}
}

// The example rules.yaml, the valid corpus and every whole-file example
// of docs/rules.md pass both the schema and the loader; every file of
// the broken corpus is refused by both.
func TestSchemaAgreesWithLoader(t *testing.T) {
	sch := compileSchema(t, "")
	files, _ := filepath.Glob("testdata/schema/valid/*.yaml")
	files = append(files, exampleFile)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("loader refuses %s:\n%v", f, err)
		}
		inst, err := instance(t, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("schema refuses %s:\n%v", f, err)
		}
	}

	broken, _ := filepath.Glob("testdata/schema/broken/*.yaml")
	if len(broken) < 40 {
		t.Fatalf("broken corpus: %d files", len(broken))
	}
	for _, f := range broken {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The first line says what is wrong and what the loader says.
		first, _, _ := strings.Cut(string(data), "\n")
		want := strings.TrimSpace(strings.TrimPrefix(first, "# loader:"))
		if !strings.HasPrefix(first, "# loader:") || want == "" {
			t.Errorf("%s: first line must be `# loader: <part of the loader's message>`", f)
			continue
		}
		_, lerr := Parse(f, data)
		var le *LoadError
		if !errors.As(lerr, &le) {
			t.Errorf("%s: the loader accepts it", f)
		} else if !strings.Contains(lerr.Error(), want) {
			t.Errorf("%s: the loader refuses it for another reason:\n%v\nwant %q", f, lerr, want)
		}
		inst, err := instance(t, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sch.Validate(inst) == nil {
			t.Errorf("%s: the schema accepts what the loader refuses (%s)", f, want)
		}
	}
}

// docBlocks returns the ```yaml blocks of a Markdown file with their line.
func docBlocks(t *testing.T, file string) (blocks []string, lines []int) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cur *strings.Builder
	for i, l := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```yaml":
			cur = &strings.Builder{}
			lines = append(lines, i+2)
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return blocks, lines
}

var topLevelKey = regexp.MustCompile(`^([a-z_]+):`)

// Every ```yaml example of docs/rules.md is checked. The convention:
//
//   - a block whose first key is `version:` is a whole rules file: the
//     schema and the loader both accept it;
//   - a block with a top-level `cases:` key is a rule test file (see
//     "Testing your rules"): the rulescmd tests parse and run those;
//   - a block that is a YAML list (its first line starts with "- ") is a
//     list of steps, validated against #/$defs/rule/properties/steps;
//   - any other block is a fragment of a rule: each top-level key (a block
//     may show the same key several times, as alternatives) is validated
//     alone against the schema of that key of a rule
//     (#/$defs/rule/properties/KEY).
//
// A block in none of these shapes fails the test, so a new example
// cannot escape the check.
func TestDocsExamplesMatchSchema(t *testing.T) {
	whole := compileSchema(t, "")
	ruleKey := map[string]*jsonschema.Schema{}
	blocks, lines := docBlocks(t, docsFile)
	if len(blocks) < 3 {
		t.Fatalf("found %d yaml blocks in %s", len(blocks), docsFile)
	}
	checked := 0
	for i, b := range blocks {
		where := fmt.Sprintf("%s:%d", docsFile, lines[i])
		var keys []string
		for _, l := range strings.Split(b, "\n") {
			if m := topLevelKey.FindStringSubmatch(l); m != nil {
				keys = append(keys, m[1])
			}
		}
		switch {
		case slices.Contains(keys, "cases"):
			continue
		case len(keys) > 0 && keys[0] == "version":
			if _, err := Parse(where, []byte(b)); err != nil {
				t.Errorf("%s: the loader refuses the example:\n%v", where, err)
			}
			inst, err := instance(t, []byte(b))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if err := whole.Validate(inst); err != nil {
				t.Errorf("%s: the schema refuses the example:\n%v", where, err)
			}
			checked++
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(b), "- ") {
			sch, ok := ruleKey["steps"]
			if !ok {
				sch = compileSchema(t, "#/$defs/rule/properties/steps")
				ruleKey["steps"] = sch
			}
			inst, err := instance(t, []byte(b))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("%s: the schema refuses the steps:\n%s\n%v", where, b, err)
			}
			checked++
			continue
		}
		for _, frag := range splitTopLevel(b) {
			m := topLevelKey.FindStringSubmatch(frag)
			if m == nil || !slices.Contains(ruleKeys, m[1]) {
				t.Errorf("%s: a yaml example must be a whole file (version:), a test file (cases:) or rule keys; found %q", where, strings.SplitN(frag, "\n", 2)[0])
				continue
			}
			sch, ok := ruleKey[m[1]]
			if !ok {
				sch = compileSchema(t, "#/$defs/rule/properties/"+m[1])
				ruleKey[m[1]] = sch
			}
			var v map[string]any
			if err := yaml.Unmarshal([]byte(frag), &v); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if err := sch.Validate(toJSONModel(t, v[m[1]])); err != nil {
				t.Errorf("%s: the schema refuses %s:\n%s\n%v", where, m[1], frag, err)
			}
			checked++
		}
	}
	if checked < 3 {
		t.Errorf("only %d examples checked", checked)
	}
}

// splitTopLevel splits a YAML block at each unindented key, so that
// alternatives written one after the other (record: all / record: [...])
// are read separately.
func splitTopLevel(b string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(b, "\n") {
		if topLevelKey.MatchString(l) && cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
		cur.WriteString(l + "\n")
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// The schema says draft 2020-12, but VS Code's YAML extension validates
// with draft-07 semantics (redhat-developer/yaml-language-server#856):
// keywords only 2019-09/2020-12 know would be ignored there, silently
// accepting mistakes. $defs is fine: "#/$defs/x" is a plain JSON pointer.
func TestSchemaKeywordsWorkInDraft07Editors(t *testing.T) {
	data, err := SchemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	var s any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	newer := []string{"prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems",
		"$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$anchor", "minContains", "maxContains", "$vocabulary"}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if slices.Contains(newer, k) && !strings.HasSuffix(at, "/properties") {
					t.Errorf("%s: keyword %s is unknown to draft-07 validators", at, k)
				}
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(s, "#")
}
