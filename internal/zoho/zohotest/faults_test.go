package zohotest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	c := newClient(t)
	org := c.s.Credentials().OrgID
	tests := []struct {
		name     string
		fault    Fault
		method   string
		path     string
		want     int
		bodyHas  string
		retryHdr string
	}{
		{"crm 429 default body", Fault{PathPrefix: "/crm/v8/Deals", Status: 429, Times: 1}, "GET", "/crm/v8/Deals/1", 429, `"TOO_MANY_REQUESTS"`, ""},
		{"crm 500", Fault{Method: "GET", PathPrefix: "/crm/v8/", Status: 500, Times: 1}, "GET", "/crm/v8/Deals/1", 500, `"INTERNAL_ERROR"`, ""},
		{"books 429 with retry-after", Fault{PathPrefix: "/books/v3/invoices", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 1}, "GET", "/books/v3/invoices?organization_id=" + org, 429, `"code":44`, "2"},
		{"books 503", Fault{PathPrefix: "/books/v3/", Status: 503, Times: 1}, "GET", "/books/v3/invoices?organization_id=" + org, 503, `"code":1000`, ""},
		{"custom body", Fault{PathPrefix: "/crm/v8/Leads", Status: 400, Body: `{"x":1}`, Times: 1}, "GET", "/crm/v8/Leads/1", 400, `{"x":1}`, ""},
		{"token endpoint", Fault{PathPrefix: "/oauth/v2/token", Status: 429, Times: 1}, "POST", "/oauth/v2/token", 429, `"Access Denied"`, ""},
		{"method mismatch serves normally", Fault{Method: "POST", PathPrefix: "/crm/v8/Leads", Status: 500, Times: 1}, "GET", "/crm/v8/Leads/1", 204, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.s.ClearFaults()
			c.s.Inject(tt.fault)
			resp, b := c.raw(tt.method, tt.path, nil)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.bodyHas) || resp.Header.Get("Retry-After") != tt.retryHdr {
				t.Fatalf("%d %q retry-after %q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
			}
		})
	}
	// Times: applies to exactly n requests; 0 = until cleared.
	c.s.ClearFaults()
	c.s.Inject(Fault{PathPrefix: "/crm/v8/Deals", Status: 503, Times: 2})
	var got []int
	for range 3 {
		st, _ := c.do("GET", "/crm/v8/Deals/1", nil)
		got = append(got, st)
	}
	if got[0] != 503 || got[1] != 503 || got[2] != 204 {
		t.Fatalf("times: %v", got)
	}
	c.s.Inject(Fault{PathPrefix: "/crm/v8/Deals", Status: 503})
	for range 3 {
		if st, _ := c.do("GET", "/crm/v8/Deals/1", nil); st != 503 {
			t.Fatalf("unlimited fault: %d", st)
		}
	}
	c.s.ClearFaults()
	if st, _ := c.do("GET", "/crm/v8/Deals/1", nil); st != 204 {
		t.Fatalf("after clear: %d", st)
	}
}

func TestFaultDelayTimesOutClient(t *testing.T) {
	c := newClient(t)
	c.s.Inject(Fault{PathPrefix: "/crm/v8/Deals", Delay: 2 * time.Second, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.s.URL()+"/crm/v8/Deals/1", nil)
	req.Header.Set("Authorization", "Zoho-oauthtoken "+c.tok)
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	// Delay with Status 0 then serves normally.
	c.s.Inject(Fault{PathPrefix: "/crm/v8/Deals", Delay: 10 * time.Millisecond, Times: 1})
	if st, _ := c.do("GET", "/crm/v8/Deals/1", nil); st != 204 {
		t.Fatalf("delayed: %d", st)
	}
}

func TestRateLimits(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now), WithCRMRateLimit(3, time.Minute), WithBooksRateLimit(2, time.Minute))
	org := c.s.Credentials().OrgID
	var crm, books []int
	for range 4 {
		st, _ := c.do("GET", "/crm/v8/Leads/1", nil)
		crm = append(crm, st)
		st, body := c.do("GET", "/books/v3/contacts?organization_id="+org, nil)
		books = append(books, st)
		if st == 429 && body["code"] != 44.0 {
			t.Fatalf("books 429 body %v", body)
		}
	}
	if crm[2] != 204 || crm[3] != 429 || books[1] != 200 || books[2] != 429 {
		t.Fatalf("crm %v books %v", crm, books)
	}
	clk.Advance(time.Minute)
	if st, _ := c.do("GET", "/crm/v8/Leads/1", nil); st != 204 {
		t.Fatalf("after window: %d", st)
	}
}

func TestCallRecording(t *testing.T) {
	c := newClient(t)
	c.ResetCallsForTest()
	c.do("POST", "/crm/v8/Leads", map[string]any{"data": []any{map[string]any{"Last_Name": "x"}}, "trigger": []any{"workflow"}})
	c.do("GET", "/crm/v8/Leads?fields=Last_Name", nil, "X-Test", "1")
	c.do("GET", "/books/v3/items?organization_id=nope", nil)
	calls := c.s.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls", len(calls))
	}
	if calls[0].Method != "POST" || calls[0].Status != 201 || !strings.Contains(string(calls[0].Body), `"trigger":["workflow"]`) {
		t.Fatalf("call 0 %+v", calls[0])
	}
	if calls[1].Query.Get("fields") != "Last_Name" || calls[1].Header.Get("X-Test") != "1" || calls[1].At.IsZero() {
		t.Fatalf("call 1 %+v", calls[1])
	}
	if got := c.s.CallsTo("GET", "/books/"); len(got) != 1 || got[0].Status != 400 {
		t.Fatalf("CallsTo %+v", got)
	}
	c.s.ResetCalls()
	if len(c.s.Calls()) != 0 {
		t.Fatal("ResetCalls")
	}
}

func (c *client) ResetCallsForTest() { c.s.ResetCalls() }

func TestLatency(t *testing.T) {
	c := newClient(t, WithLatency(20*time.Millisecond))
	start := time.Now()
	c.do("GET", "/crm/v8/Leads/1", nil)
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("latency not applied")
	}
}

func TestSeedDemo(t *testing.T) {
	c := newClient(t)
	d := c.s.SeedDemo()
	st, body := c.do("GET", "/crm/v8/Deals/"+DemoDealID, nil)
	deal := dataItems(t, body)[0]
	if st != 200 || d.DealID != DemoDealID || deal["Deal_Name"] != "Bowman & Co – Annual licence" || deal["Stage"] != "Closed Won" ||
		deal["Amount"] != 1200.0 || deal["Account_Name"].(map[string]any)["id"] != d.AccountID || deal["Contact_Name"].(map[string]any)["id"] != d.ContactID {
		t.Fatalf("deal %v", deal)
	}
	if st, _ := c.do("GET", "/crm/v8/Leads/"+DemoLeadID, nil); st != 200 || d.LeadID != DemoLeadID {
		t.Fatalf("lead %d", st)
	}
	_, body = c.do("GET", "/books/v3/items?organization_id="+d.OrgID+"&name=Annual%20licence", nil)
	items := body["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["rate"] != 1200.0 || items[0].(map[string]any)["item_id"] != d.BooksItemID || d.OrgID != c.s.Credentials().OrgID {
		t.Fatalf("items %v", items)
	}
	// An invoice for the demo customer and item goes through.
	st, body = c.do("POST", "/books/v3/invoices?organization_id="+d.OrgID, map[string]any{"customer_id": d.BooksContactID,
		"line_items": []any{map[string]any{"item_id": d.BooksItemID}}})
	if st != 201 || body["invoice"].(map[string]any)["total"] != 1200.0 {
		t.Fatalf("invoice %d %v", st, body)
	}
}

func TestUnstartedHandler(t *testing.T) {
	s := NewUnstarted()
	defer s.Close()
	hs := newHTTPServer(t, s.Handler())
	s.SetBaseURL(hs + "/")
	cr := s.Credentials()
	resp, err := http.PostForm(s.URL()+"/oauth/v2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {cr.ClientID},
		"client_secret": {cr.ClientSecret}, "refresh_token": {cr.RefreshToken}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = jsonDecode(resp, &m)
	resp.Body.Close()
	if m["api_domain"] != hs {
		t.Fatalf("api_domain %v want %s", m["api_domain"], hs)
	}
}

func oasDir(t testing.TB) string {
	d, err := filepath.Abs("testdata/crm-oas-v8")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
