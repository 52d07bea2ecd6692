package zoho_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/testutil"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const oasDir = "zohotest/testdata/crm-oas-v8"

// syncBuffer: a log sink safe for concurrent writers.
type syncBuffer = testutil.SyncBuffer

type env struct {
	s    *zohotest.Server
	c    *zoho.Client
	cfg  zoho.Config
	logs *syncBuffer
}

// fastRetry keeps retry tests quick while exercising the same code path.
func fastRetry() zoho.RetryPolicy {
	return zoho.RetryPolicy{MaxRetries: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
}

func configFor(s *zohotest.Server) zoho.Config {
	cr := s.Credentials()
	return zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		DC: "us", AccountsURL: s.URL(), BooksOrgID: cr.OrgID}
}

// newEnv starts a fake Zoho validating CRM traffic against Zoho's OAS and a
// client pointed at it; at the end it asserts no contract violation.
func newEnv(t testing.TB, fakeOpts []zohotest.Option, opts ...zoho.Option) *env {
	t.Helper()
	s := zohotest.NewServer(append([]zohotest.Option{zohotest.WithOpenAPIValidation(oasDir)}, fakeOpts...)...)
	t.Cleanup(s.Close)
	logs := &syncBuffer{}
	cfg := configFor(s)
	base := []zoho.Option{zoho.WithRetryPolicy(fastRetry()),
		zoho.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	c, err := zoho.NewClient(cfg, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if v := s.ContractViolations(); len(v) > 0 {
			t.Errorf("OpenAPI contract violations:\n%s", strings.Join(v, "\n"))
		}
	})
	return &env{s: s, c: c, cfg: cfg, logs: logs}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func leads(n int, prefix string) []zoho.Record {
	out := make([]zoho.Record, n)
	for i := range out {
		out[i] = zoho.Record{"Last_Name": fmt.Sprintf("%s%04d", prefix, i), "Company": "Zylker", "Email": fmt.Sprintf("%s%d@zylker.test", prefix, i)}
	}
	return out
}

func TestCRMWriteBatchingAndTriggers(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	res, resp, err := e.c.CRM.CreateRecords(ctx, "Leads", leads(250, "batch"), &zoho.WriteOptions{Trigger: zoho.NoTriggers()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 250 || resp == nil {
		t.Fatalf("got %d results", len(res))
	}
	calls := e.s.CallsTo(http.MethodPost, "/crm/v8/Leads")
	if len(calls) != 3 {
		t.Fatalf("want 3 chunked POSTs, got %d", len(calls))
	}
	var first struct {
		Data    []map[string]any `json:"data"`
		Trigger []string         `json:"trigger"`
	}
	if err := json.Unmarshal(calls[0].Body, &first); err != nil || len(first.Data) != 100 || first.Trigger == nil || len(first.Trigger) != 0 {
		t.Fatalf("first chunk: %d records, trigger %v (%v) body %.200s", len(first.Data), first.Trigger, err, calls[0].Body)
	}
	seen := map[string]bool{}
	for i, r := range res {
		if r.Index != i || !r.OK() || r.ID == "" || seen[r.ID] {
			t.Fatalf("result %d = %+v", i, r)
		}
		seen[r.ID] = true
		rec, ok := e.s.CRMRecord("Leads", r.ID)
		if !ok || rec["Last_Name"] != fmt.Sprintf("batch%04d", i) {
			t.Fatalf("record %d stored as %v (%v): results out of input order?", i, rec, ok)
		}
	}

	// nil Trigger omits the key so Zoho runs its automations.
	e.s.ResetCalls()
	if _, _, err := e.c.CRM.CreateRecords(ctx, "Leads", leads(1, "trig"), nil); err != nil {
		t.Fatal(err)
	}
	if b := e.s.CallsTo(http.MethodPost, "/crm/v8/Leads")[0].Body; bytes.Contains(b, []byte(`"trigger"`)) {
		t.Fatalf("nil Trigger sent a trigger key: %s", b)
	}

	// Update one, then bulk, then upsert.
	id := res[0].ID
	up, _, err := e.c.CRM.UpdateRecord(ctx, "Leads", id, zoho.Record{"Company": "Acme"}, &zoho.WriteOptions{Trigger: zoho.NoTriggers()})
	if err != nil || up.ID != id {
		t.Fatalf("UpdateRecord = %+v, %v", up, err)
	}
	if rec, _ := e.s.CRMRecord("Leads", id); rec["Company"] != "Acme" {
		t.Fatalf("update not stored: %v", rec["Company"])
	}
	bulk := []zoho.Record{{"id": res[1].ID, "Company": "B1"}, {"id": res[2].ID, "Company": "B2"}}
	if r, _, err := e.c.CRM.UpdateRecords(ctx, "Leads", bulk, nil); err != nil || len(r) != 2 {
		t.Fatalf("UpdateRecords = %v, %v", r, err)
	}
	if _, _, err := e.c.CRM.UpdateRecords(ctx, "Leads", []zoho.Record{{"Company": "x"}}, nil); err == nil {
		t.Fatal("bulk update without id accepted")
	}
	ups, _, err := e.c.CRM.UpsertRecords(ctx, "Leads", []zoho.Record{{"Last_Name": "U", "Email": "batch3@zylker.test"}, {"Last_Name": "New", "Email": "new@zylker.test"}},
		&zoho.WriteOptions{DuplicateCheckFields: []string{"Email"}, Trigger: zoho.NoTriggers()})
	if err != nil || ups[0].Action != "update" || ups[0].ID != res[3].ID || ups[1].Action != "insert" {
		t.Fatalf("upsert = %+v, %v", ups, err)
	}

	// Get and delete (wf_trigger=false, chunked by 100).
	rec, _, err := e.c.CRM.GetRecord(ctx, "Leads", id, &zoho.GetOptions{Fields: []string{"Last_Name", "Company"}})
	if err != nil || rec["Company"] != "Acme" {
		t.Fatalf("GetRecord = %v, %v", rec, err)
	}
	ids := make([]string, 0, 150)
	for _, r := range res[:150] {
		ids = append(ids, r.ID)
	}
	e.s.ResetCalls()
	f := false
	del, _, err := e.c.CRM.DeleteRecords(ctx, "Leads", ids, &zoho.DeleteOptions{WFTrigger: &f})
	if err != nil || len(del) != 150 || del[149].ID != ids[149] {
		t.Fatalf("DeleteRecords = %d, %v", len(del), err)
	}
	dc := e.s.CallsTo(http.MethodDelete, "/crm/v8/Leads")
	if len(dc) != 2 || dc[0].Query.Get("wf_trigger") != "false" {
		t.Fatalf("delete calls = %d, wf_trigger %q", len(dc), dc[0].Query.Get("wf_trigger"))
	}
	_, _, err = e.c.CRM.GetRecord(ctx, "Leads", id, nil)
	if !zoho.IsNotFound(err) {
		t.Fatalf("GetRecord after delete = %v, want not found", err)
	}
}

func TestCRMBatchRecordErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	recs := leads(5, "err")
	delete(recs[1], "Last_Name")
	delete(recs[3], "Last_Name")
	res, _, err := e.c.CRM.CreateRecords(ctx, "Leads", recs, nil)
	var be *zoho.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 || be.Failed[0].Index != 1 || be.Failed[1].Index != 3 || be.AllFailed() {
		t.Fatalf("err = %v", err)
	}
	if len(res) != 5 || !res[0].OK() || res[1].OK() || res[1].Code != "MANDATORY_NOT_FOUND" || res[4].ID == "" {
		t.Fatalf("results = %+v", res)
	}
	// A chunk where every record fails (Zoho: 400 with data[]) is still per-record.
	bad := []zoho.Record{{"Company": "a"}, {"Company": "b"}}
	res, _, err = e.c.CRM.CreateRecords(ctx, "Leads", bad, nil)
	if !errors.As(err, &be) || !be.AllFailed() || len(res) != 2 || res[1].Index != 1 {
		t.Fatalf("all failed: %v %+v", err, res)
	}
	var ze *zoho.Error
	if errors.As(err, &ze) {
		t.Fatalf("all-failed batch surfaced as request error %v", ze)
	}
	// Request-level failure: unknown module.
	_, _, err = e.c.CRM.CreateRecords(ctx, "NoSuchModule", leads(1, "x"), nil)
	if !errors.As(err, &ze) || ze.Code != "INVALID_MODULE" || ze.API != "crm" {
		t.Fatalf("unknown module: %v", err)
	}
}

func TestRecordsPagingAcross2000(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	for i := range 2300 {
		e.s.CRMInsert("Contacts", map[string]any{"Last_Name": fmt.Sprintf("c%04d", i)})
	}
	e.s.ResetCalls()
	seen := map[string]bool{}
	for rec, err := range e.c.CRM.Records(ctx, "Contacts", &zoho.ListOptions{Fields: []string{"Last_Name"}}) {
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprint(rec["id"])
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
	}
	if len(seen) != 2300 {
		t.Fatalf("walked %d records, want 2300", len(seen))
	}
	calls := e.s.CallsTo(http.MethodGet, "/crm/v8/Contacts")
	if len(calls) != 12 {
		t.Fatalf("want 12 list calls (10 pages + 2 token pages), got %d", len(calls))
	}
	for i, c := range calls {
		page, tok := c.Query.Get("page"), c.Query.Get("page_token")
		if i < 10 && (page != fmt.Sprint(i+1) || tok != "") || i >= 10 && (page != "" || tok == "") {
			t.Fatalf("call %d: page=%q page_token=%q", i, page, tok)
		}
		if c.Query.Get("fields") != "Last_Name" {
			t.Fatalf("call %d without fields", i)
		}
	}
	// Breaking out of the loop stops paging.
	e.s.ResetCalls()
	n := 0
	for _, err := range e.c.CRM.Records(ctx, "Contacts", &zoho.ListOptions{Fields: []string{"Last_Name"}, PerPage: 50}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 60 {
			break
		}
	}
	if got := len(e.s.CallsTo(http.MethodGet, "/crm/v8/Contacts")); got != 2 {
		t.Fatalf("early break made %d calls", got)
	}
	// fields is required and checked before any request.
	e.s.ResetCalls()
	_, _, err := e.c.CRM.ListRecords(ctx, "Contacts", &zoho.ListOptions{})
	var ie *zoho.InputError
	if !errors.As(err, &ie) || len(e.s.Calls()) != 0 {
		t.Fatalf("no fields: %v, %d calls", err, len(e.s.Calls()))
	}
	// Empty module → 204 → no records, no error.
	recs, resp, err := e.c.CRM.ListRecords(ctx, "Vendors", &zoho.ListOptions{Fields: []string{"Vendor_Name"}})
	if err != nil || len(recs) != 0 || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("empty list = %v %v %v", recs, resp, err)
	}
}

func TestModifiedSince304(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	e.s.CRMInsert("Leads", map[string]any{"Last_Name": "old"})
	recs, resp, err := e.c.CRM.ListRecords(ctx, "Leads", &zoho.ListOptions{Fields: []string{"Last_Name"}, ModifiedSince: time.Now().Add(time.Hour)})
	if err != nil || len(recs) != 0 || !resp.NotModified() {
		t.Fatalf("want 304: %v %v %v", recs, resp, err)
	}
	if h := e.s.CallsTo(http.MethodGet, "/crm/v8/Leads")[0].Header.Get("If-Modified-Since"); h == "" {
		t.Fatal("If-Modified-Since not sent")
	}
}

func TestUnauthorizedRefreshesOnce(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id := e.s.CRMInsert("Leads", map[string]any{"Last_Name": "a"})
	if _, _, err := e.c.CRM.GetRecord(ctx, "Leads", id, nil); err != nil {
		t.Fatal(err)
	}
	e.s.ExpireAccessTokens()
	_, resp, err := e.c.CRM.GetRecord(ctx, "Leads", id, nil)
	if err != nil || resp.Attempts != 2 || e.s.TokenRefreshes() != 2 {
		t.Fatalf("after expiry: err %v attempts %d refreshes %d", err, resp.Attempts, e.s.TokenRefreshes())
	}
	// A 401 that persists is retried exactly once, then surfaces as an auth error.
	e.s.Inject(zohotest.Fault{PathPrefix: "/crm/v8/Leads", Status: http.StatusUnauthorized,
		Body: `{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}`})
	e.s.ResetCalls()
	_, _, err = e.c.CRM.GetRecord(ctx, "Leads", id, nil)
	if !zoho.IsAuth(err) || zoho.IsRetryable(err) {
		t.Fatalf("persistent 401: %v", err)
	}
	if n := len(e.s.CallsTo(http.MethodGet, "/crm/v8/Leads")); n != 2 {
		t.Fatalf("persistent 401 made %d calls, want 2", n)
	}
	if n := e.s.TokenRefreshes(); n != 3 {
		t.Fatalf("refreshes = %d, want 3", n)
	}
	// Books signals it with code 57.
	e.s.ClearFaults()
	e.s.ExpireAccessTokens()
	if _, _, err := e.c.Books.ListRecords(ctx, "contacts", nil); err != nil {
		t.Fatalf("books after expiry: %v", err)
	}
}

func TestRateLimitStormRetries(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "d", "Stage": "Qualification"})
	e.s.Inject(zohotest.Fault{Method: http.MethodGet, PathPrefix: "/crm/v8/Deals", Status: http.StatusTooManyRequests, Times: 3})
	rec, resp, err := e.c.CRM.GetRecord(ctx, "Deals", id, nil)
	if err != nil || rec["Deal_Name"] != "d" || resp.Attempts != 4 {
		t.Fatalf("storm: %v attempts %v", err, resp)
	}
	// 5xx, then exhausted retries.
	e.s.Inject(zohotest.Fault{Method: http.MethodGet, PathPrefix: "/crm/v8/Deals", Status: http.StatusTooManyRequests})
	_, _, err = e.c.CRM.GetRecord(ctx, "Deals", id, nil)
	if _, ok := zoho.IsRateLimited(err); !ok || !zoho.IsRetryable(err) {
		t.Fatalf("exhausted: %v", err)
	}
	e.s.ClearFaults()
	// A POST is a create: after a 500 Zoho may have created the record, so
	// the client does not repeat it (the worker's journal decides); after a
	// 429 Zoho certainly did nothing, so it does.
	e.s.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/books/v3/contacts", Status: http.StatusInternalServerError, Times: 2})
	e.s.ResetCalls()
	if _, _, err := e.c.Books.CreateRecord(ctx, "contacts", map[string]any{"contact_name": "Bowman"}, nil); err == nil ||
		!zoho.IsRetryable(err) || len(e.s.CallsTo(http.MethodPost, "/books/v3/contacts")) != 1 {
		t.Fatalf("books POST 500 must fail after one call, retryable by the caller: %v", err)
	}
	e.s.ClearFaults()
	e.s.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/books/v3/contacts", Status: http.StatusTooManyRequests, Times: 2})
	out, resp, err := e.c.Books.CreateRecord(ctx, "contacts", map[string]any{"contact_name": "Bowman"}, nil)
	if err != nil || resp.Attempts != 3 || out["contact"] == nil {
		t.Fatalf("books POST 429s: %v %v", err, resp)
	}
	// 400 is not retried by default.
	e.s.ResetCalls()
	_, _, err = e.c.Books.CreateRecord(ctx, "contacts", map[string]any{}, nil)
	if err == nil || len(e.s.CallsTo(http.MethodPost, "/books/v3/contacts")) != 1 {
		t.Fatalf("400 retried or accepted: %v", err)
	}
}

func TestBooksRateLimitCode44(t *testing.T) {
	// The fake sends no Retry-After with code 44: a constant delay longer
	// than its window gets through.
	e := newEnv(t, []zohotest.Option{zohotest.WithBooksRateLimit(3, 50*time.Millisecond)},
		zoho.WithRetryPolicy(zoho.RetryPolicy{MaxRetries: 6, BaseDelay: 25 * time.Millisecond, Constant: true}))
	ctx := ctxT(t)
	for i := range 8 {
		if _, _, err := e.c.Books.ListRecords(ctx, "contacts", nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestCancellation(t *testing.T) {
	e := newEnv(t, nil)
	id := e.s.CRMInsert("Leads", map[string]any{"Last_Name": "slow"})
	if _, _, err := e.c.CRM.GetRecord(ctxT(t), "Leads", id, nil); err != nil {
		t.Fatal(err)
	}
	e.s.Inject(zohotest.Fault{PathPrefix: "/crm/v8/Leads", Delay: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := e.c.CRM.GetRecord(ctx, "Leads", id, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("cancel: %v after %s", err, time.Since(start))
	}
	if zoho.IsRetryable(err) {
		t.Fatal("ctx error classed retryable")
	}
	// A cancelled context stops a retry loop too.
	e.s.ClearFaults()
	e.s.Inject(zohotest.Fault{PathPrefix: "/crm/v8/Leads", Status: 503})
	slow, err := zoho.NewClient(e.cfg, zoho.WithRetryPolicy(zoho.RetryPolicy{MaxRetries: 10, BaseDelay: time.Second, Constant: true}))
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start = time.Now()
	_, _, err = slow.CRM.GetRecord(ctx2, "Leads", id, nil)
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("retry loop not stopped: %v after %s", err, time.Since(start))
	}
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	e := newEnv(t, []zohotest.Option{zohotest.WithLatency(5 * time.Millisecond)})
	ctx := ctxT(t)
	id := e.s.CRMInsert("Leads", map[string]any{"Last_Name": "c"})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, _, err := e.c.CRM.GetRecord(ctx, "Leads", id, nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.s.TokenRefreshes(); n != 1 {
		t.Fatalf("%d refreshes for 32 concurrent callers, want 1", n)
	}
	// 32 callers hitting a rejected token still refresh once.
	e.s.ExpireAccessTokens()
	var wg2 sync.WaitGroup
	for range 32 {
		wg2.Go(func() {
			if _, _, err := e.c.CRM.GetRecord(ctx, "Leads", id, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg2.Wait()
	if n := e.s.TokenRefreshes(); n != 2 {
		t.Fatalf("%d refreshes after invalidation, want 2", n)
	}
}

func TestRefresherMarginAndErrors(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := zohotest.NewServer(zohotest.WithClock(clock), zohotest.WithTokenTTL(time.Hour), zohotest.WithRefreshLimit(1, 10*time.Minute))
	defer s.Close()
	ctx := ctxT(t)
	r := zoho.NewRefresher(configFor(s), nil, &zoho.RefresherOptions{Now: clock, Margin: 5 * time.Minute})
	t1, err := r.Token(ctx)
	if err != nil || t1.APIDomain != s.URL() || !t1.Expiry.Equal(now.Add(time.Hour)) {
		t.Fatalf("token = %v, %v", t1, err)
	}
	if strings.Contains(t1.String(), t1.AccessToken) || strings.Contains(fmt.Sprint(*t1), t1.AccessToken) {
		t.Fatal("Token prints its secret")
	}
	advance(54 * time.Minute)
	if t2, _ := r.Token(ctx); t2.AccessToken != t1.AccessToken {
		t.Fatal("refreshed before the margin")
	}
	advance(2 * time.Minute) // 4 min before expiry: inside the margin
	t3, err := r.Token(ctx)
	if err != nil || t3.AccessToken == t1.AccessToken || s.TokenRefreshes() != 2 {
		t.Fatalf("margin refresh: %v refreshes %d", err, s.TokenRefreshes())
	}
	// Invalidate of a stale token is a no-op; of the current one forces a refresh.
	r.Invalidate(ctx, t1.AccessToken)
	if t4, _ := r.Token(ctx); t4.AccessToken != t3.AccessToken {
		t.Fatal("stale Invalidate dropped the current token")
	}
	// Throttled (1 per 10 min; the 10:00 mint left the window, the 10:56 one
	// did not): the refresh fails with Access Denied.
	r.Invalidate(ctx, t3.AccessToken)
	_, err = r.Token(ctx)
	var te *zoho.TokenError
	if !errors.As(err, &te) || !te.Throttled() || !zoho.IsRetryable(err) || zoho.IsAuth(err) {
		t.Fatalf("throttle: %v", err)
	}
	if _, ok := zoho.IsRateLimited(err); !ok {
		t.Fatal("throttle not rate-limited")
	}
	// Wrong secret: permanent, and the secret is not in the message.
	bad := configFor(s)
	bad.ClientSecret = "definitely-wrong-secret"
	_, err = zoho.NewRefresher(bad, nil, nil).Token(ctx)
	if !errors.As(err, &te) || te.Code != "invalid_client_secret" || !zoho.IsAuth(err) || strings.Contains(err.Error(), "definitely-wrong") {
		t.Fatalf("bad secret: %v", err)
	}
	// Revoked refresh token → invalid_code.
	if err := zoho.NewOAuth(configFor(s), nil).Revoke(ctx, s.Credentials().RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err = zoho.NewRefresher(configFor(s), nil, nil).Token(ctx)
	if !errors.As(err, &te) || te.Code != "invalid_code" || !te.Permanent() {
		t.Fatalf("revoked: %v", err)
	}
}

func TestRawRequests(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id := e.s.CRMInsert("Leads", map[string]any{"Last_Name": "raw"})
	e.s.ResetCalls()
	bad := []string{"https://evil.example/crm/v8/Leads", "//evil.example/x", "../../oauth/v2/token", "Leads/%2e%2e/%2e%2e/oauth",
		"/crm/v8/../../oauth/v2/token", "http:evil", `Leads\..\x`, "Leads?fields=x"}
	for _, p := range bad {
		_, _, err := e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: p})
		var pe *zoho.PathError
		if !errors.As(err, &pe) {
			t.Errorf("path %q: %v", p, err)
		}
		_, _, err = e.c.Books.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: p})
		if !errors.As(err, &pe) {
			t.Errorf("books path %q: %v", p, err)
		}
	}
	if calls := e.s.Calls(); len(calls) != 0 {
		t.Fatalf("refused paths still reached the fake: %d calls (first %s %s)", len(calls), calls[0].Method, calls[0].Path)
	}
	out, resp, err := e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "Leads/" + id, Query: map[string][]string{"fields": {"Last_Name"}}})
	if err != nil || out.Status != 200 || resp.StatusCode != 200 {
		t.Fatalf("raw get: %v %v", out, err)
	}
	data := out.Body.(map[string]any)["data"].([]any)
	if data[0].(map[string]any)["Last_Name"] != "raw" {
		t.Fatalf("raw body = %v", out.Body)
	}
	// The base path itself is accepted once.
	if out, _, err := e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "/crm/v8/Leads/" + id, ResponseType: zoho.ResponseText}); err != nil || !strings.Contains(out.Body.(string), `"raw"`) {
		t.Fatalf("raw text: %v %v", out, err)
	}
	// Errors come back with the decoded body and a typed error.
	out, _, err = e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "Leads"})
	var ze *zoho.Error
	if !errors.As(err, &ze) || ze.Code != "REQUIRED_PARAM_MISSING" || out.Status != 400 {
		t.Fatalf("raw error: %v %v", out, err)
	}
	// Per-request retry policy: RetryAllErrors retries a 400.
	e.s.ResetCalls()
	_, _, err = e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "Leads", Retry: &zoho.RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, RetryAllErrors: true}})
	if err == nil || len(e.s.CallsTo("GET", "/crm/v8/Leads")) != 3 {
		t.Fatalf("retry_all_errors: %v, %d calls", err, len(e.s.CallsTo("GET", "/crm/v8/Leads")))
	}
	// Timeout per attempt.
	e.s.Inject(zohotest.Fault{PathPrefix: "/crm/v8/Leads/" + id, Delay: time.Second})
	start := time.Now()
	_, _, err = e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "Leads/" + id, Timeout: 30 * time.Millisecond, Retry: &zoho.RetryPolicy{}})
	if err == nil || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("timeout: %v after %s", err, time.Since(start))
	}
	e.s.ClearFaults()
	// Books raw: organization_id added, JSON body.
	out, _, err = e.c.Books.Raw(ctx, &zoho.RawRequest{Method: "POST", Path: "contacts", JSON: map[string]any{"contact_name": "Raw Co"}})
	if err != nil || out.Status != 201 {
		t.Fatalf("books raw: %v %v", out, err)
	}
	if c := e.s.CallsTo("POST", "/books/v3/contacts"); c[len(c)-1].Query.Get("organization_id") != e.cfg.BooksOrgID {
		t.Fatal("organization_id missing")
	}
	if _, _, err := e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "Leads", Headers: http.Header{"Authorization": {"x"}}}); err == nil {
		t.Fatal("Authorization header override accepted")
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	e := newEnv(t, nil, zoho.WithDebug(true))
	ctx := ctxT(t)
	id := e.s.CRMInsert("Leads", map[string]any{"Last_Name": "s"})
	var errs []string
	_, _, err := e.c.CRM.GetRecord(ctx, "Leads", id, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.s.ExpireAccessTokens()
	if _, _, err := e.c.CRM.CreateRecords(ctx, "Leads", leads(2, "s"), nil); err != nil {
		t.Fatal(err)
	}
	e.s.Inject(zohotest.Fault{PathPrefix: "/crm/v8/Leads", Status: 500, Times: 10})
	_, _, err = e.c.CRM.GetRecord(ctx, "Leads", id, nil)
	errs = append(errs, err.Error())
	_, _, err = e.c.CRM.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "https://evil/x?token=abc"})
	errs = append(errs, err.Error())
	bad := e.cfg
	bad.ClientSecret = "wrong-secret-123456"
	bc, _ := zoho.NewClient(bad, zoho.WithRetryPolicy(zoho.RetryPolicy{}))
	_, _, err = bc.CRM.GetRecord(ctx, "Leads", id, nil)
	errs = append(errs, err.Error())
	tok, err := e.c.TokenSource().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "zoho request") || !strings.Contains(logs, "[REDACTED]") {
		t.Fatalf("debug logs missing: %.300s", logs)
	}
	for _, secret := range []string{tok.AccessToken, e.cfg.RefreshToken, e.cfg.ClientSecret, "wrong-secret-123456", "Zoho-oauthtoken 1000."} {
		if strings.Contains(logs, secret) {
			t.Errorf("secret %.12s… in logs", secret)
		}
		for _, es := range errs {
			if strings.Contains(es, secret) {
				t.Errorf("secret %.12s… in error %q", secret, es)
			}
		}
	}
	if s := fmt.Sprint(e.c.Config()); strings.Contains(s, e.cfg.ClientSecret) || strings.Contains(s, e.cfg.RefreshToken) {
		t.Error("Config prints secrets")
	}
}
