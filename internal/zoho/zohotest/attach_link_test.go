package zohotest

import (
	"bytes"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
)

// linkBody is a multipart/form-data body with the given plain fields, as
// curl -F "attachmentUrl=…" sends it.
func linkBody(t testing.TB, fields map[string]string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// TestCRMAttachLinkAsZohoSampleSendsIt: the fake accepts a link exactly as
// Zoho's "Upload an Attachment" sample sends it (a multipart attachmentUrl
// part instead of the file part) and refuses, with Zoho's 400
// INVALID_REQUEST, a link sent without a multipart body, a body with
// neither part, and a body with both.
func TestCRMAttachLinkAsZohoSampleSendsIt(t *testing.T) {
	c := newClient(t, WithOpenAPIValidation(oasDir(t)))
	id := c.s.CRMInsert("Deals", map[string]any{"Deal_Name": "D", "Stage": "x"})
	base := "/crm/v8/Deals/" + id + "/Attachments"
	link := "https://example.com/spec.pdf?v=1&x=y"

	refused := []struct {
		name     string
		path     string
		body     []byte
		ct       string
		expected string
	}{
		{"query only, no body", base + "?attachmentUrl=" + url.QueryEscape(link), nil, "", "multipart/form-data"},
		{"url-encoded form", base, []byte(url.Values{"attachmentUrl": {link}}.Encode()), "application/x-www-form-urlencoded", "multipart/form-data"},
		{"json", base, []byte(`{"attachmentUrl":"` + link + `"}`), "application/json", "multipart/form-data"},
	}
	mb, mct := linkBody(t, map[string]string{"title": "only a title"})
	refused = append(refused, struct {
		name, path string
		body       []byte
		ct         string
		expected   string
	}{"multipart without file or attachmentUrl", base, mb, mct, "file or attachmentUrl"})
	// Both parts: one or the other, never both.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "a.txt")
	fw.Write([]byte("hello"))
	mw.WriteField("attachmentUrl", link)
	mw.Close()
	refused = append(refused, struct {
		name, path string
		body       []byte
		ct         string
		expected   string
	}{"file and attachmentUrl", base, buf.Bytes(), mw.FormDataContentType(), "not both"})

	for _, r := range refused {
		var hdr []string
		if r.ct != "" {
			hdr = []string{"Content-Type", r.ct}
		}
		st, body := c.do("POST", r.path, r.body, hdr...)
		exp, _ := details(body)["expected_type"].(string)
		if st != 400 || body["code"] != "INVALID_REQUEST" || body["status"] != "error" || !strings.Contains(exp, r.expected) {
			t.Errorf("%s: %d %v, want 400 INVALID_REQUEST expecting %q", r.name, st, body, r.expected)
		}
	}
	if n := len(c.s.CRMAttachments("Deals", id)); n != 0 {
		t.Fatalf("refused uploads stored %d attachments", n)
	}

	lb, lct := linkBody(t, map[string]string{"attachmentUrl": link})
	if resp, b := c.raw("POST", base+"?title=Spec", lb, "Content-Type", lct); resp.StatusCode != 200 || !strings.Contains(string(b), "attachment uploaded successfully") {
		t.Fatalf("multipart link: %d %s", resp.StatusCode, b)
	}
	atts := c.s.CRMAttachments("Deals", id)
	if len(atts) != 1 || atts[0].LinkURL != link || atts[0].Title != "Spec" || atts[0].Size != 0 {
		t.Fatalf("stored %+v", atts)
	}
	// The in-doubt lookup finds a link by $link_url in the list.
	st, lbody := c.do("GET", base+"?fields=id,File_Name,Size,Created_Time,$link_url", nil)
	items := dataItems(t, lbody)
	if st != 200 || len(items) != 1 || items[0]["$link_url"] != link || items[0]["id"] != atts[0].ID {
		t.Fatalf("list: %d %v", st, lbody)
	}
	if v := c.s.ContractViolations(); len(v) > 0 {
		t.Fatalf("contract violations:\n%s", strings.Join(v, "\n"))
	}
}
