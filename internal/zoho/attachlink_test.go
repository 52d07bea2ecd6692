package zoho_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"testing"
)

// TestAttachLinkSendsZohoSample: AttachLink sends what Zoho's "Upload an
// Attachment" sample sends, a multipart/form-data body with an
// attachmentUrl part and no file part, title in the query string; the
// fake (which refuses a body-less link) stores it, and the link is listed
// with $link_url, which the worker's in-doubt lookup reads.
func TestAttachLinkSendsZohoSample(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id := e.s.CRMInsert("Deals", map[string]any{"Deal_Name": "att", "Stage": "Qualification"})
	link := "https://example.com/spec.pdf?rev=2&lang=en"
	r, _, err := e.c.CRM.AttachLink(ctx, "Deals", id, link, "Spec")
	if err != nil || r.ID == "" {
		t.Fatalf("link: %+v %v", r, err)
	}
	calls := e.s.CallsTo("POST", "/crm/v8/Deals/"+id+"/Attachments")
	if len(calls) != 1 {
		t.Fatalf("%d upload calls", len(calls))
	}
	c := calls[0]
	if c.Query.Has("attachmentUrl") || c.Query.Get("title") != "Spec" {
		t.Errorf("query %v: want title only", c.Query)
	}
	mt, params, err := mime.ParseMediaType(c.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("Content-Type %q", c.Header.Get("Content-Type"))
	}
	parts := map[string]string{}
	mr := multipart.NewReader(bytes.NewReader(c.Body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts[p.FormName()] = string(b)
	}
	if len(parts) != 1 || parts["attachmentUrl"] != link {
		t.Errorf("parts %v: want exactly attachmentUrl", parts)
	}
	list, _, err := e.c.CRM.ListAttachments(ctx, "Deals", id, nil)
	if err != nil || len(list) != 1 || list[0]["$link_url"] != link || list[0]["id"] != r.ID {
		t.Fatalf("list: %v %v", list, err)
	}
}
