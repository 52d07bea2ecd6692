package configcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/config/configcmd"
)

var update = flag.Bool("update-schema", false, "rewrite docs/schema/config.schema.json")

const schemaFile = "../../../docs/schema/config.schema.json"

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := configcmd.Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := configcmd.SchemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func instance(t *testing.T, data string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(data), &v); err != nil {
		t.Fatal(err)
	}
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

// `config schema` prints the generated schema, which is the checked-in one.
func TestSchemaCommandAndFile(t *testing.T) {
	code, out, errs := run(t, "schema")
	if code != 0 || errs != "" {
		t.Fatalf("code %d: %s", code, errs)
	}
	want, err := configcmd.SchemaJSON()
	if err != nil || out != string(want) {
		t.Fatalf("schema output differs from SchemaJSON (%v)", err)
	}
	compile(t)
	if *update {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	onDisk, err := os.ReadFile(schemaFile)
	if err != nil || !bytes.Equal(onDisk, want) {
		t.Errorf("%s is not what config.File generates (%v): run\n  go test ./internal/config/configcmd -update-schema\n(or worker config schema > docs/schema/config.schema.json)", schemaFile, err)
	}
	for _, key := range []string{`"hooks"`, `"crm_workflow"`, `"record_id_field"`, `"Zoho data center: us (default)`, `"propertyNames"`} {
		if !strings.Contains(out, key) {
			t.Errorf("schema lacks %s", key)
		}
	}
}

// readmeConfig is the zohook.yaml example of the README.
func readmeConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```yaml\n# zohook.yaml")
	if !ok {
		t.Fatal("README: the zohook.yaml example is gone")
	}
	block, _, _ := strings.Cut(rest, "```")
	return "# zohook.yaml" + block
}

// Valid files pass both the schema and config.ParseFile; each broken one
// is refused by both (ParseFile refuses more: a hook naming a connection
// the file does not define).
func TestSchemaAgreesWithParseFile(t *testing.T) {
	sch := compile(t)
	valid := map[string]string{
		"readme": readmeConfig(t),
		"minimal": `connections:
  default: {dc: US, client_id: "1000.X", client_secret: s, refresh_token: {file: /run/r}, books_org_id: 10234695, crm_rate: 100/1m, books_rate: "0"}
hooks:
  books:
    paid_1: {secret: {value: x}, module_field: entity, operation_field: op, record_id_field: id, secret_header: X-S, secret_query: s}
  crm_workflow:
    lead: {secret: x, module_field: module, signature: false}
`,
		"empty": "{}\n",
	}
	for name, data := range valid {
		if _, err := config.ParseFile(name, []byte(data)); err != nil {
			t.Errorf("%s: ParseFile refuses it: %v", name, err)
		}
		if err := sch.Validate(instance(t, data)); err != nil {
			t.Errorf("%s: the schema refuses it: %v", name, err)
		}
	}
	broken := map[string]string{
		"unknown top key":        "hook: {}\n",
		"unknown connection key": "connections:\n  default: {client_idd: x}\n",
		"connections list":       "connections: [default]\n",
		"scopes string":          "connections:\n  default: {scopes: ZohoCRM.modules.ALL}\n",
		"secret unknown key":     "connections:\n  default: {client_secret: {env: X, envv: Y}}\n",
		"secret list":            "connections:\n  default: {client_secret: [x]}\n",
		"hook without secret":    "hooks:\n  books:\n    paid: {operation: paid}\n",
		"hook empty secret":      "hooks:\n  books:\n    paid: {secret: \"\", operation: paid}\n",
		"hook secret empty map":  "hooks:\n  books:\n    paid: {secret: {}, operation: paid}\n",
		"hook bad name":          "hooks:\n  books:\n    Paid: {secret: x}\n",
		"hook name with slash":   "hooks:\n  crm_workflow:\n    a/b: {secret: x, module: Deals}\n",
		"crm hook no module":     "hooks:\n  crm_workflow:\n    lead: {secret: x, operation: update}\n",
		"crm hook signed":        "hooks:\n  crm_workflow:\n    lead: {secret: x, module: Leads, signature: true}\n",
		"signature word":         "hooks:\n  books:\n    paid: {secret: x, signature: \"yes\"}\n",
		"module list":            "hooks:\n  books:\n    paid: {secret: x, module: [invoice]}\n",
		"unknown hook kind":      "hooks:\n  crm_notify:\n    a: {secret: x}\n",
		"unknown hook key":       "hooks:\n  books:\n    paid: {secret: x, operaton: paid}\n",
	}
	for name, data := range broken {
		if _, err := config.ParseFile(name, []byte(data)); err == nil {
			t.Errorf("%s: ParseFile accepts it", name)
		}
		if sch.Validate(instance(t, data)) == nil {
			t.Errorf("%s: the schema accepts what ParseFile refuses", name)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "zohook.yaml")
	if err := os.WriteFile(good, []byte(readmeConfig(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "check", good)
	if code != 0 || !strings.Contains(out, "OK, 2 connection(s), 1 CRM workflow hook(s), 1 Books hook(s)") {
		t.Errorf("check: %d %q %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("hooks:\n  books:\n    paid: {operation: paid}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, "check", bad); code != 1 || !strings.Contains(errs, "hooks.books.paid: a secret is required") {
		t.Errorf("check bad: %d %q", code, errs)
	}
	if code, _, _ := run(t); code != 2 {
		t.Errorf("no args: %d", code)
	}
	if code, out, _ := run(t, "-h"); code != 0 || !strings.Contains(out, "config schema") {
		t.Errorf("-h: %d %s", code, out)
	}
	if code, _, errs := run(t, "lint"); code != 2 || !strings.Contains(errs, `unknown command "lint"`) {
		t.Errorf("unknown: %d %s", code, errs)
	}
	if code, _, _ := run(t, "schema", "x"); code != 2 {
		t.Errorf("schema with an argument: %d", code)
	}
}

// As the rules schema: only keywords draft-07 validators (VS Code's YAML
// extension) know, so editors apply every check.
func TestSchemaKeywordsWorkInDraft07Editors(t *testing.T) {
	data, err := configcmd.SchemaJSON()
	if err != nil {
		t.Fatal(err)
	}
	var s any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	newer := map[string]bool{"prefixItems": true, "dependentRequired": true, "dependentSchemas": true, "unevaluatedProperties": true,
		"unevaluatedItems": true, "$dynamicRef": true, "$dynamicAnchor": true, "$anchor": true, "minContains": true, "maxContains": true}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if newer[k] && !strings.HasSuffix(at, "/properties") {
					t.Errorf("%s: keyword %s is unknown to draft-07 validators", at, k)
				}
				walk(e, at+"/"+k)
			}
		case []any:
			for _, e := range x {
				walk(e, at+"/[]")
			}
		}
	}
	walk(s, "#")
}

// -h on every subcommand prints to stdout and exits 0; flags and stray
// arguments are usage errors.
func TestSubcommandHelpAndUsage(t *testing.T) {
	for _, args := range [][]string{{"schema", "-h"}, {"check", "-h"}, {"help"}} {
		code, out, errs := run(t, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "config check FILE") {
			t.Errorf("%v: %d %q %q", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"check"}, {"check", "a.yaml", "b.yaml"}, {"schema", "-x"}, {"check", "-x", "a.yaml"}} {
		if code, _, errs := run(t, args...); code != 2 || errs == "" {
			t.Errorf("%v: %d %q", args, code, errs)
		}
	}
}
