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
)

type actionDef struct {
	spec  ActionSpec
	kinds map[string]kind
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
		"organization_id": kID}
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
		map[string]kind{"module": kText, "id": kID, "file_name": kText, "url": kText, "title": kText})
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
	return t
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
