package zoho_test

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestDeletedRecordsPagesAndSince deletes records through the API and out of
// band, then lists them one page at a time, across every page, and since a
// time, against the fake validating Zoho's OAS.
func TestDeletedRecordsPagesAndSince(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 11, 17, 10, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))}
	e := newEnv(t, []zohotest.Option{zohotest.WithClock(clk.Now)})
	ctx := ctxT(t)
	res, _, err := e.c.CRM.CreateRecords(ctx, "Leads", leads(450, "del"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	if _, _, err := e.c.CRM.DeleteRecords(ctx, "Leads", ids[:449], nil); err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	clk.Add(5 * time.Second)
	if !e.s.CRMDelete("Leads", ids[449]) {
		t.Fatal("out-of-band delete failed")
	}

	// One page.
	page, resp, err := e.c.CRM.ListDeleted(ctx, "Leads", &zoho.DeletedListOptions{PerPage: 200})
	if err != nil || len(page) != 200 || resp.Info == nil || !resp.Info.MoreRecords || resp.StatusCode != 200 {
		t.Fatalf("page 1: %d records, %+v, %v", len(page), resp, err)
	}
	last := page[0] // newest first in the fake
	if last.ID != ids[449] || last.Type != zoho.DeletedRecycle || last.DisplayName != "del0449" || !last.DeletedTime.Equal(clk.Now()) ||
		last.DeletedBy == nil || last.DeletedBy.ID == "" || last.CreatedBy == nil || last.RawDeletedTime == "" {
		t.Fatalf("entry %+v", last)
	}

	// Every page.
	e.s.ResetCalls()
	var got []string
	for d, err := range e.c.CRM.DeletedRecords(ctx, "Leads", nil) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.ID)
	}
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("walked %d ids, want the %d deleted", len(got), len(want))
	}
	var pages []string
	for _, c := range e.s.CallsTo(http.MethodGet, "/crm/v8/Leads/deleted") {
		pages = append(pages, c.Query.Get("page")+"/"+c.Query.Get("per_page"))
	}
	if !slices.Equal(pages, []string{"1/200", "2/200", "3/200"}) {
		t.Fatalf("pages requested %v", pages)
	}

	// Since: If-Modified-Since in ISO 8601, strictly after.
	e.s.ResetCalls()
	got = got[:0]
	for d, err := range e.c.CRM.DeletedRecords(ctx, "Leads", &zoho.DeletedListOptions{Since: t0, Type: zoho.DeletedRecycle}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.ID)
	}
	calls := e.s.CallsTo(http.MethodGet, "/crm/v8/Leads/deleted")
	if !slices.Equal(got, []string{ids[449]}) || len(calls) != 1 || calls[0].Header.Get("If-Modified-Since") != t0.Format(time.RFC3339) ||
		calls[0].Query.Get("type") != "recycle" {
		t.Fatalf("since t0: %v; calls %+v", got, calls)
	}

	// Nothing to list: no records, no error.
	recs, resp, err := e.c.CRM.ListDeleted(ctx, "Leads", &zoho.DeletedListOptions{Type: zoho.DeletedPermanent})
	if err != nil || len(recs) != 0 || resp.StatusCode != http.StatusNoContent || resp.Info == nil || resp.Info.MoreRecords {
		t.Fatalf("empty: %v %+v %v", recs, resp, err)
	}

	// Bad arguments are refused before any request.
	e.s.ResetCalls()
	var ie *zoho.InputError
	if _, _, err := e.c.CRM.ListDeleted(ctx, "Leads", &zoho.DeletedListOptions{Type: "trash"}); !errors.As(err, &ie) {
		t.Fatalf("bad type: %v", err)
	}
	if _, _, err := e.c.CRM.ListDeleted(ctx, "Leads", &zoho.DeletedListOptions{PerPage: 201}); !errors.As(err, &ie) {
		t.Fatalf("per_page 201: %v", err)
	}
	var pe *zoho.PathError
	if _, _, err := e.c.CRM.ListDeleted(ctx, "Le/ads", nil); !errors.As(err, &pe) {
		t.Fatalf("bad module: %v", err)
	}
	if n := len(e.s.Calls()); n != 0 {
		t.Fatalf("%d requests sent for bad arguments", n)
	}
}

// TestDeletedRecordsDocsSample decodes the answer shape of Zoho's docs
// (null name and users for permanent entries, v2's "Created_By"), which the
// v8 OAS does not allow, so the fake serves it without contract checks.
func TestDeletedRecordsDocsSample(t *testing.T) {
	s := zohotest.NewServer()
	t.Cleanup(s.Close)
	c, err := zoho.NewClient(configFor(s), zoho.WithRetryPolicy(fastRetry()))
	if err != nil {
		t.Fatal(err)
	}
	s.Inject(zohotest.Fault{Method: "GET", PathPrefix: "/crm/v8/Leads/deleted", Status: 200, Times: 1, Body: `{"data":[
		{"deleted_by":{"name":"Patricia Boyle","id":"410888000000086001"},"id":"410888000000099071","display_name":"Patricia",
		 "type":"recycle","Created_By":{"name":"Patricia Boyle","id":410888000000086001},"deleted_time":"2015-06-19T11:19:38+05:30"},
		{"deleted_by":null,"id":"410888000000680013","display_name":null,"type":"permanent","created_by":null,
		 "deleted_time":"2016-10-26T11:44:15+05:30"},
		{"id":410888000000680009,"type":"permanent","deleted_time":"yesterday"}],
		"info":{"per_page":200,"count":3,"page":1,"more_records":false}}`})
	recs, resp, err := c.CRM.ListDeleted(ctxT(t), "Leads", nil)
	if err != nil || len(recs) != 3 || resp.Info.Count != 3 || resp.Info.MoreRecords {
		t.Fatalf("%+v %+v %v", recs, resp, err)
	}
	ist := time.FixedZone("", 5*3600+1800)
	if r := recs[0]; r.CreatedBy == nil || r.CreatedBy.ID != "410888000000086001" || r.DeletedBy.Name != "Patricia Boyle" ||
		!r.DeletedTime.Equal(time.Date(2015, 6, 19, 11, 19, 38, 0, ist)) {
		t.Fatalf("recycle entry %+v", r)
	}
	if r := recs[1]; r.DeletedBy != nil || r.CreatedBy != nil || r.DisplayName != "" || r.Type != zoho.DeletedPermanent {
		t.Fatalf("permanent entry %+v", r)
	}
	if r := recs[2]; r.ID != "410888000000680009" || !r.DeletedTime.IsZero() || r.RawDeletedTime != "yesterday" {
		t.Fatalf("odd entry %+v", r)
	}
}
