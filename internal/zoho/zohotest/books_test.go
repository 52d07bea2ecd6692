package zohotest

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
)

func TestBooksOrgChecks(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		name, path string
		hdr        []string
		want       int
		code       float64
	}{
		{"missing org", "/books/v3/invoices", nil, 400, 2},
		{"unknown org", "/books/v3/invoices?organization_id=999", nil, 400, 2},
		{"org header", "/books/v3/invoices", []string{"X-com-zoho-books-organizationid", "10234695"}, 200, 0},
		{"unknown entity", "/books/v3/widgets?organization_id=10234695", nil, 404, 5},
		{"unknown id", "/books/v3/invoices/123?organization_id=10234695", nil, 404, 1002},
		{"organizations", "/books/v3/organizations", nil, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := c.do("GET", tt.path, nil, tt.hdr...)
			if st != tt.want || body["code"] != tt.code {
				t.Fatalf("%d %v", st, body)
			}
		})
	}
	_, body := c.do("GET", "/books/v3/invoices/123?organization_id=10234695", nil)
	if body["message"] != "Invoice does not exist." {
		t.Fatalf("message %v", body["message"])
	}
}

func TestBooksInvoiceLifecycle(t *testing.T) {
	c := newClient(t)
	org := c.s.Credentials().OrgID
	q := "?organization_id=" + org
	st, body := c.do("POST", "/books/v3/contacts"+q, map[string]any{"contact_name": "Bowman & Co", "email": "d@b.example"})
	if st != 201 || body["code"] != 0.0 {
		t.Fatalf("contact: %d %v", st, body)
	}
	cust := body["contact"].(map[string]any)["contact_id"].(string)
	if st, body := c.do("POST", "/books/v3/contacts"+q, map[string]any{"email": "x"}); st != 400 || body["code"] != 4.0 {
		t.Fatalf("contact without name: %d %v", st, body)
	}
	item := c.s.BooksInsert(org, "items", map[string]any{"name": "Annual licence", "rate": 1200.0})

	tests := []struct {
		name string
		body map[string]any
		want int
	}{
		{"no customer", map[string]any{"line_items": []any{map[string]any{"item_id": item}}}, 400},
		{"unknown customer", map[string]any{"customer_id": "1", "line_items": []any{map[string]any{"item_id": item}}}, 400},
		{"no lines", map[string]any{"customer_id": cust, "line_items": []any{}}, 400},
		{"line without rate", map[string]any{"customer_id": cust, "line_items": []any{map[string]any{"name": "x"}}}, 400},
		{"unknown item", map[string]any{"customer_id": cust, "line_items": []any{map[string]any{"item_id": "1"}}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, body := c.do("POST", "/books/v3/invoices"+q, tt.body); st != tt.want || body["code"] == 0.0 {
				t.Fatalf("%d %v", st, body)
			}
		})
	}

	st, body = c.do("POST", "/books/v3/invoices"+q, map[string]any{"customer_id": cust, "reference_number": "CRM-1",
		"line_items": []any{map[string]any{"item_id": item, "quantity": 2}, map[string]any{"name": "Setup", "rate": 50.5, "tax_percentage": 10}}})
	if st != 201 || body["message"] != "The invoice has been created." {
		t.Fatalf("invoice: %d %v", st, body)
	}
	inv := body["invoice"].(map[string]any)
	if inv["invoice_number"] != "INV-00001" || inv["status"] != "draft" || inv["customer_name"] != "Bowman & Co" ||
		inv["sub_total"] != 2450.5 || inv["tax_total"] != 5.05 || inv["total"] != 2455.55 || inv["balance"] != 2455.55 {
		t.Fatalf("invoice fields %v", inv)
	}
	id := inv["invoice_id"].(string)
	// JSONString form body (legacy) works too.
	form := url.Values{"JSONString": {fmt.Sprintf(`{"customer_id":%q,"line_items":[{"item_id":%q}]}`, cust, item)}}
	resp, b := c.raw("POST", "/books/v3/invoices"+q, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"INV-00002"`) {
		t.Fatalf("JSONString: %d %s", resp.StatusCode, b)
	}

	if st, body := c.do("PUT", "/books/v3/invoices/"+id+q, map[string]any{"reference_number": "CRM-2"}); st != 200 || body["invoice"].(map[string]any)["reference_number"] != "CRM-2" {
		t.Fatalf("update: %d %v", st, body)
	}
	if st, _ := c.do("POST", "/books/v3/invoices/"+id+"/status/sent"+q, nil); st != 200 {
		t.Fatalf("status: %d", st)
	}
	if rec, _ := c.s.BooksRecord(org, "invoices", id); rec["status"] != "sent" {
		t.Fatalf("status not stored: %v", rec["status"])
	}
	st, body = c.do("POST", "/books/v3/invoices/"+id+"/comments"+q, map[string]any{"description": "Thanks"})
	if st != 201 || body["comment"].(map[string]any)["description"] != "Thanks" {
		t.Fatalf("comment: %d %v", st, body)
	}
	if _, body := c.do("GET", "/books/v3/invoices/"+id+"/comments"+q, nil); len(body["comments"].([]any)) != 1 {
		t.Fatalf("comments %v", body)
	}
	// Attachment: multipart field "attachment".
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("attachment", "po.pdf")
	fw.Write([]byte("%PDF-1.4"))
	mw.Close()
	resp, b = c.raw("POST", "/books/v3/invoices/"+id+"/attachment"+q, buf.Bytes(), "Content-Type", mw.FormDataContentType())
	if resp.StatusCode != 200 || !strings.Contains(string(b), "Your file has been attached.") {
		t.Fatalf("attach: %d %s", resp.StatusCode, b)
	}
	if resp, b := c.raw("GET", "/books/v3/invoices/"+id+"/attachment"+q, nil); string(b) != "%PDF-1.4" || resp.StatusCode != 200 {
		t.Fatalf("download: %d %q", resp.StatusCode, b)
	}
	if st, body := c.do("DELETE", "/books/v3/invoices/"+id+q, nil); st != 200 || body["message"] != "The invoice has been deleted." {
		t.Fatalf("delete: %d %v", st, body)
	}
	if st, _ := c.do("GET", "/books/v3/invoices/"+id+q, nil); st != 404 {
		t.Fatalf("after delete: %d", st)
	}
}

func TestBooksListPagingAndFilters(t *testing.T) {
	c := newClient(t)
	org := c.s.Credentials().OrgID
	for i := range 450 {
		c.s.BooksInsert(org, "contacts", map[string]any{"contact_name": fmt.Sprintf("Customer %03d", i),
			"contact_type": []string{"customer", "vendor"}[i%2], "email": fmt.Sprintf("c%d@x.example", i)})
	}
	seen := map[string]bool{}
	for page := 1; ; page++ {
		st, body := c.do("GET", fmt.Sprintf("/books/v3/contacts?organization_id=%s&page=%d", org, page), nil)
		if st != 200 {
			t.Fatalf("%d %v", st, body)
		}
		for _, x := range body["contacts"].([]any) {
			seen[x.(map[string]any)["contact_id"].(string)] = true
		}
		pc := body["page_context"].(map[string]any)
		if pc["per_page"] != 200.0 || pc["page"] != float64(page) {
			t.Fatalf("page_context %v", pc)
		}
		if pc["has_more_page"] != true {
			break
		}
	}
	if len(seen) != 450 {
		t.Fatalf("saw %d", len(seen))
	}
	tests := []struct {
		query string
		want  int
	}{
		{"contact_type=vendor&contact_name_startswith=Customer 1", 50},
		{"contact_name_contains=customer 01", 10},
		{"contact_name_startswith=Customer 44", 10},
		{"search_text=c449@", 1},
		{"email=c7@x.example", 1},
		{"no_such_field=1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			st, body := c.do("GET", "/books/v3/contacts?organization_id="+org+"&per_page=200&"+v.Encode(), nil)
			if st != 200 || len(body["contacts"].([]any)) != tt.want {
				t.Fatalf("%d: %d contacts", st, len(body["contacts"].([]any)))
			}
		})
	}
	if st, body := c.do("GET", "/books/v3/contacts?organization_id="+org+"&per_page=201", nil); st != 400 || body["code"] != 2.0 {
		t.Fatalf("per_page: %d %v", st, body)
	}
}

func TestBooksOtherEntities(t *testing.T) {
	c := newClient(t)
	org := c.s.Credentials().OrgID
	q := "?organization_id=" + org
	cust := c.s.BooksInsert(org, "contacts", map[string]any{"contact_name": "A"})
	tests := []struct {
		entity, key, numberKey, number string
		body                           map[string]any
	}{
		{"estimates", "estimate", "estimate_number", "EST-00001", map[string]any{"customer_id": cust, "line_items": []any{map[string]any{"name": "x", "rate": 1}}}},
		{"salesorders", "salesorder", "salesorder_number", "SO-00001", map[string]any{"customer_id": cust, "line_items": []any{map[string]any{"name": "x", "rate": 1}}}},
		{"customerpayments", "payment", "payment_number", "00001", map[string]any{"customer_id": cust, "amount": 10}},
		{"items", "item", "", "", map[string]any{"name": "Widget", "rate": 5}},
	}
	for _, tt := range tests {
		t.Run(tt.entity, func(t *testing.T) {
			st, body := c.do("POST", "/books/v3/"+tt.entity+q, tt.body)
			obj, ok := body[tt.key].(map[string]any)
			if st != 201 || !ok {
				t.Fatalf("%d %v", st, body)
			}
			if tt.numberKey != "" && obj[tt.numberKey] != tt.number {
				t.Fatalf("number %v", obj[tt.numberKey])
			}
			_, list := c.do("GET", "/books/v3/"+tt.entity+q, nil)
			if n := len(list[tt.entity].([]any)); n != 1 {
				t.Fatalf("list has %d", n)
			}
		})
	}
}
