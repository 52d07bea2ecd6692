package zoho

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ActionSpec describes one action of the generic layer (see doc.go).
type ActionSpec struct {
	Name     string
	Required []string
	Optional []string
}

type actionFunc func(ctx context.Context, c *Client, a *args) (map[string]any, error)

type action struct {
	spec ActionSpec
	run  actionFunc
}

var booksCommon = []string{"parent_type", "parent_id", "organization_id", "query"}

var rawInputs = []string{"query", "headers", "json", "form", "files", "response_type", "timeout", "max_retries", "retry_delay",
	"exponential", "retry_all_errors", "debug"}

// actionTable is built per call: no package-level mutable state.
func actionTable() map[string]action {
	t := map[string]action{}
	add := func(name string, req, opt []string, run actionFunc) {
		t[name] = action{ActionSpec{Name: name, Required: req, Optional: opt}, run}
	}
	add("crm.create_record", []string{"module", "data"}, []string{"trigger", "duplicate_check_fields", "upsert"}, actCRMCreate)
	add("crm.get_record", []string{"module", "id"}, []string{"fields"}, actCRMGet)
	add("crm.get_records", []string{"module", "fields"}, []string{"page", "per_page", "page_token", "sort_by", "sort_order", "all", "max_records"}, actCRMList)
	add("crm.update_record", []string{"module", "data"}, []string{"id", "trigger"}, actCRMUpdate)
	add("crm.remove_record", []string{"module"}, []string{"id", "ids", "wf_trigger"}, actCRMRemove)
	add("crm.add_attachment", []string{"module", "id"}, []string{"file_name", "content", "content_base64", "url", "title"}, actCRMAttach)
	add("crm.get_attachments", []string{"module", "id"}, []string{"fields", "page", "per_page"}, actCRMAttachments)
	add("crm.coql", []string{"query"}, []string{"all"}, actCRMCOQL)
	add("crm.raw_request", []string{"method", "path"}, rawInputs, actRaw(APICRM))
	add("books.raw_request", []string{"method", "path"}, append(append([]string{}, rawInputs...), "organization_id"), actRaw(APIBooks))
	add("books.create_record", []string{"entity", "data"}, booksCommon, actBooksCreate)
	add("books.get_record", []string{"entity", "id"}, booksCommon, actBooksGet)
	add("books.get_records", []string{"entity"}, append(append([]string{}, booksCommon...), "page", "per_page", "search", "all", "max_records"), actBooksList)
	add("books.update_record", []string{"entity", "id", "data"}, booksCommon, actBooksUpdate)
	add("books.remove_record", []string{"entity", "id"}, booksCommon, actBooksRemove)
	return t
}

// ActionNames lists the action names accepted by RunAction, sorted.
func ActionNames() []string {
	t := actionTable()
	out := make([]string, 0, len(t))
	for k := range t {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Actions describes every action's inputs, sorted by name.
func Actions() []ActionSpec {
	t := actionTable()
	out := make([]ActionSpec, 0, len(t))
	for _, name := range ActionNames() {
		out = append(out, t[name].spec)
	}
	return out
}

// RunAction runs a named action with inputs decoded from YAML/expressions.
// Bad inputs give *InputError (before any request). Batch writes with
// failed records return the output (per-record results) AND a *BatchError.
func (c *Client) RunAction(ctx context.Context, name string, in map[string]any) (map[string]any, error) {
	act, ok := c.actions[name]
	if !ok {
		return nil, &InputError{Action: name, Input: "action", Reason: "unknown action (known: " + strings.Join(ActionNames(), ", ") + ")"}
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, act.spec.Required...), act.spec.Optional...) {
		allowed[k] = true
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !allowed[k] {
			return nil, &InputError{Action: name, Input: k, Reason: "unknown input"}
		}
	}
	for _, k := range act.spec.Required {
		if v, ok := in[k]; !ok || v == nil {
			return nil, &InputError{Action: name, Input: k, Reason: "required"}
		}
	}
	out, err := act.run(ctx, c, &args{action: name, in: in})
	if out != nil {
		out = NormalizeNumbers(out).(map[string]any)
	}
	return out, err
}

// args reads loosely typed inputs.
type args struct {
	action string
	in     map[string]any
}

func (a *args) fail(k, format string, v ...any) error {
	return &InputError{Action: a.action, Input: k, Reason: fmt.Sprintf(format, v...)}
}

func (a *args) has(k string) bool { v, ok := a.in[k]; return ok && v != nil }

func (a *args) str(k string) (string, error) {
	v, ok := a.in[k]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := scalarString(v)
	if !ok {
		return "", a.fail(k, "want a string, got %T", v)
	}
	return s, nil
}

func (a *args) reqStr(k string) (string, error) {
	s, err := a.str(k)
	if err == nil && strings.TrimSpace(s) == "" {
		err = a.fail(k, "required")
	}
	return s, err
}

// scalarString renders strings and numbers (ids may come as numbers).
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case int:
		return strconv.Itoa(x), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func (a *args) integer(k string) (int, error) {
	v, ok := a.in[k]
	if !ok || v == nil {
		return 0, nil
	}
	switch x := v.(type) {
	case int:
		return x, nil
	case int32:
		return int(x), nil
	case int64:
		return int(x), nil
	case uint64:
		return int(x), nil
	case float64:
		if x == math.Trunc(x) {
			return int(x), nil
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return int(n), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	}
	return 0, a.fail(k, "want an integer, got %v", v)
}

func (a *args) boolean(k string, def bool) (bool, error) {
	v, ok := a.in[k]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, nil
		}
	}
	return def, a.fail(k, "want true or false, got %v", v)
}

// strs accepts a list of scalars or a comma-separated string.
func (a *args) strs(k string) ([]string, bool, error) {
	v, ok := a.in[k]
	if !ok || v == nil {
		return nil, false, nil
	}
	switch x := v.(type) {
	case string:
		var out []string
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, true, nil
	case []string:
		return x, true, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := scalarString(e)
			if !ok {
				return nil, true, a.fail(k, "element %d: want a string, got %T", i, e)
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	if s, ok := scalarString(v); ok {
		return []string{s}, true, nil
	}
	return nil, true, a.fail(k, "want a list of strings, got %T", v)
}

func toMap(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m, true
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = e
		}
		return m, true
	}
	return nil, false
}

func (a *args) mapping(k string) (map[string]any, error) {
	v, ok := a.in[k]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := toMap(v)
	if !ok {
		return nil, a.fail(k, "want a map, got %T", v)
	}
	return m, nil
}

// records accepts one map or a list of maps.
func (a *args) records(k string) ([]Record, bool, error) {
	v := a.in[k]
	if m, ok := toMap(v); ok {
		return []Record{m}, false, nil
	}
	list, ok := v.([]any)
	if !ok {
		if ms, ok2 := v.([]map[string]any); ok2 {
			return slices.Clone(ms), true, nil
		}
		return nil, false, a.fail(k, "want a map or a list of maps, got %T", v)
	}
	if len(list) == 0 {
		return nil, true, a.fail(k, "empty list")
	}
	out := make([]Record, 0, len(list))
	for i, e := range list {
		m, ok := toMap(e)
		if !ok {
			return nil, true, a.fail(k, "element %d: want a map, got %T", i, e)
		}
		out = append(out, m)
	}
	return out, true, nil
}

// values turns a map of scalars or lists into url.Values.
func (a *args) values(k string) (url.Values, error) {
	m, err := a.mapping(k)
	if err != nil || m == nil {
		return nil, err
	}
	q := url.Values{}
	for key, v := range m {
		if s, ok := scalarString(v); ok {
			q.Set(key, s)
			continue
		}
		sub := &args{action: a.action, in: map[string]any{k + "." + key: v}}
		l, _, err := sub.strs(k + "." + key)
		if err != nil {
			return nil, err
		}
		q[key] = l
	}
	return q, nil
}

// duration accepts a Go duration string or a number of seconds.
func (a *args) duration(k string) (time.Duration, error) {
	v, ok := a.in[k]
	if !ok || v == nil {
		return 0, nil
	}
	if s, ok := v.(string); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil && d >= 0 {
			return d, nil
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f >= 0 {
			return time.Duration(f * float64(time.Second)), nil
		}
		return 0, a.fail(k, "want a duration like 30s or a number of seconds, got %q", s)
	}
	if s, ok := scalarString(v); ok {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 {
			return time.Duration(f * float64(time.Second)), nil
		}
	}
	return 0, a.fail(k, "want a duration like 30s or a number of seconds, got %v", v)
}

// trigger: absent → [] (no automations, loop-safe); "all"/"default" → omit
// the key so Zoho runs every automation; a list → exactly those.
func (a *args) trigger() (*[]string, error) {
	if v, ok := a.in["trigger"].(string); ok && (strings.EqualFold(v, "all") || strings.EqualFold(v, "default")) {
		return nil, nil
	}
	l, set, err := a.strs("trigger")
	if err != nil {
		return nil, err
	}
	if !set {
		return NoTriggers(), nil
	}
	return Triggers(l...), nil
}

func writeOutput(results []RecordResult) map[string]any {
	ids := make([]any, 0, len(results))
	data := make([]any, 0, len(results))
	first := ""
	for _, r := range results {
		if r.ID != "" {
			ids = append(ids, r.ID)
			if first == "" {
				first = r.ID
			}
		}
		data = append(data, r.Map())
	}
	return map[string]any{"id": first, "ids": ids, "data": data}
}

func actCRMCreate(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, err := a.reqStr("module")
	if err != nil {
		return nil, err
	}
	recs, _, err := a.records("data")
	if err != nil {
		return nil, err
	}
	trig, err := a.trigger()
	if err != nil {
		return nil, err
	}
	dup, _, err := a.strs("duplicate_check_fields")
	if err != nil {
		return nil, err
	}
	upsert, err := a.boolean("upsert", false)
	if err != nil {
		return nil, err
	}
	opts := &WriteOptions{Trigger: trig, DuplicateCheckFields: dup}
	var res []RecordResult
	if upsert {
		res, _, err = c.CRM.UpsertRecords(ctx, module, recs, opts)
	} else {
		res, _, err = c.CRM.CreateRecords(ctx, module, recs, opts)
	}
	if res == nil {
		return nil, err
	}
	return writeOutput(res), err
}

func actCRMGet(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, id, err := a.record()
	if err != nil {
		return nil, err
	}
	fields, _, err := a.strs("fields")
	if err != nil {
		return nil, err
	}
	rec, _, err := c.CRM.GetRecord(ctx, module, id, &GetOptions{Fields: fields})
	if err != nil {
		return nil, err
	}
	return map[string]any{"record": rec}, nil
}

func infoMap(i *PageInfo) map[string]any {
	if i == nil {
		return map[string]any{}
	}
	m := map[string]any{"more_records": i.MoreRecords, "count": i.Count}
	if i.Page > 0 {
		m["page"] = i.Page
	}
	if i.PerPage > 0 {
		m["per_page"] = i.PerPage
	}
	if i.NextPageToken != "" {
		m["next_page_token"] = i.NextPageToken
	}
	if i.SortBy != "" {
		m["sort_by"], m["sort_order"] = i.SortBy, i.SortOrder
	}
	return m
}

func recordsToAny(recs []Record) []any {
	out := make([]any, len(recs))
	for i, r := range recs {
		out[i] = r
	}
	return out
}

func actCRMList(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, err := a.reqStr("module")
	if err != nil {
		return nil, err
	}
	fields, _, err := a.strs("fields")
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, a.fail("fields", "required")
	}
	o := &ListOptions{Fields: fields}
	if o.Page, err = a.integer("page"); err != nil {
		return nil, err
	}
	if o.PerPage, err = a.integer("per_page"); err != nil {
		return nil, err
	}
	if o.PerPage < 0 || o.PerPage > 200 {
		return nil, a.fail("per_page", "between 1 and 200")
	}
	for k, p := range map[string]*string{"page_token": &o.PageToken, "sort_by": &o.SortBy, "sort_order": &o.SortOrder} {
		if *p, err = a.str(k); err != nil {
			return nil, err
		}
	}
	all, err := a.boolean("all", false)
	if err != nil {
		return nil, err
	}
	maxN, err := a.integer("max_records")
	if err != nil {
		return nil, err
	}
	if !all {
		recs, resp, err := c.CRM.ListRecords(ctx, module, o)
		if err != nil {
			return nil, err
		}
		if maxN > 0 && len(recs) > maxN {
			recs = recs[:maxN]
		}
		return map[string]any{"data": recordsToAny(recs), "info": infoMap(resp.Info)}, nil
	}
	var out []Record
	more := false
	for rec, err := range c.CRM.Records(ctx, module, o) {
		if err != nil {
			return nil, err
		}
		if maxN > 0 && len(out) == maxN {
			more = true
			break
		}
		out = append(out, rec)
	}
	return map[string]any{"data": recordsToAny(out), "info": map[string]any{"count": len(out), "more_records": more}}, nil
}

func actCRMUpdate(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, err := a.reqStr("module")
	if err != nil {
		return nil, err
	}
	id, err := a.str("id")
	if err != nil {
		return nil, err
	}
	recs, isList, err := a.records("data")
	if err != nil {
		return nil, err
	}
	trig, err := a.trigger()
	if err != nil {
		return nil, err
	}
	opts := &WriteOptions{Trigger: trig}
	if id != "" {
		if isList {
			return nil, a.fail("id", "give either id with one data map, or ids inside a list of data")
		}
		r, _, err := c.CRM.UpdateRecord(ctx, module, id, recs[0], opts)
		if r == nil {
			return nil, err
		}
		return writeOutput([]RecordResult{*r}), err
	}
	for i, r := range recs {
		if idString(r["id"]) == "" {
			if _, ok := scalarString(r["id"]); !ok {
				return nil, a.fail("data", "record %d has no id (or give the id input)", i)
			}
		}
		if s, ok := scalarString(r["id"]); ok {
			r["id"] = s
		}
	}
	res, _, err := c.CRM.UpdateRecords(ctx, module, recs, opts)
	if res == nil {
		return nil, err
	}
	return writeOutput(res), err
}

func actCRMRemove(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, err := a.reqStr("module")
	if err != nil {
		return nil, err
	}
	ids, _, err := a.strs("ids")
	if err != nil {
		return nil, err
	}
	id, err := a.str("id")
	if err != nil {
		return nil, err
	}
	if id != "" {
		ids = append([]string{id}, ids...)
	}
	if len(ids) == 0 {
		return nil, a.fail("ids", "id or ids is required")
	}
	wf, err := a.boolean("wf_trigger", false)
	if err != nil {
		return nil, err
	}
	res, _, err := c.CRM.DeleteRecords(ctx, module, ids, &DeleteOptions{WFTrigger: &wf})
	if res == nil {
		return nil, err
	}
	out := writeOutput(res)
	delete(out, "id")
	return out, err
}

func actCRMAttach(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, id, err := a.record()
	if err != nil {
		return nil, err
	}
	title, err := a.str("title")
	if err != nil {
		return nil, err
	}
	n := 0
	for _, k := range []string{"content", "content_base64", "url"} {
		if a.has(k) {
			n++
		}
	}
	if n != 1 {
		return nil, a.fail("content", "give exactly one of content, content_base64, url")
	}
	var r *RecordResult
	if a.has("url") {
		link, err := a.reqStr("url")
		if err != nil {
			return nil, err
		}
		r, _, err = c.CRM.AttachLink(ctx, module, id, link, title)
		if r == nil {
			return nil, err
		}
	} else {
		name, err := a.reqStr("file_name")
		if err != nil {
			return nil, err
		}
		var data []byte
		if a.has("content") {
			s, ok := a.in["content"].(string)
			if !ok {
				return nil, a.fail("content", "want a string, got %T", a.in["content"])
			}
			data = []byte(s)
		} else if data, err = a.base64("content_base64"); err != nil {
			return nil, err
		}
		r, _, err = c.CRM.AddAttachment(ctx, module, id, name, bytes.NewReader(data), &AttachmentOptions{Title: title})
		if r == nil {
			return nil, err
		}
	}
	return map[string]any{"id": r.ID, "data": []any{r.Map()}}, err
}

// actCRMAttachments lists one page of a record's attachments (and links).
func actCRMAttachments(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	module, id, err := a.record()
	if err != nil {
		return nil, err
	}
	o := &AttachmentListOptions{}
	if o.Fields, _, err = a.strs("fields"); err != nil {
		return nil, err
	}
	if o.Page, err = a.integer("page"); err != nil {
		return nil, err
	}
	if o.PerPage, err = a.integer("per_page"); err != nil {
		return nil, err
	}
	if o.PerPage < 0 || o.PerPage > 200 {
		return nil, a.fail("per_page", "between 1 and 200")
	}
	rows, resp, err := c.CRM.ListAttachments(ctx, module, id, o)
	if err != nil {
		return nil, err
	}
	return map[string]any{"data": recordsToAny(rows), "info": infoMap(resp.Info)}, nil
}

// record reads the required module and id of actions on one CRM record.
func (a *args) record() (module, id string, err error) {
	if module, err = a.reqStr("module"); err != nil {
		return "", "", err
	}
	if id, err = a.reqStr("id"); err != nil {
		return "", "", err
	}
	return module, id, nil
}

func (a *args) base64(k string) ([]byte, error) {
	switch x := a.in[k].(type) {
	case []byte:
		return x, nil
	case string:
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(x))
		if err != nil {
			if b, err = base64.URLEncoding.DecodeString(strings.TrimSpace(x)); err != nil {
				return nil, a.fail(k, "not valid base64")
			}
		}
		return b, nil
	}
	return nil, a.fail(k, "want base64 text, got %T", a.in[k])
}

func actCRMCOQL(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	q, err := a.reqStr("query")
	if err != nil {
		return nil, err
	}
	all, err := a.boolean("all", false)
	if err != nil {
		return nil, err
	}
	if !all {
		rows, resp, err := c.CRM.COQL(ctx, q)
		if err != nil {
			return nil, err
		}
		return map[string]any{"data": recordsToAny(rows), "info": infoMap(resp.Info)}, nil
	}
	var rows []Record
	for r, err := range c.CRM.COQLAll(ctx, q) {
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return map[string]any{"data": recordsToAny(rows), "info": map[string]any{"count": len(rows), "more_records": false}}, nil
}

func actRaw(api string) actionFunc {
	return func(ctx context.Context, c *Client, a *args) (map[string]any, error) {
		rr := &RawRequest{}
		var err error
		if rr.Method, err = a.reqStr("method"); err != nil {
			return nil, err
		}
		if rr.Path, err = a.reqStr("path"); err != nil {
			return nil, err
		}
		if rr.Query, err = a.values("query"); err != nil {
			return nil, err
		}
		hv, err := a.values("headers")
		if err != nil {
			return nil, err
		}
		if hv != nil {
			rr.Headers = http.Header{}
			for k, v := range hv {
				rr.Headers[http.CanonicalHeaderKey(k)] = v
			}
		}
		if a.has("json") {
			rr.JSON = a.in["json"]
		}
		if rr.Form, err = a.values("form"); err != nil {
			return nil, err
		}
		if a.has("files") {
			if rr.Files, err = a.files(); err != nil {
				return nil, err
			}
		}
		rt, err := a.str("response_type")
		if err != nil {
			return nil, err
		}
		rr.ResponseType = ResponseType(strings.ToLower(rt))
		if rr.Timeout, err = a.duration("timeout"); err != nil {
			return nil, err
		}
		if rr.Debug, err = a.boolean("debug", false); err != nil {
			return nil, err
		}
		if a.has("max_retries") || a.has("retry_delay") || a.has("exponential") || a.has("retry_all_errors") {
			p := c.retry
			if a.has("max_retries") {
				if p.MaxRetries, err = a.integer("max_retries"); err != nil {
					return nil, err
				}
				if p.MaxRetries < 0 || p.MaxRetries > 20 {
					return nil, a.fail("max_retries", "between 0 and 20")
				}
			}
			if a.has("retry_delay") {
				if p.BaseDelay, err = a.duration("retry_delay"); err != nil {
					return nil, err
				}
			}
			exp, err := a.boolean("exponential", true)
			if err != nil {
				return nil, err
			}
			p.Constant = !exp
			if p.RetryAllErrors, err = a.boolean("retry_all_errors", false); err != nil {
				return nil, err
			}
			rr.Retry = &p
		}
		if api == APIBooks {
			if rr.OrgID, err = a.str("organization_id"); err != nil {
				return nil, err
			}
		}
		var resp *RawResponse
		if api == APIBooks {
			resp, _, err = c.Books.Raw(ctx, rr)
		} else {
			resp, _, err = c.CRM.Raw(ctx, rr)
		}
		if resp == nil {
			return nil, err
		}
		hdr := map[string]any{}
		for k, v := range resp.Header {
			hdr[k] = strings.Join(v, ", ")
		}
		body := resp.Body
		if b, ok := body.([]byte); ok {
			body = base64.StdEncoding.EncodeToString(b)
		}
		return map[string]any{"status": resp.Status, "headers": hdr, "body": body}, err
	}
}

func (a *args) files() (map[string]File, error) {
	list, ok := a.in["files"].([]any)
	if !ok {
		return nil, a.fail("files", "want a list of {name, file_name, content | content_base64}")
	}
	out := map[string]File{}
	for i, e := range list {
		m, ok := toMap(e)
		if !ok {
			return nil, a.fail("files", "element %d: want a map", i)
		}
		sub := &args{action: a.action, in: m}
		name, err := sub.reqStr("name")
		if err != nil {
			return nil, a.fail("files", "element %d: name is required", i)
		}
		fn, err := sub.reqStr("file_name")
		if err != nil {
			return nil, a.fail("files", "element %d: file_name is required", i)
		}
		var data []byte
		switch {
		case sub.has("content") && !sub.has("content_base64"):
			s, _ := m["content"].(string)
			data = []byte(s)
		case sub.has("content_base64") && !sub.has("content"):
			if data, err = sub.base64("content_base64"); err != nil {
				return nil, a.fail("files", "element %d: content_base64 is not valid base64", i)
			}
		default:
			return nil, a.fail("files", "element %d: give exactly one of content, content_base64", i)
		}
		out[name] = File{FileName: fn, Content: data}
	}
	return out, nil
}

func (a *args) booksOptions() (*BooksOptions, error) {
	o := &BooksOptions{}
	var err error
	for k, p := range map[string]*string{"parent_type": &o.ParentType, "parent_id": &o.ParentID, "organization_id": &o.OrgID} {
		if *p, err = a.str(k); err != nil {
			return nil, err
		}
	}
	if o.Query, err = a.values("query"); err != nil {
		return nil, err
	}
	return o, nil
}

func (a *args) booksBase(needID bool) (entity, id string, o *BooksOptions, err error) {
	if entity, err = a.reqStr("entity"); err != nil {
		return
	}
	if needID {
		if id, err = a.reqStr("id"); err != nil {
			return
		}
	}
	o, err = a.booksOptions()
	return
}

func actBooksCreate(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	entity, _, o, err := a.booksBase(false)
	if err != nil {
		return nil, err
	}
	data, err := a.mapping("data")
	if err != nil {
		return nil, err
	}
	out, _, err := c.Books.CreateRecord(ctx, entity, data, o)
	return out, err
}

func actBooksGet(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	entity, id, o, err := a.booksBase(true)
	if err != nil {
		return nil, err
	}
	out, _, err := c.Books.GetRecord(ctx, entity, id, o)
	return out, err
}

func actBooksUpdate(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	entity, id, o, err := a.booksBase(true)
	if err != nil {
		return nil, err
	}
	data, err := a.mapping("data")
	if err != nil {
		return nil, err
	}
	out, _, err := c.Books.UpdateRecord(ctx, entity, id, data, o)
	return out, err
}

func actBooksRemove(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	entity, id, o, err := a.booksBase(true)
	if err != nil {
		return nil, err
	}
	out, _, err := c.Books.DeleteRecord(ctx, entity, id, o)
	return out, err
}

func actBooksList(ctx context.Context, c *Client, a *args) (map[string]any, error) {
	entity, _, o, err := a.booksBase(false)
	if err != nil {
		return nil, err
	}
	lo := &BooksListOptions{BooksOptions: *o}
	if lo.Page, err = a.integer("page"); err != nil {
		return nil, err
	}
	if lo.PerPage, err = a.integer("per_page"); err != nil {
		return nil, err
	}
	if lo.Filters, err = a.values("search"); err != nil {
		return nil, err
	}
	all, err := a.boolean("all", false)
	if err != nil {
		return nil, err
	}
	maxN, err := a.integer("max_records")
	if err != nil {
		return nil, err
	}
	if !all {
		out, _, err := c.Books.ListRecords(ctx, entity, lo)
		return out, err
	}
	items := []any{}
	more := false
	for it, err := range c.Books.Records(ctx, entity, lo) {
		if err != nil {
			return nil, err
		}
		if maxN > 0 && len(items) == maxN {
			more = true
			break
		}
		items = append(items, it)
	}
	return map[string]any{pluralKey(entity): items, "page_context": map[string]any{"has_more_page": more, "count": len(items)}}, nil
}

// NormalizeNumbers gives numbers the types action outputs have: json.Number
// (and the int and uint64 a YAML decoder yields) become int64 when whole
// and exact, float64 otherwise, so expressions compare numbers alike; in
// nested maps and lists too. It changes maps and []any in place.
func NormalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case int:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return float64(x)
	case map[string]any:
		for k, e := range x {
			x[k] = NormalizeNumbers(e)
		}
		return x
	case []any:
		for i := range x {
			x[i] = NormalizeNumbers(x[i])
		}
		return x
	case []map[string]any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = NormalizeNumbers(x[i])
		}
		return out
	}
	return v
}
