package zoho

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Record is a CRM record keyed by field API name; dynamic (custom) fields
// need no Go type. Numbers decode as json.Number so 19-digit ids stay exact.
type Record = map[string]any

// MaxWriteBatch is Zoho's limit of records per insert/update/upsert/delete call.
const MaxWriteBatch = 100

// discretePagingLimit: beyond this many records CRM lists need page_token (G7).
const discretePagingLimit = 2000

// CRMService is the Zoho CRM v8 API.
type CRMService struct{ c *Client }

// WriteOptions are the non-record keys of a write body.
type WriteOptions struct {
	// Trigger lists the automations to run: nil = omit the key (Zoho runs all
	// of them); a non-nil empty slice = run none (loop-safe). See NoTriggers.
	Trigger *[]string
	// DuplicateCheckFields orders the unique fields matched by upsert (and insert).
	DuplicateCheckFields []string
	// LARID is the lead assignment rule id (insert).
	LARID string
	// ApplyFeatureExecution / SkipFeatureExecution name features such as layout_rules or cadences.
	ApplyFeatureExecution []string
	SkipFeatureExecution  []string
}

// NoTriggers returns a Trigger value that fires no Zoho automation.
func NoTriggers() *[]string { t := []string{}; return &t }

// Triggers returns a Trigger value firing exactly the given automations
// (workflow, approval, blueprint, pathfinder, orchestration).
func Triggers(t ...string) *[]string { t = append([]string{}, t...); return &t }

// RecordResult is one element of a write answer, in input order.
type RecordResult struct {
	// Index is the position of the record in the caller's input.
	Index   int            `json:"index"`
	Status  string         `json:"status"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// ID is details.id: the id of the record written.
	ID string `json:"id,omitempty"`
	// Action is "insert" or "update" for upserts.
	Action string `json:"action,omitempty"`
	// DuplicateField is the field an upsert matched on.
	DuplicateField string `json:"duplicate_field,omitempty"`
}

// OK reports status "success".
func (r RecordResult) OK() bool { return r.Status == "success" }

// Err returns the record's error, nil on success.
func (r RecordResult) Err() error {
	if r.OK() {
		return nil
	}
	return RecordError{Index: r.Index, Code: r.Code, Message: r.Message, Details: r.Details}
}

// Map renders the result for the action layer.
func (r RecordResult) Map() map[string]any {
	m := map[string]any{"status": r.Status, "code": r.Code, "message": r.Message}
	if r.Details != nil {
		m["details"] = r.Details
	}
	if r.ID != "" {
		m["id"] = r.ID
	}
	if r.Action != "" {
		m["action"] = r.Action
	}
	if r.DuplicateField != "" {
		m["duplicate_field"] = r.DuplicateField
	}
	return m
}

func resultFromMap(i int, m map[string]any) RecordResult {
	r := RecordResult{Index: i, Status: str(m["status"]), Code: codeString(m["code"]), Message: str(m["message"]),
		Action: str(m["action"]), DuplicateField: str(m["duplicate_field"])}
	r.Details, _ = m["details"].(map[string]any)
	if r.Details != nil {
		r.ID = idString(r.Details["id"])
	}
	return r
}

// idString renders an id given as string or number.
func idString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case fmt.Stringer:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

func (o *WriteOptions) apply(body map[string]any) {
	if o == nil {
		return
	}
	if o.Trigger != nil {
		body["trigger"] = append([]string{}, (*o.Trigger)...)
	}
	if len(o.DuplicateCheckFields) > 0 {
		body["duplicate_check_fields"] = o.DuplicateCheckFields
	}
	if o.LARID != "" {
		body["lar_id"] = o.LARID
	}
	feat := func(names []string) []map[string]string {
		out := make([]map[string]string, len(names))
		for i, n := range names {
			out[i] = map[string]string{"name": n}
		}
		return out
	}
	if len(o.ApplyFeatureExecution) > 0 {
		body["apply_feature_execution"] = feat(o.ApplyFeatureExecution)
	}
	if len(o.SkipFeatureExecution) > 0 {
		body["skip_feature_execution"] = feat(o.SkipFeatureExecution)
	}
}

// chunks splits n items into [start,end) ranges of at most size.
func chunks(n, size int) [][2]int {
	var out [][2]int
	for s := 0; s < n; s += size {
		e := min(s+size, n)
		out = append(out, [2]int{s, e})
	}
	return out
}

// maybeApplied marks err when a request behind it was retried after an
// ambiguous failure (see MaybeApplied).
func maybeApplied(ambiguous bool, err error) error {
	if !ambiguous || err == nil {
		return err
	}
	return &maybeAppliedError{err}
}

// batchResult gathers the per-record failures of results into a *BatchError.
func batchResult(api string, results []RecordResult) error {
	var failed []RecordError
	for _, r := range results {
		if !r.OK() {
			failed = append(failed, RecordError{Index: r.Index, Code: r.Code, Message: r.Message, Details: r.Details})
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &BatchError{API: api, Total: len(results), Failed: failed}
}

// decodeItems reads the data[] (or watch[]) array of a write answer.
func decodeItems(body []byte, key string) ([]map[string]any, bool) {
	var env map[string]any
	if err := decodeJSON(body, &env); err != nil || env == nil {
		return nil, false
	}
	arr, ok := env[key].([]any)
	if !ok {
		return nil, false
	}
	out := make([]map[string]any, 0, len(arr))
	for _, it := range arr {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out, true
}

// write sends records in chunks of MaxWriteBatch and merges per-record
// results in input order. CRM answers 400 with data[] when every record of
// a chunk fails: those are per-record results, not a request failure.
func (s *CRMService) write(ctx context.Context, method, rel string, recs []Record, opts *WriteOptions) ([]RecordResult, *Response, error) {
	if len(recs) == 0 {
		return nil, nil, &InputError{Input: "records", Reason: "no records given"}
	}
	results := make([]RecordResult, 0, len(recs))
	var last *Response
	attempts, ambiguous := 0, false
	for _, ch := range chunks(len(recs), MaxWriteBatch) {
		body := map[string]any{"data": recs[ch[0]:ch[1]]}
		opts.apply(body)
		b, err := jsonBody(body)
		if err != nil {
			return results, last, err
		}
		res, err := s.c.do(ctx, &request{api: APICRM, method: method, path: rel, body: b, contentType: "application/json"})
		if res != nil {
			ambiguous = ambiguous || res.ambiguous
			attempts += res.attempts
			last = res.response()
			last.Attempts = attempts
		}
		var items []map[string]any
		ok := false
		if res != nil && (err == nil || res.status == http.StatusBadRequest) {
			items, ok = decodeItems(res.body, "data")
		}
		if err != nil && (!ok || len(items) != ch[1]-ch[0]) {
			return results, last, err
		}
		if !ok || len(items) != ch[1]-ch[0] {
			return results, last, &Error{API: APICRM, Method: method, Path: rel, HTTPStatus: res.status, Code: "UNEXPECTED_RESPONSE",
				Message: fmt.Sprintf("expected %d results, got %d", ch[1]-ch[0], len(items))}
		}
		for i, it := range items {
			results = append(results, resultFromMap(ch[0]+i, it))
		}
	}
	return results, last, maybeApplied(ambiguous, batchResult(APICRM, results))
}

// CreateRecords inserts records (any number; sent 100 per call).
// On partial failure it returns all results and a *BatchError.
func (s *CRMService) CreateRecords(ctx context.Context, module string, recs []Record, opts *WriteOptions) ([]RecordResult, *Response, error) {
	rel, err := segs(module)
	if err != nil {
		return nil, nil, err
	}
	return s.write(ctx, http.MethodPost, rel, recs, opts)
}

// UpdateRecords updates records; each must carry its "id".
func (s *CRMService) UpdateRecords(ctx context.Context, module string, recs []Record, opts *WriteOptions) ([]RecordResult, *Response, error) {
	rel, err := segs(module)
	if err != nil {
		return nil, nil, err
	}
	for i, r := range recs {
		if idString(r["id"]) == "" {
			return nil, nil, &InputError{Input: fmt.Sprintf("records[%d].id", i), Reason: "bulk update needs the record id"}
		}
	}
	return s.write(ctx, http.MethodPut, rel, recs, opts)
}

// UpdateRecord updates one record by id.
func (s *CRMService) UpdateRecord(ctx context.Context, module, id string, rec Record, opts *WriteOptions) (*RecordResult, *Response, error) {
	rel, err := segs(module, id)
	if err != nil {
		return nil, nil, err
	}
	res, resp, err := s.write(ctx, http.MethodPut, rel, []Record{rec}, opts)
	if len(res) == 0 {
		return nil, resp, err
	}
	return &res[0], resp, err
}

// UpsertRecords inserts or updates records matched on DuplicateCheckFields
// (or the module's default unique fields).
func (s *CRMService) UpsertRecords(ctx context.Context, module string, recs []Record, opts *WriteOptions) ([]RecordResult, *Response, error) {
	rel, err := segs(module, "upsert")
	if err != nil {
		return nil, nil, err
	}
	return s.write(ctx, http.MethodPost, rel, recs, opts)
}

// DeleteOptions tunes DeleteRecords.
type DeleteOptions struct {
	// WFTrigger: nil = omit (Zoho's default is true: workflows run); set false to avoid loops (G10).
	WFTrigger *bool
}

// DeleteRecords deletes records by id (any number; 100 per call).
func (s *CRMService) DeleteRecords(ctx context.Context, module string, ids []string, opts *DeleteOptions) ([]RecordResult, *Response, error) {
	rel, err := segs(module)
	if err != nil {
		return nil, nil, err
	}
	if len(ids) == 0 {
		return nil, nil, &InputError{Input: "ids", Reason: "no ids given"}
	}
	results := make([]RecordResult, 0, len(ids))
	var last *Response
	ambiguous := false
	for _, ch := range chunks(len(ids), MaxWriteBatch) {
		q := url.Values{"ids": {strings.Join(ids[ch[0]:ch[1]], ",")}}
		if opts != nil && opts.WFTrigger != nil {
			q.Set("wf_trigger", strconv.FormatBool(*opts.WFTrigger))
		}
		res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodDelete, path: rel, query: q})
		last = res.response()
		ambiguous = ambiguous || (res != nil && res.ambiguous)
		var items []map[string]any
		ok := false
		if res != nil && (err == nil || res.status == http.StatusBadRequest) {
			items, ok = decodeItems(res.body, "data")
		}
		if err != nil && (!ok || len(items) != ch[1]-ch[0]) {
			return results, last, err
		}
		if !ok || len(items) != ch[1]-ch[0] {
			return results, last, &Error{API: APICRM, Method: http.MethodDelete, Path: rel, HTTPStatus: res.status, Code: "UNEXPECTED_RESPONSE",
				Message: fmt.Sprintf("expected %d results, got %d", ch[1]-ch[0], len(items))}
		}
		for i, it := range items {
			r := resultFromMap(ch[0]+i, it)
			if r.ID == "" {
				r.ID = ids[ch[0]+i]
			}
			results = append(results, r)
		}
	}
	return results, last, maybeApplied(ambiguous, batchResult(APICRM, results))
}

// GetOptions tunes GetRecord.
type GetOptions struct {
	Fields []string
	// Extra query parameters.
	Query url.Values
}

// GetRecord reads one record; an unknown id gives an error matching IsNotFound.
func (s *CRMService) GetRecord(ctx context.Context, module, id string, opts *GetOptions) (Record, *Response, error) {
	rel, err := segs(module, id)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	if opts != nil {
		for k, v := range opts.Query {
			q[k] = v
		}
		if len(opts.Fields) > 0 {
			q.Set("fields", strings.Join(opts.Fields, ","))
		}
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodGet, path: rel, query: q})
	if err != nil {
		return nil, res.response(), err
	}
	if res.status == http.StatusNoContent {
		return nil, res.response(), fmt.Errorf("zoho crm: %s record %s: %w", module, id, ErrNotFound)
	}
	var env struct {
		Data []Record `json:"data"`
	}
	if err := decodeJSON(res.body, &env); err != nil {
		return nil, res.response(), err
	}
	if len(env.Data) == 0 {
		return nil, res.response(), fmt.Errorf("zoho crm: %s record %s: %w", module, id, ErrNotFound)
	}
	return env.Data[0], res.response(), nil
}

// ListOptions are the query parameters of a CRM list (§2.9).
type ListOptions struct {
	// Fields is mandatory for lists (max 50 API names) (G6).
	Fields []string
	// Page (default 1) and PerPage (default and max 200).
	Page, PerPage int
	// PageToken continues past 2,000 records (info.next_page_token).
	PageToken string
	// SortBy: id, Created_Time or Modified_Time; SortOrder asc|desc.
	SortBy, SortOrder string
	IDs               []string
	CVID              string
	// Converted: true|false|both.
	Converted string
	Approved  string
	// ModifiedSince sends If-Modified-Since; an answer 304 yields no records
	// and Response.NotModified().
	ModifiedSince time.Time
	// Query holds any other parameter.
	Query url.Values
}

func (o *ListOptions) values() (url.Values, error) {
	if o == nil || len(o.Fields) == 0 {
		return nil, &InputError{Input: "fields", Reason: "CRM lists require the fields to return (max 50)"}
	}
	q := url.Values{}
	for k, v := range o.Query {
		q[k] = v
	}
	q.Set("fields", strings.Join(o.Fields, ","))
	setInt := func(k string, v int) {
		if v > 0 {
			q.Set(k, strconv.Itoa(v))
		}
	}
	setStr := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.PageToken == "" {
		setInt("page", o.Page)
	}
	setInt("per_page", o.PerPage)
	setStr("page_token", o.PageToken)
	setStr("sort_by", o.SortBy)
	setStr("sort_order", o.SortOrder)
	setStr("cvid", o.CVID)
	setStr("converted", o.Converted)
	setStr("approved", o.Approved)
	if len(o.IDs) > 0 {
		q.Set("ids", strings.Join(o.IDs, ","))
	}
	return q, nil
}

type listEnvelope struct {
	Data []Record `json:"data"`
	Info PageInfo `json:"info"`
}

func (s *CRMService) list(ctx context.Context, rel string, q url.Values, hdr http.Header) ([]Record, *Response, error) {
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodGet, path: rel, query: q, header: hdr})
	if err != nil {
		return nil, res.response(), err
	}
	resp := res.response()
	if res.status == http.StatusNoContent || res.status == http.StatusNotModified {
		resp.Info = &PageInfo{}
		return nil, resp, nil
	}
	var env listEnvelope
	if err := decodeJSON(res.body, &env); err != nil {
		return nil, resp, err
	}
	resp.Info = &env.Info
	return env.Data, resp, nil
}

// ListRecords fetches one page of records.
func (s *CRMService) ListRecords(ctx context.Context, module string, opts *ListOptions) ([]Record, *Response, error) {
	rel, err := segs(module)
	if err != nil {
		return nil, nil, err
	}
	q, err := opts.values()
	if err != nil {
		return nil, nil, err
	}
	var hdr http.Header
	if !opts.ModifiedSince.IsZero() {
		// Zoho wants ISO 8601 here (OAS record.json: format date-time), not an HTTP date.
		hdr = http.Header{"If-Modified-Since": {opts.ModifiedSince.Format(time.RFC3339)}}
	}
	return s.list(ctx, rel, q, hdr)
}

// Records walks every page of a list, switching from page numbers to
// page_token when the next page would cross the 2,000-record wall (G7).
// Stop early by breaking out of the loop.
func (s *CRMService) Records(ctx context.Context, module string, opts *ListOptions) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		o := ListOptions{}
		if opts != nil {
			o = *opts
		}
		if o.PerPage <= 0 {
			o.PerPage = 200
		}
		if o.Page <= 0 && o.PageToken == "" {
			o.Page = 1
		}
		for {
			recs, resp, err := s.ListRecords(ctx, module, &o)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			if resp.Info == nil || !resp.Info.MoreRecords || len(recs) == 0 {
				return
			}
			if o.PageToken == "" && (o.Page+1)*o.PerPage <= discretePagingLimit {
				o.Page++
				continue
			}
			if resp.Info.NextPageToken == "" {
				yield(nil, &Error{API: APICRM, Method: http.MethodGet, Path: module, Code: "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
					Message: "more records exist but Zoho returned no next_page_token"})
				return
			}
			o.PageToken, o.Page = resp.Info.NextPageToken, 0
		}
	}
}

// SearchOptions are the parameters of GET /{module}/search; set exactly one
// of Criteria, Email, Phone, Word.
type SearchOptions struct {
	Criteria, Email, Phone, Word string
	Fields                       []string
	Page, PerPage                int
	Converted, Approved          string
}

// SearchRecords runs a record search (capped by Zoho at 2,000 results).
func (s *CRMService) SearchRecords(ctx context.Context, module string, opts *SearchOptions) ([]Record, *Response, error) {
	rel, err := segs(module, "search")
	if err != nil {
		return nil, nil, err
	}
	if opts == nil || opts.Criteria == "" && opts.Email == "" && opts.Phone == "" && opts.Word == "" {
		return nil, nil, &InputError{Input: "criteria", Reason: "one of criteria, email, phone, word is required"}
	}
	q := url.Values{}
	for k, v := range map[string]string{"criteria": opts.Criteria, "email": opts.Email, "phone": opts.Phone, "word": opts.Word,
		"converted": opts.Converted, "approved": opts.Approved} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(opts.Fields) > 0 {
		q.Set("fields", strings.Join(opts.Fields, ","))
	}
	if opts.Page > 0 {
		q.Set("page", strconv.Itoa(opts.Page))
	}
	if opts.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(opts.PerPage))
	}
	return s.list(ctx, rel, q, nil)
}
