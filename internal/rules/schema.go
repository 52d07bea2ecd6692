package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// SchemaDraft is the JSON Schema dialect of Schema.
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

// SchemaJSON returns the JSON Schema (draft 2020-12) of a rules file,
// indented, with a final newline: what `worker rules schema` prints and
// docs/schema/rules.schema.json holds.
//
// It is generated from the loader's own definitions: the key lists of
// load.go, the action table of actions.go (inputs, required ones, one-of
// groups, literal kinds, descriptions), the sources, operations, policies
// and name patterns. What the loader checks in code rather than in tables
// (which key takes a list, record's shapes, the pairs of singular and
// plural keys) is restated here; TestSchemaAgreesWithLoader feeds the same
// documents to both so the two cannot drift apart unnoticed. The loader
// refuses more than the schema can say (unknown names in expressions,
// duplicate step ids, references to later steps); the schema never accepts
// a shape the loader refuses.
func SchemaJSON() ([]byte, error) {
	s, err := schema()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("rules schema: %w", err)
	}
	return asciiJSON(b.Bytes()), nil
}

// asciiJSON writes the non-ASCII runes of encoded JSON as \u escapes: the
// patterns hold Unicode spaces that would otherwise be invisible in the
// checked-in file. Non-ASCII runes only occur inside JSON strings, where
// the escape means the same rune.
func asciiJSON(data []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(data) {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.Bytes()
}

type obj = map[string]any

// keyDocs describes every key the loader accepts, by the section whose key
// list (topKeys, ruleKeys, ...) holds it. The text is docs/rules.md's.
var keyDocs = map[string]map[string]string{
	"top": {
		"version": "Version of the rules language: always 1.",
		"vars":    "Constants, read in expressions and templates as vars.NAME: strings, numbers, lists, maps. ${...} is not interpreted here.",
		"rules":   "The rules, evaluated in file order.",
	},
	"rule": {
		"name":        "Unique name, lowercase letters, digits, - and _. Appears in logs, metrics and step keys: renaming a rule makes its steps new for the journal.",
		"description": "Free text.",
		"disabled":    "true keeps the rule in the file but never matches it.",
		"on":          "The trigger: which events the rule applies to.",
		"record":      "Load the full record before the condition: all (or true) for every field, a list of fields, or {fields: [...]}. Exposed as record; null for a delete.",
		"load_record": "true: load the record with every field (as record: all).",
		"when":        "A condition (an expr expression); the rule runs only when it is true. May read event, record, vars.",
		"steps":       "The steps, run in order; each is one Zoho action.",
		"on_missing":  "When the event's record, or the record a step targets, no longer exists in Zoho: skip (default: the rule stops quietly; logged and counted, never retried) or dead_letter.",
	},
	"on": {
		"source":          "crm.notify (CRM notification channel), crm.workflow (CRM workflow-rule webhook) or books.webhook (Zoho Books webhook); a word or a list.",
		"sources":         "As source: a list (or a word).",
		"connection":      "Zoho connection name(s); absent = any. An event without connection is default.",
		"connections":     "As connection: a list (or a word).",
		"module":          "CRM module API name (Deals, Leads) or Books entity (invoice), compared case-insensitively. Absent or \"*\" = any.",
		"modules":         "As module: a list (or a word).",
		"operation":       "For crm.notify: create, update or delete (Zoho's insert/edit arrive as create/update). For webhooks: any lowercase word the hook sends (e.g. paid). Absent or \"*\" = any.",
		"operations":      "As operation: a list (or a word).",
		"changed":         "Field names: the rule matches only when one of them changed (case-insensitive).",
		"changed_unknown": "What changed does when the event names no changed fields: match (default; the condition decides) or skip.",
	},
	"record": {
		"fields": "Only these fields are loaded (id is always there).",
	},
	"step": {
		"id":          "Optional id, [a-z_][a-z0-9_]*; the step's output is then steps.ID for later steps. Gives the step a stable journal key.",
		"description": "Free text.",
		"action":      "The Zoho action.",
		"with":        "The action's inputs; strings may hold ${...} templates.",
		"when":        "A condition (an expr expression); the step is skipped when it is false. May read earlier steps (use ?. and ??).",
		"on_failure":  "When Zoho refuses the call: retry (default: the rule fails and the worker retries the event), skip (continue with the next step) or stop (stop this rule quietly). A transient failure always retries.",
		"in_doubt":    "When a write was interrupted after it may have reached Zoho and the worker cannot look it up: resend (default) or dead_letter (send nothing; a human decides). Only on steps that change Zoho.",
	},
}

// unicodeSpace is the class of runes strings.TrimSpace and strings.Fields
// treat as space (unicode.IsSpace), written out because neither RE2's nor
// ECMA-262's \s is that set; the runes are literal so both engines read the
// pattern the same way.
const unicodeSpace = "\\t\\n\\v\\f\\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

var (
	spaceRE    = "[" + unicodeSpace + "]"
	nonSpaceRE = "[^" + unicodeSpace + "]"
)

// ciWord is a pattern matching w in any letter case, without (?i), which
// ECMA-262 patterns (VS Code's) do not have.
func ciWord(w string) string {
	var b strings.Builder
	for _, r := range w {
		lo, up := strings.ToLower(string(r)), strings.ToUpper(string(r))
		if lo == up {
			b.WriteString(regexpQuote(string(r)))
			continue
		}
		b.WriteString("[" + up + lo + "]")
	}
	return b.String()
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$/-`, r) {
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func ciWords(words []string) string {
	alts := make([]string, len(words))
	for i, w := range words {
		alts[i] = ciWord(w)
	}
	return strings.Join(alts, "|")
}

func nonBlank() obj { return pattern(nonSpaceRE, "must not be empty") }

// pattern is a string schema with a pattern and the message VS Code's
// YAML extension shows instead of the pattern itself (patternErrorMessage,
// an annotation other validators ignore).
func pattern(re, msg string) obj {
	return obj{"type": "string", "pattern": re, "patternErrorMessage": msg}
}

// wordOrList is what the loader's strItems reads: a string or a non-empty
// list of strings.
func wordOrList(item obj) obj {
	return obj{"anyOf": []any{item, obj{"type": "array", "minItems": 1, "items": item}}}
}

func describe(s obj, doc string) obj {
	out := obj{"description": doc}
	for k, v := range s {
		out[k] = v
	}
	return out
}

// kindSchema is the schema of a literal input value of kind k: what
// checkLiteral accepts (TestKindSchemasAgreeWithCheckLiteral compares them).
func kindSchema(k kind) (obj, error) {
	id := obj{"anyOf": []any{nonBlank(), obj{"type": "integer"}}}
	switch k {
	case kAny:
		return obj{}, nil
	case kText:
		return nonBlank(), nil
	case kString:
		return obj{"type": "string"}, nil
	case kID:
		return id, nil
	case kIDs:
		return obj{"anyOf": []any{obj{"type": "string"}, obj{"type": "array", "items": id}}}, nil
	case kMap:
		return obj{"type": "object"}, nil
	case kStringMap:
		return obj{"type": "object", "additionalProperties": obj{"type": []any{"string", "number", "boolean", "null"}}}, nil
	case kData:
		return obj{"anyOf": []any{obj{"type": "object"}, obj{"type": "array", "minItems": 1, "items": obj{"type": "object"}}}}, nil
	case kFields:
		return obj{"anyOf": []any{nonBlank(), obj{"type": "array", "minItems": 1, "items": obj{"type": "string"}}}}, nil
	case kBool:
		return obj{"type": "boolean"}, nil
	case kInt:
		// A YAML integer past int64 reads as negative (intLiteral).
		return obj{"type": "integer", "minimum": 0, "maximum": math.MaxInt64}, nil
	case kPerPage:
		return obj{"type": "integer", "minimum": 1, "maximum": 200}, nil
	case kMethod:
		methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
		// enum for editors' completion; the pattern because the loader
		// takes any letter case.
		return obj{"anyOf": []any{obj{"enum": toAny(methods)}, pattern("^("+ciWords(methods)+")$", "one of GET, POST, PUT, PATCH, DELETE")}}, nil
	case kResponseType:
		return obj{"enum": toAny([]string{"json", "text", "binary"})}, nil
	case kSortOrder:
		return obj{"enum": toAny([]string{"asc", "desc"})}, nil
	case kTrigger:
		return obj{"anyOf": []any{
			obj{"enum": toAny(append([]string{"all", "default"}, triggerWords...))},
			obj{"type": "array", "items": obj{"enum": toAny(triggerWords)}},
		}}, nil
	case kPath:
		sep := "(/|%2[fF])"
		return obj{"type": "string", "allOf": []any{
			pattern(nonSpaceRE, "must not be empty"),
			obj{"not": obj{"pattern": "^//"}},
			obj{"not": obj{"pattern": "^[^/]*:"}},                                               // a scheme, or a colon url.Parse refuses
			obj{"not": obj{"pattern": `[\\?#\x00-\x1f\x7f]`}},                                   // backslash, query, fragment, control characters
			obj{"not": obj{"pattern": "(^|" + sep + `)\.\.?(` + sep + "|$)"}},                   // . and .. segments
			obj{"not": obj{"pattern": "%2[eE]"}},                                                // encoded dots
			obj{"not": obj{"pattern": "%([^0-9A-Fa-f]|[0-9A-Fa-f][^0-9A-Fa-f]|[0-9A-Fa-f]?$)"}}, // bad escapes
		}}, nil
	case kDuration:
		return obj{"anyOf": []any{obj{"type": "number"},
			pattern(`^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`, "a duration such as 30s or 1m30s, or a number of seconds")}}, nil
	case kCOQL:
		return pattern("^"+spaceRE+"*"+ciWord("select")+"("+spaceRE+"|$)", "a COQL query starts with select"), nil
	case kFiles:
		return obj{"type": "array", "items": obj{
			"type": "object", "additionalProperties": false, "required": []any{"name", "file_name"},
			"properties": obj{"name": nonBlank(), "file_name": nonBlank(), "content": obj{"type": "string"}, "content_base64": obj{"type": "string"}},
			"oneOf":      []any{obj{"required": []any{"content"}}, obj{"required": []any{"content_base64"}}},
		}}, nil
	}
	return nil, fmt.Errorf("rules schema: no schema for input kind %d", k)
}

func toAny[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

func requiredEach(names []string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = obj{"required": []any{n}}
	}
	return out
}

// props builds the properties of a section from its loader key list,
// failing when a key has no description or no shape.
func props(section string, keys []string, shapes map[string]obj) (obj, error) {
	out := obj{}
	for _, k := range keys {
		doc := keyDocs[section][k]
		if doc == "" {
			return nil, fmt.Errorf("rules schema: key %q of %s has no description in keyDocs", k, section)
		}
		shape, ok := shapes[k]
		if !ok {
			return nil, fmt.Errorf("rules schema: key %q of %s has no shape", k, section)
		}
		out[k] = describe(shape, doc)
	}
	for k := range shapes {
		if !slices.Contains(keys, k) {
			return nil, fmt.Errorf("rules schema: %s has a shape for %q, which the loader does not accept", section, k)
		}
	}
	return out, nil
}

func schema() (obj, error) {
	defs := obj{}
	defs["template"] = obj{
		"description": "A string with a ${...} template: its value is only known at run time.",
		"type":        "string",
		// ${ not escaped as $${ or \${ (see splitTemplate).
		"pattern":             `(^|[^$\\])\$\{`,
		"patternErrorMessage": "a value of another type, or a ${...} template",
	}
	defs["expression"] = obj{
		"description": "An expr expression (https://expr-lang.org), written without ${...}.",
		"anyOf": []any{obj{"type": "boolean"}, obj{"type": "string", "allOf": []any{
			pattern(nonSpaceRE, "must not be empty"),
			obj{"not": obj{"pattern": "^" + spaceRE + `*\$\{[\s\S]*\}` + spaceRE + "*$"}},
		}}},
	}

	top, err := props("top", topKeys, map[string]obj{
		"version": {"const": 1},
		"vars":    {"type": "object", "propertyNames": pattern(varNameRE.String(), "letters, digits and _ (usable as vars.NAME)")},
		"rules":   {"type": "array", "items": obj{"$ref": "#/$defs/rule"}},
	})
	if err != nil {
		return nil, err
	}

	crmOnly := obj{"anyOf": []any{obj{"const": SourceCRMNotify}, obj{"type": "array", "minItems": 1, "items": obj{"const": SourceCRMNotify}}}}
	anyOp := pattern("^"+spaceRE+`*([A-Za-z0-9_.-]+|\*)`+spaceRE+"*$", "a word of lowercase letters, digits, _, . and -, or *")
	crmOp := pattern("^"+spaceRE+"*("+ciWords(crmOps)+`|\*)`+spaceRE+"*$", "for crm.notify: create, update, delete or * (Zoho's insert/edit arrive as create/update)")
	onProps, err := props("on", onKeys, map[string]obj{
		"source":          wordOrList(obj{"enum": toAny(knownSources)}),
		"sources":         wordOrList(obj{"enum": toAny(knownSources)}),
		"connection":      wordOrList(obj{"type": "string"}),
		"connections":     wordOrList(obj{"type": "string"}),
		"module":          wordOrList(nonBlank()),
		"modules":         wordOrList(nonBlank()),
		"operation":       wordOrList(anyOp),
		"operations":      wordOrList(anyOp),
		"changed":         wordOrList(obj{"type": "string"}),
		"changed_unknown": {"enum": []any{"match", "skip"}},
	})
	if err != nil {
		return nil, err
	}
	defs["on"] = obj{
		"type": "object", "additionalProperties": false, "properties": onProps,
		"allOf": []any{
			obj{"anyOf": requiredEach([]string{"source", "sources"})},
			obj{"not": obj{"required": []any{"source", "sources"}}},
			obj{"not": obj{"required": []any{"connection", "connections"}}},
			obj{"not": obj{"required": []any{"module", "modules"}}},
			obj{"not": obj{"required": []any{"operation", "operations"}}},
			obj{"if": obj{"required": []any{"changed_unknown"}}, "then": obj{"required": []any{"changed"}}},
			// Only CRM notifications have a fixed vocabulary of operations.
			obj{
				"if": obj{"anyOf": []any{
					obj{"required": []any{"source"}, "properties": obj{"source": crmOnly}},
					obj{"required": []any{"sources"}, "properties": obj{"sources": crmOnly}},
				}},
				"then": obj{"properties": obj{"operation": wordOrList(crmOp), "operations": wordOrList(crmOp)}},
			},
		},
	}

	recProps, err := props("record", recordKeys, map[string]obj{"fields": wordOrList(obj{"type": "string"})})
	if err != nil {
		return nil, err
	}
	defs["record"] = obj{"anyOf": []any{
		obj{"const": "all"},
		obj{"type": "boolean"},
		obj{"type": "array", "minItems": 1, "items": obj{"type": "string"}},
		obj{"type": "object", "additionalProperties": false, "properties": recProps},
	}}

	ruleProps, err := props("rule", ruleKeys, map[string]obj{
		"name":        pattern(ruleNameRE.String(), "lowercase letters, digits, - and _"),
		"description": {"type": "string"},
		"disabled":    {"type": "boolean"},
		"on":          {"$ref": "#/$defs/on"},
		"record":      {"$ref": "#/$defs/record"},
		"load_record": {"type": "boolean"},
		"when":        {"$ref": "#/$defs/expression"},
		"on_missing":  {"enum": []any{OnMissingSkip, OnMissingDeadLetter}},
		"steps":       {"type": "array", "minItems": 1, "items": obj{"$ref": "#/$defs/step"}},
	})
	if err != nil {
		return nil, err
	}
	defs["rule"] = obj{
		"type": "object", "additionalProperties": false, "required": []any{"name", "on", "steps"}, "properties": ruleProps,
		"not": obj{"required": []any{"record", "load_record"}},
	}

	table := actionTable()
	names := actionNames(table)
	var perAction []any
	var readOnly []string
	for _, name := range names {
		with, err := withSchema(table[name])
		if err != nil {
			return nil, err
		}
		defs["with."+name] = with
		perAction = append(perAction, obj{
			"if":   obj{"required": []any{"action"}, "properties": obj{"action": obj{"const": name}}},
			"then": obj{"required": []any{"with"}, "properties": obj{"with": obj{"$ref": "#/$defs/with." + name}}},
		})
		if ReadOnly(name, "") {
			readOnly = append(readOnly, name)
		}
	}
	actionDocs := make([]string, len(names))
	for i, n := range names {
		actionDocs[i] = n + ": " + table[n].doc
	}
	// in_doubt is refused on steps that only read (readAction).
	perAction = append(perAction,
		obj{"if": obj{"required": []any{"action"}, "properties": obj{"action": obj{"enum": toAny(readOnly)}}},
			"then": obj{"not": obj{"required": []any{"in_doubt"}}}},
		obj{"if": obj{"required": []any{"action", "with"}, "properties": obj{
			"action": obj{"enum": []any{"crm.raw_request", "books.raw_request"}},
			"with":   obj{"required": []any{"method"}, "properties": obj{"method": obj{"type": "string", "pattern": "^" + ciWord("GET") + "$"}}},
		}}, "then": obj{"not": obj{"required": []any{"in_doubt"}}}},
	)
	stepID := pattern(stepIDRE.String(), "lowercase letters, digits and _, not starting with a digit")
	stepID["not"] = obj{"enum": toAny(reservedIDs)} // expr's keywords cannot follow steps.
	stepProps, err := props("step", stepKeys, map[string]obj{
		"id":          stepID,
		"description": {"type": "string"},
		"action":      {"enum": toAny(names), "markdownDescription": strings.Join(actionDocs, "\n\n")},
		"with":        {"type": "object"},
		"when":        {"$ref": "#/$defs/expression"},
		"on_failure":  {"enum": []any{OnFailureRetry, OnFailureSkip, OnFailureStop}},
		"in_doubt":    {"enum": []any{InDoubtResend, InDoubtDeadLetter}},
	})
	if err != nil {
		return nil, err
	}
	defs["step"] = obj{
		"type": "object", "additionalProperties": false, "required": []any{"action"}, "properties": stepProps,
		"allOf": perAction,
	}

	s := obj{
		"$schema":     SchemaDraft,
		"title":       "zohook rules file (rules.yaml)",
		"description": "What zohook's worker does with each Zoho event. Reference: docs/rules.md. Generated by `worker rules schema`; `worker rules check` checks more (expressions, step references).",
		"type":        "object", "additionalProperties": false, "required": []any{"version", "rules"},
		"properties": top,
		"$defs":      defs,
	}
	return s, nil
}

// withSchema is the schema of one action's with: its inputs (each either
// its literal kind or a template), required ones and one-of groups.
func withSchema(d *actionDef) (obj, error) {
	inputs := append(slices.Clone(d.spec.Required), d.spec.Optional...)
	ps := obj{}
	for _, in := range inputs {
		doc := d.inputDocs[in]
		if doc == "" {
			return nil, fmt.Errorf("rules schema: input %q of %s has no description", in, d.spec.Name)
		}
		k, typed := d.kinds[in]
		if !typed {
			ps[in] = obj{"description": doc}
			continue
		}
		ks, err := kindSchema(k)
		if err != nil {
			return nil, err
		}
		// A value that is a template is checked when it runs, not here.
		ps[in] = obj{"description": doc, "anyOf": []any{ks, obj{"$ref": "#/$defs/template"}}}
	}
	s := obj{
		"description":          d.spec.Name + ": " + d.doc,
		"type":                 "object",
		"additionalProperties": false,
		"properties":           ps,
		"required":             toAny(d.spec.Required),
	}
	var all []any
	for _, g := range d.spec.OneOf {
		all = append(all, obj{"oneOf": requiredEach(g)})
	}
	if d.spec.Name == "crm.add_attachment" {
		// file_name is required unless url (loadStep says so in code).
		all = append(all, obj{"anyOf": requiredEach([]string{"url", "file_name"})})
	}
	if len(all) > 0 {
		s["allOf"] = all
	}
	return s, nil
}
