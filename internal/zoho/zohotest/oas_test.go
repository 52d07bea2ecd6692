package zohotest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestContract drives a suite of CRM requests (successes and errors) through a fake that validates every CRM
// request and response against Zoho's OpenAPI files, and expects no violation.
func TestContract(t *testing.T) {
	rcv := newReceiver(t)
	c := newClient(t, WithOpenAPIValidation(oasDir(t)), WithNotifications(true))
	d := c.s.SeedDemo()
	for i := range 5 {
		c.s.CRMInsert("Leads", map[string]any{"Last_Name": fmt.Sprintf("L%d", i), "Email": fmt.Sprintf("l%d@x.example", i)})
	}
	lead := func(i int) map[string]any { return map[string]any{"Last_Name": fmt.Sprintf("N%d", i)} }
	steps := []struct {
		method, path string
		body         any
		hdr          []string
	}{
		{"POST", "/crm/v8/Leads", map[string]any{"data": []any{lead(1), lead(2)}, "trigger": []any{}}, nil},
		{"POST", "/crm/v8/Leads", map[string]any{"data": []any{lead(3), map[string]any{"First_Name": "x"}}}, nil},
		{"POST", "/crm/v8/Deals", map[string]any{"data": []any{map[string]any{"Deal_Name": "x"}}}, nil},
		{"POST", "/crm/v8/Leads", map[string]any{}, nil},
		{"PUT", "/crm/v8/Leads", map[string]any{"data": []any{map[string]any{"id": d.LeadID, "Phone": "1"}, map[string]any{"id": "5725767000000000001"}}}, nil},
		{"PUT", "/crm/v8/Deals/" + d.DealID, map[string]any{"data": []any{map[string]any{"Stage": "Negotiation"}}}, nil},
		{"POST", "/crm/v8/Leads/upsert", map[string]any{"data": []any{map[string]any{"Last_Name": "U", "Email": "l1@x.example"}}, "duplicate_check_fields": []any{"Email"}}, nil},
		{"GET", "/crm/v8/Deals/" + d.DealID, nil, nil},
		{"GET", "/crm/v8/Deals/" + d.DealID + "?fields=Deal_Name,Stage", nil, nil},
		{"GET", "/crm/v8/Deals/5725767000000000001", nil, nil},
		{"GET", "/crm/v8/Deals/abc", nil, nil},
		{"GET", "/crm/v8/Leads?fields=Last_Name,Email&per_page=2&page=1", nil, nil},
		{"GET", "/crm/v8/Leads?fields=Last_Name&sort_by=Modified_Time&sort_order=asc", nil, nil},
		{"GET", "/crm/v8/Leads", nil, nil},
		{"GET", "/crm/v8/Leads?fields=Last_Name&page=11", nil, nil},
		{"GET", "/crm/v8/Nope?fields=id", nil, nil},
		{"GET", "/crm/v8/Leads/search?criteria=" + url.QueryEscape("(Last_Name:equals:L1)"), nil, nil},
		{"GET", "/crm/v8/Leads/search?email=l2@x.example", nil, nil},
		{"POST", "/crm/v8/coql", map[string]any{"select_query": "select Last_Name, Email from Leads where Email is not null order by Last_Name limit 3"}, nil},
		{"POST", "/crm/v8/coql", map[string]any{"select_query": "select Deal_Name, Account_Name.Account_Name from Deals where Stage = 'Negotiation'"}, nil},
		{"POST", "/crm/v8/coql", map[string]any{"select_query": "select Last_Name Leads"}, nil},
		{"POST", "/crm/v8/coql", map[string]any{"select_query": "select Last_Name from Leads limit 5000"}, nil},
		{"POST", "/crm/v8/coql", map[string]any{"select_query": "select Last_Name from Nope"}, nil},
		{"POST", "/crm/v8/Deals/" + d.DealID + "/Attachments?attachmentUrl=" + url.QueryEscape("https://example.com/x.pdf") + "&title=X", nil, nil},
		{"GET", "/crm/v8/Deals/" + d.DealID + "/Attachments?fields=id,File_Name,Size", nil, nil},
		{"POST", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": 1000000068001, "events": []any{"Deals.all", "Leads.create"},
			"notify_url": rcv.srv.URL + "/n?x=1", "token": "T", "return_affected_field_values": true}}}, nil},
		{"POST", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": 1000000068002, "notify_url": rcv.srv.URL}}}, nil},
		{"GET", "/crm/v8/actions/watch", nil, nil},
		{"PATCH", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": "1000000068001", "events": []any{"Deals.all"}, "token": "T"}}}, nil},
		{"PUT", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": "1000000068001", "events": []any{"Deals.edit"}, "notify_url": rcv.srv.URL, "token": "T2"}}}, nil},
		{"PATCH", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": "1000000068001", "events": []any{"Deals.edit"}, "_delete_events": true}}}, nil},
		{"DELETE", "/crm/v8/actions/watch?channel_ids=1000000068001", nil, nil},
		{"DELETE", "/crm/v8/Leads?ids=" + d.LeadID + ",5725767000000000001", nil, nil},
		{"DELETE", "/crm/v8/Deals/" + d.DealID, nil, nil},
	}
	for _, st := range steps {
		c.raw(st.method, st.path, st.body, st.hdr...)
	}
	// Attachments via multipart: file upload, download, delete.
	body, ct := multipartBody(t, "file", "a.txt", []byte("hello"))
	c.raw("POST", "/crm/v8/Accounts/"+d.AccountID+"/Attachments", body, "Content-Type", ct)
	atts := c.s.CRMAttachments("Accounts", d.AccountID)
	if len(atts) != 1 {
		t.Fatalf("attachments %v", atts)
	}
	c.raw("GET", "/crm/v8/Accounts/"+d.AccountID+"/Attachments/"+atts[0].ID, nil)
	c.raw("DELETE", "/crm/v8/Accounts/"+d.AccountID+"/Attachments/"+atts[0].ID, nil)
	// A link as Zoho's sample sends it: a multipart attachmentUrl part, title in the query.
	lb, lct := linkBody(t, map[string]string{"attachmentUrl": "https://example.com/x.pdf"})
	c.raw("POST", "/crm/v8/Accounts/"+d.AccountID+"/Attachments?title=X", lb, "Content-Type", lct)
	if atts := c.s.CRMAttachments("Accounts", d.AccountID); len(atts) != 1 || atts[0].LinkURL != "https://example.com/x.pdf" {
		t.Fatalf("link attachment: %+v", atts)
	}
	c.s.FlushNotifications()

	if len(c.s.CallsTo("", "/crm/v8/")) < len(steps) {
		t.Fatal("steps did not all reach the fake")
	}
	if v := c.s.ContractViolations(); len(v) > 0 {
		t.Fatalf("%d contract violations:\n%s", len(v), strings.Join(v, "\n"))
	}
}

// TestContractCatchesViolations shows the validator is not vacuous: a fault with a body that breaks the
// contract is reported.
func TestContractCatchesViolations(t *testing.T) {
	c := newClient(t, WithOpenAPIValidation(oasDir(t)))
	c.s.Inject(Fault{PathPrefix: "/crm/v8/coql", Status: 200, Body: `{"data":"not an array","info":{"count":"x"}}`})
	c.do("POST", "/crm/v8/coql", map[string]any{"select_query": "select Last_Name from Leads"})
	c.raw("POST", "/crm/v8/coql", map[string]any{"wrong": 1}) // request body misses select_query
	c.s.Inject(Fault{PathPrefix: "/crm/v8/Leads", Status: 200, Body: `{"data":[{"id":5}]}`, Times: 1})
	c.do("GET", "/crm/v8/Leads?fields=Last_Name", nil) // record ids are strings in the contract
	v := c.s.ContractViolations()
	all := strings.Join(v, "\n")
	if len(v) < 3 || !strings.Contains(all, "select_query") || !strings.Contains(all, "GET /crm/v8/Leads") {
		t.Fatalf("violations not detected: %v", v)
	}
}
