package zoho

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// BooksService is the Zoho Books v3 API. Every call carries organization_id
// (BooksOptions.OrgID, default Config.BooksOrgID).
type BooksService struct{ c *Client }

// BooksOptions are common to all Books calls.
type BooksOptions struct {
	// OrgID overrides Config.BooksOrgID.
	OrgID string
	// ParentType/ParentID address a child collection: ParentType "invoices",
	// ParentID "123", entity "comments" → /invoices/123/comments.
	ParentType, ParentID string
	// Query holds extra query parameters (e.g. send=true, ignore_auto_number_generation).
	Query url.Values
}

// BooksListOptions tunes ListRecords/Records.
type BooksListOptions struct {
	BooksOptions
	// Page (default 1) and PerPage (default and max 200).
	Page, PerPage int
	// Filters are the entity's search parameters (status, customer_id, date_start, search_text, ...).
	Filters url.Values
}

func (s *BooksService) orgID(o *BooksOptions) (string, error) {
	id := s.c.cfg.BooksOrgID
	if o != nil && o.OrgID != "" {
		id = o.OrgID
	}
	if id == "" {
		return "", &InputError{Input: "organization_id", Reason: "Books needs an organization id: set " + EnvBooksOrgID + " or pass it"}
	}
	return id, nil
}

// entityPath builds [parent_type/parent_id/]entity[/id]; entity may have
// several segments ("settings/taxes") but no escapes.
func entityPath(entity, id string, o *BooksOptions) (string, error) {
	if entity == "" {
		return "", &InputError{Input: "entity", Reason: "required"}
	}
	var parts []string
	if o != nil && (o.ParentType != "" || o.ParentID != "") {
		if o.ParentType == "" || o.ParentID == "" {
			return "", &InputError{Input: "parent_type", Reason: "parent_type and parent_id go together"}
		}
		parts = append(parts, o.ParentType, o.ParentID)
	}
	parts = append(parts, strings.Split(strings.Trim(entity, "/"), "/")...)
	if id != "" {
		parts = append(parts, id)
	}
	return segs(parts...)
}

// pluralKey is the response key of a list: the last segment of the entity path.
func pluralKey(entity string) string {
	e := strings.Trim(entity, "/")
	if i := strings.LastIndex(e, "/"); i >= 0 {
		e = e[i+1:]
	}
	return e
}

func (s *BooksService) call(ctx context.Context, method, entity, id string, data map[string]any, o *BooksOptions, extra url.Values) (map[string]any, *Response, error) {
	rel, err := entityPath(entity, id, o)
	if err != nil {
		return nil, nil, err
	}
	org, err := s.orgID(o)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	if o != nil {
		for k, v := range o.Query {
			q[k] = v
		}
	}
	for k, v := range extra {
		q[k] = v
	}
	q.Set("organization_id", org)
	r := &request{api: APIBooks, method: method, path: rel, query: q}
	if data != nil {
		if r.body, err = jsonBody(data); err != nil {
			return nil, nil, err
		}
		r.contentType = "application/json"
	}
	res, err := s.c.do(ctx, r)
	if err != nil {
		return nil, res.response(), err
	}
	resp := res.response()
	var out map[string]any
	if err := decodeJSON(res.body, &out); err != nil {
		return nil, resp, err
	}
	if out == nil {
		out = map[string]any{}
	}
	// Books may report failure inside a 2xx: code != 0 is an error (§8.2).
	if c := codeString(out["code"]); c != "" && c != "0" {
		return out, resp, &Error{API: APIBooks, Method: method, Path: rel, HTTPStatus: res.status, Code: c, Message: str(out["message"])}
	}
	if pc, ok := out["page_context"].(map[string]any); ok {
		resp.PageContext = &PageContext{Page: intOf(pc["page"]), PerPage: intOf(pc["per_page"]), HasMorePage: pc["has_more_page"] == true,
			ReportName: str(pc["report_name"]), AppliedFilter: str(pc["applied_filter"]), SortColumn: str(pc["sort_column"]), SortOrder: str(pc["sort_order"])}
	}
	return out, resp, nil
}

func intOf(v any) int {
	switch x := v.(type) {
	case fmt.Stringer:
		n, _ := strconv.ParseFloat(x.String(), 64)
		return int(n)
	case float64:
		return int(x)
	case int:
		return x
	}
	return 0
}

// CreateRecord POSTs data to /{entity}; the whole decoded answer is returned
// (e.g. out["invoice"].(map[string]any)["invoice_number"]).
func (s *BooksService) CreateRecord(ctx context.Context, entity string, data map[string]any, o *BooksOptions) (map[string]any, *Response, error) {
	if data == nil {
		data = map[string]any{}
	}
	return s.call(ctx, http.MethodPost, entity, "", data, o, nil)
}

// GetRecord GETs /{entity}/{id}; a missing record matches IsNotFound.
func (s *BooksService) GetRecord(ctx context.Context, entity, id string, o *BooksOptions) (map[string]any, *Response, error) {
	if id == "" {
		return nil, nil, &InputError{Input: "id", Reason: "required"}
	}
	return s.call(ctx, http.MethodGet, entity, id, nil, o, nil)
}

// UpdateRecord PUTs data to /{entity}/{id}.
func (s *BooksService) UpdateRecord(ctx context.Context, entity, id string, data map[string]any, o *BooksOptions) (map[string]any, *Response, error) {
	if id == "" {
		return nil, nil, &InputError{Input: "id", Reason: "required"}
	}
	if data == nil {
		data = map[string]any{}
	}
	return s.call(ctx, http.MethodPut, entity, id, data, o, nil)
}

// DeleteRecord DELETEs /{entity}/{id}.
func (s *BooksService) DeleteRecord(ctx context.Context, entity, id string, o *BooksOptions) (map[string]any, *Response, error) {
	if id == "" {
		return nil, nil, &InputError{Input: "id", Reason: "required"}
	}
	return s.call(ctx, http.MethodDelete, entity, id, nil, o, nil)
}

// ListRecords GETs one page of /{entity}; items are under the plural key
// (out["invoices"]) and paging in Response.PageContext.
func (s *BooksService) ListRecords(ctx context.Context, entity string, o *BooksListOptions) (map[string]any, *Response, error) {
	q := url.Values{}
	var bo *BooksOptions
	if o != nil {
		bo = &o.BooksOptions
		for k, v := range o.Filters {
			q[k] = v
		}
		if o.Page > 0 {
			q.Set("page", strconv.Itoa(o.Page))
		}
		if o.PerPage > 0 {
			q.Set("per_page", strconv.Itoa(o.PerPage))
		}
	}
	return s.call(ctx, http.MethodGet, entity, "", nil, bo, q)
}

// Records walks all pages of /{entity} while page_context.has_more_page.
func (s *BooksService) Records(ctx context.Context, entity string, o *BooksListOptions) iter.Seq2[map[string]any, error] {
	var lo BooksListOptions
	if o != nil {
		lo = *o
	}
	if lo.PerPage <= 0 {
		lo.PerPage = 200
	}
	key := pluralKey(entity)
	return numberedPages(max(lo.Page, 1), func(page int) ([]map[string]any, bool, error) {
		lo.Page = page
		out, resp, err := s.ListRecords(ctx, entity, &lo)
		if err != nil {
			return nil, false, err
		}
		raw, _ := out[key].([]any)
		items := make([]map[string]any, len(raw))
		for i, it := range raw {
			items[i], _ = it.(map[string]any)
		}
		return items, resp.PageContext != nil && resp.PageContext.HasMorePage, nil
	})
}

// numberedPages yields the items of page first, first+1, … while fetch
// says more follow (and a page is not empty: a list that claims more but
// returns nothing would loop forever).
func numberedPages[T any](first int, fetch func(page int) (items []T, more bool, err error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for page := first; ; page++ {
			items, more, err := fetch(page)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if !more || len(items) == 0 {
				return
			}
		}
	}
}
