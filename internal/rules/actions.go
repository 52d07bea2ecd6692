package rules

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// ActionSpec describes one action: the names the Zoho client's dispatcher
// accepts (internal/zoho RunAction uses the same table).
type ActionSpec struct {
	Name     string
	Required []string
	Optional []string
	// OneOf lists groups of which exactly one input must be given.
	OneOf [][]string
}

// kind is what a literal input value must look like.
type kind int

const (
	kAny    kind = iota
	kText        // non-empty string
	kID          // string or number
	kIDs         // list of ids or comma-separated string
	kMap         // mapping
	kData        // mapping, or list of mappings (CRM bulk)
	kFields      // list of strings or comma-separated string
	kBool
	kInt
	kPerPage
	kMethod
	kResponseType
	kTrigger
	kPath
	kSortOrder
	kDuration
	kCOQL
	kStringMap
	kString // any string, empty included
	kFiles  // raw request files: [{name, file_name, content | content_base64}]
)

type actionDef struct {
	spec  ActionSpec
	kinds map[string]kind
	// doc and inputDocs describe the action and its inputs for
	// `rules schema` (editors show them); see actionDocs.
	doc       string
	inputDocs map[string]string
}

// actionTable is built per call: no package-level mutable state.
func actionTable() map[string]*actionDef {
	t := map[string]*actionDef{}
	add := func(name string, req, opt []string, oneOf [][]string, kinds map[string]kind) {
		t[name] = &actionDef{spec: ActionSpec{Name: name, Required: req, Optional: opt, OneOf: oneOf}, kinds: kinds}
	}
	raw := []string{"query", "headers", "json", "form", "files", "response_type", "timeout", "max_retries", "retry_delay",
		"exponential", "retry_all_errors", "debug"}
	rawKinds := map[string]kind{"method": kMethod, "path": kPath, "query": kStringMap, "headers": kStringMap,
		"form": kMap, "response_type": kResponseType, "timeout": kDuration, "max_retries": kInt,
		"retry_delay": kDuration, "exponential": kBool, "retry_all_errors": kBool, "debug": kBool,
		"organization_id": kID, "files": kFiles}
	books := []string{"parent_type", "parent_id", "organization_id", "query"}
	booksKinds := func(extra map[string]kind) map[string]kind {
		m := map[string]kind{"entity": kText, "id": kID, "data": kMap, "parent_type": kText, "parent_id": kID,
			"organization_id": kID, "query": kStringMap}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	add("crm.create_record", []string{"module", "data"}, []string{"trigger", "duplicate_check_fields", "upsert"}, nil,
		map[string]kind{"module": kText, "data": kData, "trigger": kTrigger, "duplicate_check_fields": kFields, "upsert": kBool})
	add("crm.get_record", []string{"module", "id"}, []string{"fields"}, nil,
		map[string]kind{"module": kText, "id": kID, "fields": kFields})
	add("crm.get_records", []string{"module", "fields"}, []string{"page", "per_page", "page_token", "sort_by", "sort_order", "all", "max_records"}, nil,
		map[string]kind{"module": kText, "fields": kFields, "page": kInt, "per_page": kPerPage, "page_token": kText,
			"sort_by": kText, "sort_order": kSortOrder, "all": kBool, "max_records": kInt})
	add("crm.update_record", []string{"module", "data"}, []string{"id", "trigger"}, nil,
		map[string]kind{"module": kText, "id": kID, "data": kData, "trigger": kTrigger})
	add("crm.remove_record", []string{"module"}, []string{"id", "ids", "wf_trigger"}, [][]string{{"id", "ids"}},
		map[string]kind{"module": kText, "id": kID, "ids": kIDs, "wf_trigger": kBool})
	add("crm.add_attachment", []string{"module", "id"}, []string{"file_name", "content", "content_base64", "url", "title"},
		[][]string{{"content", "content_base64", "url"}},
		map[string]kind{"module": kText, "id": kID, "file_name": kText, "url": kText, "title": kText, "content": kString, "content_base64": kString})
	add("crm.get_attachments", []string{"module", "id"}, []string{"fields", "page", "per_page"}, nil,
		map[string]kind{"module": kText, "id": kID, "fields": kFields, "page": kInt, "per_page": kPerPage})
	add("crm.coql", []string{"query"}, []string{"all"}, nil, map[string]kind{"query": kCOQL, "all": kBool})
	add("crm.raw_request", []string{"method", "path"}, raw, nil, rawKinds)
	add("books.raw_request", []string{"method", "path"}, append(slices.Clone(raw), "organization_id"), nil, rawKinds)
	add("books.create_record", []string{"entity", "data"}, books, nil, booksKinds(nil))
	add("books.get_record", []string{"entity", "id"}, books, nil, booksKinds(nil))
	add("books.get_records", []string{"entity"}, append(slices.Clone(books), "page", "per_page", "search", "all", "max_records"), nil,
		booksKinds(map[string]kind{"page": kInt, "per_page": kPerPage, "search": kMap, "all": kBool, "max_records": kInt}))
	add("books.update_record", []string{"entity", "id", "data"}, books, nil, booksKinds(nil))
	add("books.remove_record", []string{"entity", "id"}, books, nil, booksKinds(nil))
	docs, common := actionDocs()
	for name, d := range t {
		d.doc = docs[name].doc
		d.inputDocs = map[string]string{}
		for _, in := range append(slices.Clone(d.spec.Required), d.spec.Optional...) {
			if s, ok := docs[name].inputs[in]; ok {
				d.inputDocs[in] = s
			} else {
				d.inputDocs[in] = common[in]
			}
		}
	}
	return t
}

type actionDoc struct {
	doc    string
	inputs map[string]string // inputs whose meaning differs from common
}

// actionDocs describes each action and its inputs (the text of
// docs/rules.md and internal/zoho/doc.go), by action; common describes the
// inputs several actions share. TestSchemaFileUpToDate fails when
// an input has no description.
func actionDocs() (map[string]actionDoc, map[string]string) {
	common := map[string]string{
		"module":                 "CRM module API name, e.g. Deals, Leads, Contacts.",
		"id":                     "Record id (a string or a number).",
		"data":                   "The record's fields: a mapping, or a list of mappings to write several records in one call.",
		"trigger":                "Which Zoho automations run on this write. Absent: none (safe: a rule's write does not set off workflows that notify zohook again). A list of workflow, approval, blueprint, pathfinder, orchestration runs those; all (or default) lets Zoho run everything.",
		"fields":                 "Field API names: a list or a comma-separated string.",
		"page":                   "Page number, from 1.",
		"per_page":               "Records per page, 1 to 200.",
		"all":                    "true: read every page (up to max_records) instead of one.",
		"max_records":            "With all: stop after this many records.",
		"entity":                 "Books entity path, e.g. invoices, contacts, items, salesorders (several segments allowed: settings/taxes).",
		"parent_type":            "For a sub-resource: the parent entity (e.g. invoices for an invoice's comments); goes with parent_id.",
		"parent_id":              "For a sub-resource: the parent record's id; goes with parent_type.",
		"organization_id":        "Books organization id; default ZOHOOK_ZOHO_BOOKS_ORG_ID (or the connection's books_org_id).",
		"query":                  "Extra query parameters, a mapping of name to scalar value.",
		"method":                 "HTTP method: GET, POST, PUT, PATCH or DELETE.",
		"path":                   "Path relative to the API base (https://www.zohoapis.com/crm/v8 or …/books/v3), e.g. /Notes: no scheme, host, .., ?, # or backslash; query parameters go in query.",
		"headers":                "Extra request headers, a mapping of name to value (Authorization and Content-Type are set by zohook).",
		"json":                   "JSON request body (any value). Exclusive with form and files.",
		"form":                   "Form fields, a mapping; sent url-encoded, or as multipart with files.",
		"files":                  "Multipart files: a list of {name, file_name, content | content_base64}.",
		"response_type":          "How to read the answer's body: json (default), text or binary (base64 in the output).",
		"timeout":                "Timeout of one attempt: a duration such as 30s, or a number of seconds.",
		"max_retries":            "Retries of this request after the first attempt (0 to 20).",
		"retry_delay":            "First retry delay: a duration such as 2s, or a number of seconds.",
		"exponential":            "true (default): exponential backoff with jitter; false: a constant retry_delay.",
		"retry_all_errors":       "true: retry every failure, 4xx included (default: only network errors, 429 and 5xx).",
		"debug":                  "true: log this request and its answer (secrets redacted).",
		"duplicate_check_fields": "Fields that identify the record (a list or a comma-separated string). An interrupted create is then retried as an upsert and cannot make a duplicate; rules check warns about a create without them.",
		"upsert":                 "true: insert or update records matched on duplicate_check_fields (or the module's unique fields).",
	}
	raw := "A request to any endpoint under the API base, for what the other actions do not cover. Output: {status, headers, body}."
	docs := map[string]actionDoc{
		"crm.create_record": {doc: "Create CRM records. Output: {id, ids, data} (data: one result per record)."},
		"crm.get_record":    {doc: "Read one CRM record. Output: {record}.", inputs: map[string]string{"fields": "Fields to read (a list or a comma-separated string); default all."}},
		"crm.get_records": {doc: "List CRM records (one page, or every page with all). Output: {data, info}.", inputs: map[string]string{
			"fields":     "Fields to read: a list or a comma-separated string (Zoho requires them).",
			"page_token": "Zoho's next_page_token, to read past the first 2,000 records.",
			"sort_by":    "Field to sort by (id, Created_Time or Modified_Time).",
			"sort_order": "asc or desc.",
		}},
		"crm.update_record": {doc: "Update CRM records: one by id, or several given as a list of data each with its id. Output: {id, ids, data}.", inputs: map[string]string{
			"id": "Id of the record to update; without it every item of data carries its own id.",
		}},
		"crm.remove_record": {doc: "Delete CRM records. Output: {ids, data}.", inputs: map[string]string{
			"id":         "Id of the record to delete (give id or ids).",
			"ids":        "Ids of the records to delete: a list or a comma-separated string (give id or ids).",
			"wf_trigger": "true: let Zoho run workflows on the delete (default false, loop-safe).",
		}},
		"crm.add_attachment": {doc: "Attach a file (or a link) to a CRM record. Output: {id, data}.", inputs: map[string]string{
			"id":             "Id of the record the attachment goes to.",
			"file_name":      "Name of the attached file (required unless url).",
			"content":        "The file's content as text (give exactly one of content, content_base64, url).",
			"content_base64": "The file's content, base64-encoded (give exactly one of content, content_base64, url).",
			"url":            "Attach a link instead of a file: an absolute http(s) URL (give exactly one of content, content_base64, url).",
			"title":          "Title of the attachment.",
		}},
		"crm.get_attachments": {doc: "List one page of a CRM record's attachments and links. Output: {data, info}.", inputs: map[string]string{
			"id":     "Id of the record.",
			"fields": "Fields to read; default id, File_Name, Size, Created_Time, $link_url.",
		}},
		"crm.coql": {doc: "Run a COQL query. Output: {data, info}.", inputs: map[string]string{
			"query": "The COQL query; it starts with select.",
			"all":   "true: read every page (LIMIT/OFFSET paging, up to 100,000 rows).",
		}},
		"crm.raw_request":     {doc: "CRM: " + raw},
		"books.raw_request":   {doc: "Books: " + raw + " organization_id is added to the query."},
		"books.create_record": {doc: "Create a Books record. Output: Books' decoded answer, e.g. {invoice: {invoice_id, invoice_number, ...}}.", inputs: map[string]string{"data": "The record's fields, a mapping. For invoices and other documents give reference_number: an interrupted create is then looked up instead of sent twice."}},
		"books.get_record":    {doc: "Read one Books record. Output: Books' decoded answer, e.g. {contact: {...}}."},
		"books.get_records": {doc: "List Books records (one page, or every page with all). Output: Books' answer, e.g. {contacts: [...], page_context}.", inputs: map[string]string{
			"search":   "The entity's search filters, a mapping (e.g. contact_name, status, customer_id, search_text).",
			"per_page": "Records per page, 1 to 200.",
		}},
		"books.update_record": {doc: "Update a Books record. Output: Books' decoded answer.", inputs: map[string]string{"data": "The fields to change, a mapping."}},
		"books.remove_record": {doc: "Delete a Books record. Output: Books' decoded answer."},
	}
	return docs, common
}

// Actions lists every action the language accepts, sorted by name.
func Actions() []ActionSpec {
	t := actionTable()
	out := make([]ActionSpec, 0, len(t))
	for _, d := range t {
		out = append(out, d.spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func actionNames(t map[string]*actionDef) []string {
	out := make([]string, 0, len(t))
	for k := range t {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var triggerWords = []string{"workflow", "approval", "blueprint", "pathfinder", "orchestration"}

// checkLiteral checks a literal (template-free) input value. It returns ""
// when the value is acceptable.
func checkLiteral(k kind, v any) string {
	switch k {
	case kText:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("want a string, got %s", typeName(v))
		}
		if strings.TrimSpace(s) == "" {
			return "must not be empty"
		}
	case kID:
		switch x := v.(type) {
		case string:
			if strings.TrimSpace(x) == "" {
				return "must not be empty"
			}
		case int64, uint64, int:
		default:
			return fmt.Sprintf("want an id (string or number), got %s", typeName(v))
		}
	case kIDs:
		switch x := v.(type) {
		case string:
		case []any:
			for _, e := range x {
				if msg := checkLiteral(kID, e); msg != "" {
					return "list item: " + msg
				}
			}
		default:
			return fmt.Sprintf("want a list of ids or a comma-separated string, got %s", typeName(v))
		}
	case kMap, kStringMap:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Sprintf("want a mapping, got %s", typeName(v))
		}
		if k == kStringMap {
			for key, e := range m {
				switch e.(type) {
				case map[string]any, []any:
					return fmt.Sprintf("key %q: want a scalar value, got %s", key, typeName(e))
				}
			}
		}
	case kData:
		switch x := v.(type) {
		case map[string]any:
		case []any:
			if len(x) == 0 {
				return "must not be an empty list"
			}
			for _, e := range x {
				if _, ok := e.(map[string]any); !ok {
					return fmt.Sprintf("want a list of mappings, found %s", typeName(e))
				}
			}
		default:
			return fmt.Sprintf("want a mapping (or a list of mappings), got %s", typeName(v))
		}
	case kFields:
		switch x := v.(type) {
		case string:
			if strings.TrimSpace(x) == "" {
				return "must not be empty"
			}
		case []any:
			if len(x) == 0 {
				return "must not be an empty list"
			}
			for _, e := range x {
				if _, ok := e.(string); !ok {
					return fmt.Sprintf("want a list of field names, found %s", typeName(e))
				}
			}
		default:
			return fmt.Sprintf("want a list of field names, got %s", typeName(v))
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("want true or false, got %s", typeName(v))
		}
	case kInt, kPerPage:
		n, ok := intLiteral(v)
		if !ok {
			return fmt.Sprintf("want a whole number, got %s", typeName(v))
		}
		if n < 0 || k == kPerPage && (n < 1 || n > 200) {
			if k == kPerPage {
				return fmt.Sprintf("must be between 1 and 200, got %d", n)
			}
			return fmt.Sprintf("must not be negative, got %d", n)
		}
	case kMethod:
		return oneWord(v, []string{"GET", "POST", "PUT", "PATCH", "DELETE"}, true)
	case kResponseType:
		return oneWord(v, []string{"json", "text", "binary"}, false)
	case kSortOrder:
		return oneWord(v, []string{"asc", "desc"}, false)
	case kTrigger:
		switch x := v.(type) {
		case string:
			// "all"/"default" let Zoho run every automation; absent = none.
			return oneWord(x, append([]string{"all", "default"}, triggerWords...), false)
		case []any:
			for _, e := range x {
				if msg := oneWord(e, triggerWords, false); msg != "" {
					return msg
				}
			}
		default:
			return fmt.Sprintf("want a trigger word or a list of them (%s), got %s", strings.Join(triggerWords, ", "), typeName(v))
		}
	case kPath:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("want a string, got %s", typeName(v))
		}
		return checkRelativePath(s)
	case kDuration:
		switch x := v.(type) {
		case int64, uint64, float64:
		case string:
			if _, err := time.ParseDuration(x); err != nil {
				return fmt.Sprintf("want a duration such as 30s or a number of seconds, got %q", x)
			}
		default:
			return fmt.Sprintf("want a duration such as 30s, got %s", typeName(v))
		}
	case kString:
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("want a string, got %s", typeName(v))
		}
	case kFiles:
		return checkFiles(v)
	case kCOQL:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("want a string, got %s", typeName(v))
		}
		if f := strings.Fields(s); len(f) == 0 || !strings.EqualFold(f[0], "select") {
			return "a COQL query starts with select"
		}
	}
	return ""
}

// checkFiles checks a raw request's files: what the Zoho client reads
// (name, file_name, exactly one of content and content_base64).
func checkFiles(v any) string {
	list, ok := v.([]any)
	if !ok {
		return fmt.Sprintf("want a list of {name, file_name, content | content_base64}, got %s", typeName(v))
	}
	keys := []string{"name", "file_name", "content", "content_base64"}
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return fmt.Sprintf("file %d: want a mapping, got %s", i+1, typeName(e))
		}
		for k := range m {
			if !slices.Contains(keys, k) {
				return fmt.Sprintf("file %d: unknown key %q (want name, file_name, content or content_base64)%s", i+1, k, didYouMean(k, keys))
			}
		}
		for _, k := range []string{"name", "file_name"} {
			if _, ok := m[k]; !ok {
				return fmt.Sprintf("file %d: %s is required", i+1, k)
			}
			if msg := checkLiteral(kText, m[k]); msg != "" {
				return fmt.Sprintf("file %d: %s: %s", i+1, k, msg)
			}
		}
		_, c := m["content"]
		_, b := m["content_base64"]
		if c == b {
			return fmt.Sprintf("file %d: give exactly one of content, content_base64", i+1)
		}
		for _, k := range []string{"content", "content_base64"} {
			if x, ok := m[k]; ok {
				if _, isStr := x.(string); !isStr {
					return fmt.Sprintf("file %d: %s: want a string, got %s", i+1, k, typeName(x))
				}
			}
		}
	}
	return ""
}

// checkRelativePath refuses anything that could leave the API base: a
// scheme, a host, a `..` segment or a backslash.
func checkRelativePath(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("not a valid path: %v", err)
	}
	if u.Scheme != "" || u.Host != "" || strings.HasPrefix(s, "//") {
		return "must be a path relative to the API base (no scheme or host), e.g. /settings/modules"
	}
	if strings.Contains(s, "\\") {
		return "must not contain a backslash"
	}
	if strings.ContainsAny(s, "?#") {
		return "must not contain ? or #: give query parameters in query"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "must not contain control characters"
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == ".." || seg == "." {
			return "must not contain . or .. segments"
		}
	}
	if strings.Contains(strings.ToLower(s), "%2e") {
		return "must not contain encoded dots"
	}
	return ""
}

func oneWord(v any, words []string, upper bool) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("want one of %s, got %s", strings.Join(words, ", "), typeName(v))
	}
	cmp := s
	if upper {
		cmp = strings.ToUpper(s)
	}
	if !slices.Contains(words, cmp) {
		return fmt.Sprintf("%q is not one of %s%s", s, strings.Join(words, ", "), didYouMean(s, words))
	}
	return ""
}

func intLiteral(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		return int64(x), true
	case int:
		return int64(x), true
	}
	return 0, false
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, uint64, int:
		return "an integer"
	case float64:
		return "a number"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}
