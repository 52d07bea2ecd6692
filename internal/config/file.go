package config

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// File is the optional configuration file (-config) for what does not fit
// flags: several Zoho connections and the webhook sources. Secrets are never
// written in it directly by preference: every secret can come from an
// environment variable (…_env) or a file (…_file) instead.
type File struct {
	// Connections by name; "default" is the one events without a connection use.
	Connections map[string]Connection `yaml:"connections" doc:"Zoho connections by name; default is the one events without a connection use. The environment's ZOHOOK_ZOHO_* variables define default when it is not listed here."`
	Hooks       Hooks                 `yaml:"hooks" doc:"The webhook sources, by kind and name."`
}

// Connection is one Zoho organisation / data center.
type Connection struct {
	DC              string   `yaml:"dc" doc:"Zoho data center: us (default), eu, in, au, jp, ca, cn, sa."`
	ClientID        string   `yaml:"client_id" doc:"Client id of the Zoho API console client."`
	ClientSecret    Secret   `yaml:"client_secret" doc:"Client secret of that client."`
	RefreshToken    Secret   `yaml:"refresh_token" doc:"Refresh token from worker auth exchange or worker auth login."`
	Scopes          []string `yaml:"scopes" doc:"OAuth scopes requested by worker auth login; default the ones zohook needs."`
	BooksOrgID      string   `yaml:"books_org_id" doc:"Default Zoho Books organization_id of Books calls."`
	AccountsURL     string   `yaml:"accounts_url" doc:"Overrides the accounts server (default the data center's, e.g. https://accounts.zoho.com)."`
	APIURL          string   `yaml:"api_url" doc:"Overrides the CRM API host (default the token's api_domain); the CRM base is this + /crm/v8."`
	BooksURL        string   `yaml:"books_url" doc:"Overrides the whole Books API base (default https://www.zohoapis.{tld}/books/v3)."`
	CRMNotifyTokens []Secret `yaml:"crm_notify_tokens" doc:"Tokens accepted on /zoho/crm/notify for this connection; list the old and the new one while rotating."`
	CRMRate         string   `yaml:"crm_rate" doc:"CRM call limit of this connection shared by all workers, N/period (100/1m, 50000/24h, 1000/day); 0 = off. Default -crm-rate."`
	BooksRate       string   `yaml:"books_rate" doc:"Books call limit of this connection shared by all workers, N/period. Default -books-rate."`
}

// Hooks are the webhook sources, by kind and name: the name is the last
// segment of the URL (POST /zoho/crm/workflow/{name}, /zoho/books/{name}).
type Hooks struct {
	CRMWorkflow map[string]Hook `yaml:"crm_workflow" doc:"CRM workflow-rule webhooks, POST /zoho/crm/workflow/{name}."`
	Books       map[string]Hook `yaml:"books" doc:"Zoho Books webhooks, POST /zoho/books/{name}."`
}

// Hook maps one webhook to events.
type Hook struct {
	// Connection the events belong to. Default "default".
	Connection string `yaml:"connection" doc:"Zoho connection the events belong to. Default default."`
	// Secret authenticates the sender: sent in SecretHeader or the SecretQuery
	// parameter (CRM workflow webhooks cannot sign), or, for Books hooks with
	// Signature set, used as the HMAC key of X-Zoho-Webhook-Signature.
	Secret       Secret `yaml:"secret" doc:"Authenticates the sender: sent in secret_header or the secret_query parameter, or, for a Books hook with signature, the HMAC key. Required."`
	SecretHeader string `yaml:"secret_header" doc:"Header carrying the secret. Default X-Zohook-Secret."`
	SecretQuery  string `yaml:"secret_query" doc:"URL parameter carrying the secret. Default secret."`
	Signature    bool   `yaml:"signature" doc:"Books only: verify the X-Zoho-Webhook-Signature HMAC-SHA256 keyed with secret."`
	// Module: fixed module (CRM) or entity (Books) of the events; or read it
	// from the body field ModuleField. Books default: the body's single top-level key.
	Module      string `yaml:"module" doc:"Fixed module (CRM) or entity (Books) of the events. Books default: the body's single top-level key."`
	ModuleField string `yaml:"module_field" doc:"Body field holding the module (when module is not fixed)."`
	// Operation: fixed; or from the body field OperationField; or from the
	// URL's ?operation= parameter. Default "update".
	Operation      string `yaml:"operation" doc:"Fixed operation of the events (e.g. paid); else operation_field, else the URL's ?operation=, else update."`
	OperationField string `yaml:"operation_field" doc:"Body field holding the operation."`
	// RecordIDField: body field with the record id. Default "id" (CRM) or
	// "<entity>_id" inside the entity object (Books).
	RecordIDField string `yaml:"record_id_field" doc:"Body field with the record id. Default id (CRM) or <entity>_id inside the entity object (Books)."`
}

// Secret is a secret given inline (value), by environment variable (env) or
// by file (file). In YAML: `secret: {env: NAME}`, `secret: {file: /path}` or
// `secret: "literal"`. Its String never reveals the value.
type Secret struct {
	Value string `yaml:"value" doc:"The secret itself (it then sits in the file)."`
	Env   string `yaml:"env" doc:"Name of the environment variable holding the secret."`
	File  string `yaml:"file" doc:"Path of a file holding the secret (e.g. /run/secrets/x)."`
}

// UnmarshalYAML accepts a plain string as an inline value.
func (s *Secret) UnmarshalYAML(unmarshal func(any) error) error {
	var str string
	if err := unmarshal(&str); err == nil {
		s.Value = str
		return nil
	}
	type plain Secret
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

func (s Secret) String() string { return "[redacted]" }

// IsSet reports whether any source is given.
func (s Secret) IsSet() bool { return s.Value != "" || s.Env != "" || s.File != "" }

// Resolve returns the secret's value. The error names the source, never the value.
func (s Secret) Resolve(getenv func(string) string) (string, error) {
	switch {
	case s.Env != "":
		v := getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	default:
		return s.Value, nil
	}
}

// HookNamePattern is what a hook name must match: it is a URL segment.
const HookNamePattern = `^[a-z0-9][a-z0-9_-]{0,63}$`

var hookName = regexp.MustCompile(HookNamePattern)

// LoadFile reads and checks a configuration file; unknown keys are errors
// with their line and column.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseFile(path, data)
}

// ParseFile parses configuration data; name is used in messages.
func ParseFile(name string, data []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("config %s: %s", name, yaml.FormatError(err, false, true))
	}
	var problems []string
	check := func(kind string, hooks map[string]Hook) {
		names := make([]string, 0, len(hooks))
		for n := range hooks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			h := hooks[n]
			if !hookName.MatchString(n) {
				problems = append(problems, fmt.Sprintf("hooks.%s.%s: name must match %s (it is a URL segment)", kind, n, hookName))
			}
			if !h.Secret.IsSet() {
				problems = append(problems, fmt.Sprintf("hooks.%s.%s: a secret is required", kind, n))
			}
			if h.Connection != "" && len(f.Connections) > 0 {
				if _, ok := f.Connections[h.Connection]; !ok {
					problems = append(problems, fmt.Sprintf("hooks.%s.%s: unknown connection %q", kind, n, h.Connection))
				}
			}
		}
	}
	check("crm_workflow", f.Hooks.CRMWorkflow)
	check("books", f.Hooks.Books)
	for n, h := range f.Hooks.CRMWorkflow {
		if h.Module == "" && h.ModuleField == "" {
			problems = append(problems, fmt.Sprintf("hooks.crm_workflow.%s: set module or module_field", n))
		}
		if h.Signature {
			problems = append(problems, fmt.Sprintf("hooks.crm_workflow.%s: CRM workflow webhooks cannot be signed; use secret_header or secret_query", n))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("config %s:\n  %s", name, strings.Join(problems, "\n  "))
	}
	return &f, nil
}
