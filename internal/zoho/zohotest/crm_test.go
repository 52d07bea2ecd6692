package zohotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestCRMInsertBatch(t *testing.T) {
	c := newClient(t)
	acct := c.s.CRMInsert("Accounts", map[string]any{"Account_Name": "Zylker"})
	tests := []struct {
		name       string
		module     string
		body       any
		wantStatus int
		wantCodes  []string
	}{
		{"all ok", "Leads", map[string]any{"data": []any{map[string]any{"Last_Name": "Boyle", "First_Name": "Pat"}}, "trigger": []any{}}, 201, []string{"SUCCESS"}},
		{"mixed", "Leads", map[string]any{"data": []any{map[string]any{"Last_Name": "A"}, map[string]any{"First_Name": "no last"}}}, 207, []string{"SUCCESS", "MANDATORY_NOT_FOUND"}},
		{"all fail", "Deals", map[string]any{"data": []any{map[string]any{"Deal_Name": "no stage"}}}, 400, []string{"MANDATORY_NOT_FOUND"}},
		{"bad lookup", "Contacts", map[string]any{"data": []any{map[string]any{"Last_Name": "X", "Account_Name": map[string]any{"id": "5725767000000000009"}}}}, 400, []string{"INVALID_DATA"}},
		{"good lookup", "Contacts", map[string]any{"data": []any{map[string]any{"Last_Name": "X", "Account_Name": map[string]any{"id": acct}}}}, 201, []string{"SUCCESS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := c.do("POST", "/crm/v8/"+tt.module, tt.body)
			if st != tt.wantStatus {
				t.Fatalf("status %d want %d: %v", st, tt.wantStatus, body)
			}
			items := dataItems(t, body)
			var codes []string
			for _, it := range items {
				codes = append(codes, it["code"].(string))
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Fatalf("codes %v want %v", codes, tt.wantCodes)
			}
		})
	}
	// The mandatory error points at the field, and successes are stored with system fields.
	_, body := c.do("POST", "/crm/v8/Leads", map[string]any{"data": []any{map[string]any{"First_Name": "x"}}})
	if d := details(dataItems(t, body)[0]); d["api_name"] != "Last_Name" || d["json_path"] != "$.data[0].Last_Name" {
		t.Fatalf("details %v", d)
	}
	leads := c.s.CRMRecords("Leads")
	if len(leads) != 2 || leads[0]["Full_Name"] != "Pat Boyle" || len(leads[0]["id"].(string)) != 19 {
		t.Fatalf("stored leads %v", leads)
	}
	if _, err := time.Parse(crmTimeLayout, leads[0]["Created_Time"].(string)); err != nil {
		t.Fatal(err)
	}
	contacts := c.s.CRMRecords("Contacts")
	if ref := contacts[0]["Account_Name"].(map[string]any); ref["name"] != "Zylker" {
		t.Fatalf("lookup name not filled: %v", ref)
	}
	// The trigger array is visible in the recorded call.
	calls := c.s.CallsTo("POST", "/crm/v8/Leads")
	var sent struct{ Trigger []string }
	if err := json.Unmarshal(calls[0].Body, &sent); err != nil || sent.Trigger == nil || len(sent.Trigger) != 0 {
		t.Fatalf("trigger not recorded: %s", calls[0].Body)
	}
}

func TestCRMRequestErrors(t *testing.T) {
	c := newClient(t)
	many := make([]any, 101)
	for i := range many {
		many[i] = map[string]any{"Last_Name": "x"}
	}
	tests := []struct {
		name, method, path string
		body               any
		want               int
		code               string
	}{
		{"unknown module", "GET", "/crm/v8/Nope?fields=id", nil, 400, "INVALID_MODULE"},
		{"too many records", "POST", "/crm/v8/Leads", map[string]any{"data": many}, 400, "LIMIT_EXCEEDED"},
		{"no data", "POST", "/crm/v8/Leads", map[string]any{}, 400, "MANDATORY_NOT_FOUND"},
		{"bad json", "POST", "/crm/v8/Leads", "{", 400, "INVALID_DATA"},
		{"malformed id", "GET", "/crm/v8/Leads/abc", nil, 400, "INVALID_DATA"},
		{"list without fields", "GET", "/crm/v8/Leads", nil, 400, "REQUIRED_PARAM_MISSING"},
		{"delete without ids", "DELETE", "/crm/v8/Leads", nil, 400, "REQUIRED_PARAM_MISSING"},
		{"bad method", "PATCH", "/crm/v8/Leads", nil, 400, "INVALID_REQUEST_METHOD"},
		{"bad url", "GET", "/crm/v8/Leads/1/2/3/4/5", nil, 404, "INVALID_URL_PATTERN"},
		{"per_page too big", "GET", "/crm/v8/Leads?fields=id&per_page=201", nil, 400, "INVALID_DATA"},
		{"discrete paging", "GET", "/crm/v8/Leads?fields=id&page=11", nil, 400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED"},
		{"page and token", "GET", "/crm/v8/Leads?fields=id&page=2&page_token=x", nil, 400, "AMBIGUITY_DURING_PROCESSING"},
		{"unknown token", "GET", "/crm/v8/Leads?fields=id&page_token=x", nil, 400, "INVALID_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := c.do(tt.method, tt.path, tt.body)
			if st != tt.want || body["code"] != tt.code || body["status"] != "error" {
				t.Fatalf("%d %v", st, body)
			}
		})
	}
	fields := "a"
	for i := range 50 {
		fields += fmt.Sprintf(",f%d", i)
	}
	if st, body := c.do("GET", "/crm/v8/Leads?fields="+fields, nil); st != 400 || body["code"] != "LIMIT_EXCEEDED" {
		t.Fatalf("51 fields: %d %v", st, body)
	}
}

func TestCRMUpdateUpsertDelete(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now))
	id := c.s.CRMInsert("Leads", map[string]any{"Last_Name": "Boyle", "Email": "p@z.com"})
	clk.Advance(time.Minute)

	st, body := c.do("PUT", "/crm/v8/Leads", map[string]any{"data": []any{
		map[string]any{"id": id, "Phone": "123"},
		map[string]any{"id": "5725767000000000001", "Phone": "1"},
		map[string]any{"Phone": "no id"},
	}})
	items := dataItems(t, body)
	if st != 207 || items[0]["message"] != "record updated" || items[1]["code"] != "INVALID_DATA" || items[2]["code"] != "MANDATORY_NOT_FOUND" {
		t.Fatalf("bulk update: %d %v", st, body)
	}
	rec, _ := c.s.CRMRecord("Leads", id)
	if rec["Phone"] != "123" || rec["Modified_Time"] == rec["Created_Time"] {
		t.Fatalf("not updated: %v", rec)
	}
	// Single update; If-Unmodified-Since older than the record → 412.
	st, _ = c.do("PUT", "/crm/v8/Leads/"+id, map[string]any{"data": []any{map[string]any{"Company": "Zylker"}}})
	if st != 200 {
		t.Fatalf("single update %d", st)
	}
	old := clk.Now().Add(-time.Hour).Format(time.RFC3339)
	if st, body := c.do("PUT", "/crm/v8/Leads/"+id, map[string]any{"data": []any{map[string]any{"Company": "X"}}}, "If-Unmodified-Since", old); st != 412 || body["code"] != "ALREADY_MODIFIED" {
		t.Fatalf("412: %d %v", st, body)
	}

	// Upsert: match by the default duplicate-check field (Email), then insert a new one.
	st, body = c.do("POST", "/crm/v8/Leads/upsert", map[string]any{"data": []any{
		map[string]any{"Last_Name": "Boyle2", "Email": "P@Z.com"},
		map[string]any{"Last_Name": "New", "Email": "n@z.com"},
	}})
	items = dataItems(t, body)
	if st != 200 || items[0]["action"] != "update" || items[0]["duplicate_field"] != "Email" || items[1]["action"] != "insert" {
		t.Fatalf("upsert: %d %v", st, body)
	}
	if len(c.s.CRMRecords("Leads")) != 2 {
		t.Fatal("upsert created a duplicate")
	}
	// Insert with duplicate_check_fields refuses the duplicate.
	_, body = c.do("POST", "/crm/v8/Leads", map[string]any{"data": []any{map[string]any{"Last_Name": "Dup", "Email": "n@z.com"}},
		"duplicate_check_fields": []any{"Email"}})
	if it := dataItems(t, body)[0]; it["code"] != "DUPLICATE_DATA" {
		t.Fatalf("duplicate: %v", it)
	}

	// Delete: one known, one unknown → 207, wf_trigger recorded.
	st, body = c.do("DELETE", "/crm/v8/Leads?ids="+id+",5725767000000000001&wf_trigger=false", nil)
	items = dataItems(t, body)
	if st != 207 || items[0]["message"] != "record deleted" || items[1]["message"] != "record not deleted" {
		t.Fatalf("delete: %d %v", st, body)
	}
	if calls := c.s.CallsTo("DELETE", "/crm/v8/Leads"); calls[0].Query.Get("wf_trigger") != "false" {
		t.Fatal("wf_trigger not recorded")
	}
	if st, _ := c.do("GET", "/crm/v8/Leads/"+id, nil); st != 204 {
		t.Fatalf("deleted record: %d", st)
	}
	if st, _ := c.do("DELETE", "/crm/v8/Leads/"+id, nil); st != 400 {
		t.Fatalf("delete twice: %d", st)
	}
}

func TestCRMGetAndSearch(t *testing.T) {
	c := newClient(t)
	id := c.s.CRMInsert("Contacts", map[string]any{"Last_Name": "Boyle", "First_Name": "Pat", "Email": "p@z.com", "Score": 7.0})
	c.s.CRMInsert("Contacts", map[string]any{"Last_Name": "Kent", "Email": "k@z.com", "Score": 3.0})
	st, body := c.do("GET", "/crm/v8/Contacts/"+id+"?fields=Email", nil)
	if st != 200 || len(dataItems(t, body)) != 1 || dataItems(t, body)[0]["Email"] != "p@z.com" || dataItems(t, body)[0]["Last_Name"] != nil {
		t.Fatalf("get: %d %v", st, body)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"criteria=" + url.QueryEscape("(Last_Name:equals:boyle)"), []string{"Boyle"}},
		{"criteria=" + url.QueryEscape("((Last_Name:equals:Boyle)or(Last_Name:starts_with:K))"), []string{"Boyle", "Kent"}},
		{"criteria=" + url.QueryEscape("((Score:greater_than:5)and(Email:equals:p@z.com))"), []string{"Boyle"}},
		{"criteria=" + url.QueryEscape("(Last_Name:in:Kent,Nobody)"), []string{"Kent"}},
		{"email=k@z.com", []string{"Kent"}},
		{"word=oyl", []string{"Boyle"}},
		{"criteria=" + url.QueryEscape("(Last_Name:equals:Nobody)"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			st, body := c.do("GET", "/crm/v8/Contacts/search?"+tt.query, nil)
			if tt.want == nil {
				if st != 204 {
					t.Fatalf("want 204, got %d", st)
				}
				return
			}
			var got []string
			for _, r := range dataItems(t, body) {
				got = append(got, r["Last_Name"].(string))
			}
			if st != 200 || !slices.Equal(got, tt.want) {
				t.Fatalf("%d %v", st, got)
			}
		})
	}
	if st, body := c.do("GET", "/crm/v8/Contacts/search?criteria=Last_Name:equals:x", nil); st != 400 || body["code"] != "INVALID_QUERY" {
		t.Fatalf("bad criteria: %d %v", st, body)
	}
}

func TestCRMPagingWithPageToken(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now))
	for i := range 2050 {
		c.s.CRMInsert("Leads", map[string]any{"Last_Name": fmt.Sprintf("L%04d", i)})
	}
	seen := map[string]bool{}
	var prev string
	var token string
	for page := 1; page <= 10; page++ {
		st, body := c.do("GET", fmt.Sprintf("/crm/v8/Leads?fields=Last_Name&per_page=200&page=%d&sort_order=asc", page), nil)
		if st != 200 {
			t.Fatalf("page %d: %d %v", page, st, body)
		}
		info := body["info"].(map[string]any)
		if info["count"] != 200.0 || info["more_records"] != true || info["page"] != float64(page) {
			t.Fatalf("info %v", info)
		}
		for _, r := range dataItems(t, body) {
			id := r["id"].(string)
			if seen[id] || (prev != "" && cmpID(prev, id) >= 0) {
				t.Fatalf("order/dup at %s", id)
			}
			seen[id], prev = true, id
		}
		token = info["next_page_token"].(string)
	}
	// Beyond 2,000 only page_token works; changing params breaks it.
	if st, body := c.do("GET", "/crm/v8/Leads?fields=Last_Name&per_page=200&sort_order=desc&page_token="+token, nil); st != 400 || body["code"] != "TOKEN_BOUND_DATA_MISMATCH" {
		t.Fatalf("mismatch: %d %v", st, body)
	}
	st, body := c.do("GET", "/crm/v8/Leads?fields=Last_Name&per_page=200&sort_order=asc&page_token="+token, nil)
	info := body["info"].(map[string]any)
	if st != 200 || info["count"] != 50.0 || info["more_records"] != false || info["next_page_token"] != nil {
		t.Fatalf("last page: %d %v", st, info)
	}
	for _, r := range dataItems(t, body) {
		seen[r["id"].(string)] = true
	}
	if len(seen) != 2050 {
		t.Fatalf("saw %d records", len(seen))
	}
	// Tokens expire after 24 h.
	_, body = c.do("GET", "/crm/v8/Leads?fields=Last_Name&page=1", nil)
	tok := body["info"].(map[string]any)["next_page_token"].(string)
	clk.Advance(25 * time.Hour)
	c.tok = c.refresh()
	if st, body := c.do("GET", "/crm/v8/Leads?fields=Last_Name&page_token="+tok, nil); st != 400 || body["code"] != "EXPIRED_VALUE" {
		t.Fatalf("expired: %d %v", st, body)
	}
}

func TestCRMListSortAndConditional(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now))
	if st, _ := c.do("GET", "/crm/v8/Deals?fields=Deal_Name", nil); st != 204 {
		t.Fatalf("empty list: %d", st)
	}
	a := c.s.CRMInsert("Deals", map[string]any{"Deal_Name": "a", "Stage": "x"})
	clk.Advance(time.Minute)
	b := c.s.CRMInsert("Deals", map[string]any{"Deal_Name": "b", "Stage": "x"})
	since := clk.Now().UTC().Format(http.TimeFormat)
	clk.Advance(time.Minute)
	if st, _ := c.do("GET", "/crm/v8/Deals?fields=Deal_Name", nil, "If-Modified-Since", since); st != 304 {
		t.Fatalf("not modified: %d", st)
	}
	if st, body := c.do("PUT", "/crm/v8/Deals/"+a, map[string]any{"data": []any{map[string]any{"Stage": "y"}}}); st != 200 {
		t.Fatalf("update: %d %v", st, body)
	}
	st, body := c.do("GET", "/crm/v8/Deals?fields=Deal_Name,Stage", nil, "If-Modified-Since", since)
	if items := dataItems(t, body); st != 200 || len(items) != 1 || items[0]["id"] != a {
		t.Fatalf("modified since: %d %v", st, body)
	}
	_, body = c.do("GET", "/crm/v8/Deals?fields=Deal_Name&sort_by=Modified_Time&sort_order=desc", nil)
	if items := dataItems(t, body); items[0]["id"] != a || items[1]["id"] != b {
		t.Fatalf("sort by Modified_Time: %v", items)
	}
	_, body = c.do("GET", "/crm/v8/Deals?fields=Deal_Name", nil)
	info := body["info"].(map[string]any)
	if items := dataItems(t, body); items[0]["id"] != b || info["sort_by"] != "id" || info["sort_order"] != "desc" {
		t.Fatalf("default sort: %v %v", items, info)
	}
}
