package zoho

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Values of DeletedListOptions.Type (GET /{module}/deleted "type").
const (
	// DeletedAll lists both kinds (Zoho's default).
	DeletedAll = "all"
	// DeletedRecycle lists records in the recycle bin (kept there 60 days).
	DeletedRecycle = "recycle"
	// DeletedPermanent lists permanently deleted records (listed 120 days).
	DeletedPermanent = "permanent"
)

// MinUser is the {name, id} user object of Zoho answers.
type MinUser struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// DeletedRecord is an entry of a module's deleted-records list. Permanent
// entries may carry no display name and no users (Zoho sends null).
type DeletedRecord struct {
	ID          string
	DisplayName string
	// Type is DeletedRecycle or DeletedPermanent.
	Type      string
	DeletedBy *MinUser
	CreatedBy *MinUser
	// DeletedTime is deleted_time (one-second resolution); zero when Zoho
	// sent none or an unreadable one (RawDeletedTime keeps what it sent).
	DeletedTime    time.Time
	RawDeletedTime string
}

// deletedWire is one entry as Zoho sends it. The v2 docs' sample spells
// "Created_By", the v7/v8 docs and OAS "created_by": both are read.
type deletedWire struct {
	ID          any      `json:"id"`
	DisplayName *string  `json:"display_name"`
	Type        string   `json:"type"`
	DeletedBy   *userRaw `json:"deleted_by"`
	CreatedBy   *userRaw `json:"created_by"`
	CreatedByV2 *userRaw `json:"Created_By"`
	DeletedTime string   `json:"deleted_time"`
}

type userRaw struct {
	Name string `json:"name"`
	ID   any    `json:"id"`
}

func (u *userRaw) user() *MinUser {
	if u == nil {
		return nil
	}
	return &MinUser{Name: u.Name, ID: idString(u.ID)}
}

func (w deletedWire) record() DeletedRecord {
	d := DeletedRecord{ID: idString(w.ID), Type: w.Type, DeletedBy: w.DeletedBy.user(), CreatedBy: w.CreatedBy.user(),
		RawDeletedTime: w.DeletedTime}
	if d.CreatedBy == nil {
		d.CreatedBy = w.CreatedByV2.user()
	}
	if w.DisplayName != nil {
		d.DisplayName = *w.DisplayName
	}
	// Lenient: one odd entry must not hide the others from the caller, who
	// decides what a zero DeletedTime means.
	d.DeletedTime, _ = time.Parse(time.RFC3339, w.DeletedTime)
	return d
}

// DeletedListOptions are the parameters of GET /{module}/deleted.
type DeletedListOptions struct {
	// Type: DeletedAll (also ""), DeletedRecycle or DeletedPermanent.
	Type string
	// Since sends If-Modified-Since: only deletions after it are listed.
	Since time.Time
	// Page (default 1) and PerPage (default and max 200).
	Page, PerPage int
}

func (o *DeletedListOptions) request() (url.Values, http.Header, error) {
	q := url.Values{}
	if o == nil {
		return q, nil, nil
	}
	if o.Type != "" && !slices.Contains([]string{DeletedAll, DeletedRecycle, DeletedPermanent}, o.Type) {
		return nil, nil, &InputError{Input: "type", Reason: "must be all, recycle or permanent"}
	}
	if o.PerPage < 0 || o.PerPage > 200 || o.Page < 0 {
		return nil, nil, &InputError{Input: "per_page", Reason: "page must be positive and per_page 1..200"}
	}
	if o.Type != "" {
		q.Set("type", o.Type)
	}
	if o.Page > 0 {
		q.Set("page", strconv.Itoa(o.Page))
	}
	if o.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(o.PerPage))
	}
	var hdr http.Header
	if !o.Since.IsZero() {
		// Same format as ListOptions.ModifiedSince: ISO 8601 (OAS: date-time).
		hdr = http.Header{"If-Modified-Since": {o.Since.Format(time.RFC3339)}}
	}
	return q, hdr, nil
}

// ListDeleted fetches one page of a module's deleted records. Nothing to
// list (204, or 304 to If-Modified-Since) is no records and no error;
// Response.Info carries the paging (more_records).
func (s *CRMService) ListDeleted(ctx context.Context, module string, opts *DeletedListOptions) ([]DeletedRecord, *Response, error) {
	rel, err := segs(module, "deleted")
	if err != nil {
		return nil, nil, err
	}
	q, hdr, err := opts.request()
	if err != nil {
		return nil, nil, err
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodGet, path: rel, query: q, header: hdr})
	if err != nil {
		return nil, res.response(), err
	}
	resp := res.response()
	if res.status == http.StatusNoContent || res.status == http.StatusNotModified {
		resp.Info = &PageInfo{}
		return nil, resp, nil
	}
	var env struct {
		Data []deletedWire `json:"data"`
		Info PageInfo      `json:"info"`
	}
	if err := decodeJSON(res.body, &env); err != nil {
		return nil, resp, err
	}
	resp.Info = &env.Info
	out := make([]DeletedRecord, len(env.Data))
	for i, w := range env.Data {
		out[i] = w.record()
	}
	return out, resp, nil
}

// DeletedRecords walks every page of a module's deleted records from
// opts.Page (default 1, 200 per page). Zoho documents page numbers only for
// this list (no page_token in the v8 OAS). Zoho does not document an order:
// callers must not assume one. Stop early by breaking out of the loop.
func (s *CRMService) DeletedRecords(ctx context.Context, module string, opts *DeletedListOptions) iter.Seq2[DeletedRecord, error] {
	o := DeletedListOptions{}
	if opts != nil {
		o = *opts
	}
	if o.PerPage <= 0 {
		o.PerPage = 200
	}
	return numberedPages(max(o.Page, 1), func(page int) ([]DeletedRecord, bool, error) {
		o.Page = page
		recs, resp, err := s.ListDeleted(ctx, module, &o)
		if err != nil {
			return nil, false, err
		}
		return recs, resp.Info != nil && resp.Info.MoreRecords, nil
	})
}
