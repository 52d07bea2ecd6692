package zohotest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func deletedIDs(t *testing.T, m map[string]any) []string {
	t.Helper()
	var ids []string
	for _, it := range dataItems(t, m) {
		ids = append(ids, it["id"].(string))
	}
	return ids
}

func TestDeletedRecordsList(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now), WithOpenAPIValidation("testdata/crm-oas-v8"))
	t.Cleanup(func() {
		if v := c.s.ContractViolations(); len(v) > 0 {
			t.Errorf("contract violations:\n%s", strings.Join(v, "\n"))
		}
	})
	st, body := c.do("POST", "/crm/v8/Leads", map[string]any{"data": []any{
		map[string]any{"First_Name": "Ann", "Last_Name": "A"}, map[string]any{"Last_Name": "B"}, map[string]any{"Last_Name": "C"}}})
	if st != 201 {
		t.Fatalf("insert %d %v", st, body)
	}
	var ids []string
	for _, it := range dataItems(t, body) {
		ids = append(ids, details(it)["id"].(string))
	}
	t0 := clk.Now()
	if st, body := c.do("DELETE", "/crm/v8/Leads?ids="+ids[0], nil); st != 200 {
		t.Fatalf("bulk delete %d %v", st, body)
	}
	clk.Advance(10 * time.Second)
	if st, body := c.do("DELETE", "/crm/v8/Leads/"+ids[1], nil); st != 200 {
		t.Fatalf("delete %d %v", st, body)
	}
	clk.Advance(10 * time.Second)
	if !c.s.CRMDelete("Leads", ids[2]) || c.s.CRMDelete("Leads", ids[2]) || c.s.CRMDelete("Nope", ids[2]) {
		t.Fatal("CRMDelete must delete an existing record once")
	}
	if _, ok := c.s.CRMRecord("Leads", ids[2]); ok {
		t.Fatal("record still there after CRMDelete")
	}

	// Every deletion is listed, newest first, with Zoho's keys.
	st, body = c.do("GET", "/crm/v8/Leads/deleted", nil)
	if st != 200 {
		t.Fatalf("list %d %v", st, body)
	}
	items := dataItems(t, body)
	if got := deletedIDs(t, body); strings.Join(got, ",") != strings.Join([]string{ids[2], ids[1], ids[0]}, ",") {
		t.Fatalf("ids %v, want newest first %v", got, ids)
	}
	first := items[2]
	if first["type"] != "recycle" || first["display_name"] != "Ann A" || first["deleted_time"] != t0.Format(crmTimeLayout) ||
		first["deleted_by"].(map[string]any)["id"] != fakeUser()["id"] || first["created_by"].(map[string]any)["name"] != fakeUser()["name"] {
		t.Fatalf("entry %v", first)
	}
	if info := body["info"].(map[string]any); info["count"] != 3.0 || info["more_records"] != false || info["per_page"] != 200.0 {
		t.Fatalf("info %v", info)
	}

	// If-Modified-Since keeps deletions strictly after it.
	_, body = c.do("GET", "/crm/v8/Leads/deleted", nil, "If-Modified-Since", t0.Format(time.RFC3339))
	if got := deletedIDs(t, body); len(got) != 2 || got[1] != ids[1] {
		t.Fatalf("since t0: %v", got)
	}
	if st, _ := c.do("GET", "/crm/v8/Leads/deleted", nil, "If-Modified-Since", clk.Now().Format(time.RFC3339)); st != http.StatusNoContent {
		t.Fatalf("nothing after now: %d", st)
	}

	// Paging.
	_, body = c.do("GET", "/crm/v8/Leads/deleted?per_page=2&page=1", nil)
	if got := deletedIDs(t, body); len(got) != 2 || body["info"].(map[string]any)["more_records"] != true {
		t.Fatalf("page 1: %v %v", got, body["info"])
	}
	_, body = c.do("GET", "/crm/v8/Leads/deleted?per_page=2&page=2", nil)
	if got := deletedIDs(t, body); len(got) != 1 || got[0] != ids[0] || body["info"].(map[string]any)["more_records"] != false {
		t.Fatalf("page 2: %v %v", got, body["info"])
	}
	if st, _ := c.do("GET", "/crm/v8/Leads/deleted?per_page=2&page=3", nil); st != http.StatusNoContent {
		t.Fatalf("page 3: %d", st)
	}

	// type filter, and the recycle bin emptied: entries become permanent at the purge time.
	if _, body = c.do("GET", "/crm/v8/Leads/deleted?type=recycle", nil); len(dataItems(t, body)) != 3 {
		t.Fatalf("recycle: %v", body)
	}
	if st, _ := c.do("GET", "/crm/v8/Leads/deleted?type=permanent", nil); st != http.StatusNoContent {
		t.Fatalf("permanent before purge: %d", st)
	}
	clk.Advance(30 * time.Minute) // within the access token's hour
	if n := c.s.CRMEmptyRecycleBin("Leads"); n != 3 {
		t.Fatalf("purged %d", n)
	}
	if st, _ := c.do("GET", "/crm/v8/Leads/deleted?type=recycle", nil); st != http.StatusNoContent {
		t.Fatalf("recycle after purge: %d", st)
	}
	_, body = c.do("GET", "/crm/v8/Leads/deleted?type=permanent", nil)
	for _, it := range dataItems(t, body) {
		if it["type"] != "permanent" || it["display_name"] != nil || it["deleted_time"] != clk.Now().Format(crmTimeLayout) {
			t.Fatalf("purged entry %v", it)
		}
	}

	// Errors and other modules.
	if st, body := c.do("GET", "/crm/v8/Leads/deleted?type=some", nil); st != 400 || body["code"] != "PATTERN_NOT_MATCHED" {
		t.Fatalf("bad type: %d %v", st, body)
	}
	if st, body := c.do("GET", "/crm/v8/Leads/deleted?per_page=201", nil); st != 400 || body["code"] != "INVALID_DATA" {
		t.Fatalf("per_page 201: %d %v", st, body)
	}
	if st, _ := c.do("POST", "/crm/v8/Leads/deleted", map[string]any{}); st != 400 {
		t.Fatalf("POST: %d", st)
	}
	if st, _ := c.do("GET", "/crm/v8/Deals/deleted", nil); st != http.StatusNoContent {
		t.Fatalf("other module: %d", st)
	}
}
