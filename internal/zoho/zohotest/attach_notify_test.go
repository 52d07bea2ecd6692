package zohotest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func multipartBody(t *testing.T, field, name string, content []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func TestCRMAttachments(t *testing.T) {
	c := newClient(t)
	id := c.s.CRMInsert("Deals", map[string]any{"Deal_Name": "D", "Stage": "x"})
	base := "/crm/v8/Deals/" + id + "/Attachments"
	if st, _ := c.do("GET", base+"?fields=id,File_Name", nil); st != 204 {
		t.Fatalf("empty list: %d", st)
	}
	body, ct := multipartBody(t, "file", "invoice.pdf", []byte("%PDF-1.4 hello"))
	resp, b := c.raw("POST", base+"?title=Invoice", body, "Content-Type", ct)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "attachment uploaded successfully") {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	// Link attachment, as Zoho's sample sends it: a multipart attachmentUrl part (title as a part, or in the query).
	linkB, linkCT := linkBody(t, map[string]string{"attachmentUrl": "https://example.com/a.pdf"})
	if resp, b := c.raw("POST", base, linkB, "Content-Type", linkCT); resp.StatusCode != 200 {
		t.Fatalf("link: %d %s", resp.StatusCode, b)
	}
	linkB, linkCT = linkBody(t, map[string]string{"attachmentUrl": "https://example.com/b.pdf", "title": "B"})
	if resp, b := c.raw("POST", base, linkB, "Content-Type", linkCT); resp.StatusCode != 200 {
		t.Fatalf("link with title part: %d %s", resp.StatusCode, b)
	}
	if st, body := c.do("POST", base, nil); st != 400 || body["code"] != "INVALID_REQUEST" {
		t.Fatalf("nothing to attach: %d %v", st, body)
	}
	if st, body := c.do("GET", base, nil); st != 400 || body["code"] != "REQUIRED_PARAM_MISSING" {
		t.Fatalf("list without fields: %d %v", st, body)
	}
	st, lb := c.do("GET", base+"?fields=id,File_Name,Size", nil)
	items := dataItems(t, lb)
	if st != 200 || len(items) != 3 || items[0]["File_Name"] != "invoice.pdf" || items[0]["Size"] != "14" || items[1]["$link_url"] != "https://example.com/a.pdf" {
		t.Fatalf("list: %d %v", st, lb)
	}
	atts := c.s.CRMAttachments("Deals", id)
	if len(atts) != 3 || atts[0].Title != "Invoice" || atts[2].Title != "B" {
		t.Fatalf("stored: %+v", atts)
	}
	resp, b = c.raw("GET", base+"/"+atts[0].ID, nil)
	if resp.StatusCode != 200 || string(b) != "%PDF-1.4 hello" || !strings.Contains(resp.Header.Get("Content-Disposition"), "invoice.pdf") {
		t.Fatalf("download: %d %q", resp.StatusCode, b)
	}
	if st, _ := c.do("DELETE", base+"/"+atts[0].ID, nil); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if st, body := c.do("DELETE", base+"?ids="+atts[1].ID+",1", nil); st != 207 {
		t.Fatalf("bulk delete: %d %v", st, body)
	}
	if st, body := c.do("POST", "/crm/v8/Deals/5725767000000000001/Attachments?attachmentUrl=x", nil); st != 400 || body["code"] != "INVALID_DATA" {
		t.Fatalf("unknown record: %d %v", st, body)
	}
	big, ct := multipartBody(t, "file", "big.bin", bytes.Repeat([]byte{'x'}, maxAttachmentBytes+1))
	if resp, b := c.raw("POST", base, big, "Content-Type", ct); resp.StatusCode != 413 || !strings.Contains(string(b), "FILE_SIZE_MORE_THAN_ALLOWED_SIZE") {
		t.Fatalf("too large: %d %s", resp.StatusCode, b)
	}
}

// receiver collects notification callbacks.
type receiver struct {
	mu   sync.Mutex
	got  []map[string]any
	srv  *httptest.Server
	code int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{code: 200}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("callback not JSON: %s", b)
		}
		r.mu.Lock()
		r.got = append(r.got, m)
		code := r.code
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

func TestNotificationsChannelValidation(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now))
	ok := func(kv ...any) map[string]any {
		w := map[string]any{"channel_id": 1000000068001, "events": []any{"Deals.all"}, "notify_url": "http://127.0.0.1:9/n"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(w, kv[i].(string))
			} else {
				w[kv[i].(string)] = kv[i+1]
			}
		}
		return map[string]any{"watch": []any{w}}
	}
	tests := []struct {
		name string
		body map[string]any
		code string
	}{
		{"no events", ok("events", nil), "MANDATORY_NOT_FOUND"},
		{"no channel", ok("channel_id", nil), "MANDATORY_NOT_FOUND"},
		{"no url", ok("notify_url", nil), "MANDATORY_NOT_FOUND"},
		{"bad event", ok("events", []any{"Deals.update"}), "INVALID_DATA"},
		{"unknown module", ok("events", []any{"Nope.create"}), "INVALID_DATA"},
		{"long token", ok("token", strings.Repeat("x", 51)), "INVALID_DATA"},
		{"millis", ok("channel_expiry", clk.Now().Add(time.Hour).Format("2006-01-02T15:04:05.000-07:00")), "INVALID_DATA"},
		{"past expiry", ok("channel_expiry", clk.Now().Add(-time.Hour).Format(time.RFC3339)), "INVALID_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := c.do("POST", "/crm/v8/actions/watch", tt.body)
			items, _ := body["watch"].([]any)
			if st != 400 || len(items) != 1 || items[0].(map[string]any)["code"] != tt.code {
				t.Fatalf("%d %v", st, body)
			}
		})
	}
	// Expiry: omitted → 1 h; > 1 week → 1 h; 3 days kept.
	for _, tc := range []struct {
		expiry any
		want   time.Duration
	}{{nil, time.Hour}, {clk.Now().Add(8 * 24 * time.Hour).Format(time.RFC3339), time.Hour}, {clk.Now().Add(72 * time.Hour).Format(time.RFC3339), 72 * time.Hour}} {
		st, body := c.do("POST", "/crm/v8/actions/watch", ok("channel_expiry", tc.expiry, "token", "tok"))
		if st != 201 {
			t.Fatalf("enable: %d %v", st, body)
		}
		ch := c.s.Channels()
		if len(ch) != 1 || !ch[0].Expiry.Equal(clk.Now().Add(tc.want)) || ch[0].Token != "tok" || ch[0].ChannelID != "1000000068001" {
			t.Fatalf("channel %+v want expiry +%v", ch, tc.want)
		}
	}
	// PATCH without token nulls it (Zoho quirk); PATCH with _delete_events removes events.
	c.do("PATCH", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": "1000000068001", "events": []any{"Deals.all", "Leads.create"}}}})
	if ch := c.s.Channels()[0]; ch.HasToken || len(ch.Events) != 2 {
		t.Fatalf("after patch %+v", ch)
	}
	st, body := c.do("PATCH", "/crm/v8/actions/watch", map[string]any{"watch": []any{map[string]any{"channel_id": "1000000068001", "events": []any{"Leads.create"}, "_delete_events": true}}})
	if st != 200 || len(c.s.Channels()[0].Events) != 1 {
		t.Fatalf("delete events: %d %v %+v", st, body, c.s.Channels())
	}
	// GET lists it; after expiry it is gone.
	st, body = c.do("GET", "/crm/v8/actions/watch?channel_id=1000000068001", nil)
	if w := body["watch"].([]any); st != 200 || len(w) != 1 || w[0].(map[string]any)["token"] != nil {
		t.Fatalf("get: %d %v", st, body)
	}
	clk.Advance(73 * time.Hour)
	c.tok = c.refresh()
	if st, _ := c.do("GET", "/crm/v8/actions/watch", nil); st != 204 || len(c.s.Channels()) != 0 {
		t.Fatalf("expired channel still listed: %d", st)
	}
	if st, body := c.do("PUT", "/crm/v8/actions/watch", ok()); st != 400 || body["watch"].([]any)[0].(map[string]any)["code"] != "NOT_SUBSCRIBED" {
		t.Fatalf("put unknown: %d %v", st, body)
	}
}

func TestNotificationCallbacks(t *testing.T) {
	rcv := newReceiver(t)
	c := newClient(t, WithNotifications(true))
	notify := rcv.srv.URL + "/zoho/crm/notify?tenant=acme&key=k1"
	st, body := c.do("POST", "/crm/v8/actions/watch", map[string]any{"watch": []any{
		map[string]any{"channel_id": 1000000068001, "events": []any{"Leads.create", "Leads.edit"}, "notify_url": notify, "token": "TOKEN1", "return_affected_field_values": true},
		map[string]any{"channel_id": "1000000068002", "events": []any{"Leads.delete"}, "notify_url": notify},
	}})
	if st != 201 {
		t.Fatalf("enable: %d %v", st, body)
	}
	_, body = c.do("POST", "/crm/v8/Leads", map[string]any{"data": []any{map[string]any{"Last_Name": "A"}, map[string]any{"Last_Name": "B"}}})
	ids := []any{dataItems(t, body)[0]["details"].(map[string]any)["id"], dataItems(t, body)[1]["details"].(map[string]any)["id"]}
	c.do("PUT", "/crm/v8/Leads/"+ids[0].(string), map[string]any{"data": []any{map[string]any{"Phone": "1", "Last_Name": "A"}}})
	c.do("DELETE", "/crm/v8/Leads?ids="+ids[1].(string), nil)
	c.s.CRMInsert("Leads", map[string]any{"Last_Name": "seeded, no callback"})
	c.s.FlushNotifications()

	got := rcv.all()
	if len(got) != 3 {
		t.Fatalf("got %d callbacks: %v", len(got), got)
	}
	want := []struct {
		op, channel string
		token       any
		ids         []any
	}{{"insert", "1000000068001", "TOKEN1", ids}, {"update", "1000000068001", "TOKEN1", ids[:1]}, {"delete", "1000000068002", nil, ids[1:]}}
	for i, w := range want {
		g := got[i]
		qp := g["query_params"].(map[string]any)
		if g["operation"] != w.op || g["channel_id"] != w.channel || g["token"] != w.token || g["module"] != "Leads" ||
			qp["tenant"] != "acme" || qp["key"] != "k1" || g["server_time"] == nil || len(g["ids"].([]any)) != len(w.ids) || g["ids"].([]any)[0] != w.ids[0] {
			t.Fatalf("callback %d = %v", i, g)
		}
	}
	af := got[1]["affected_fields"].([]any)[0].(map[string]any)[ids[0].(string)].([]any)
	if len(af) != 1 || af[0] != "Phone" || got[1]["affected_values"] == nil {
		t.Fatalf("affected fields %v", got[1])
	}
	if d := c.s.Deliveries(); len(d) != 3 || d[0].Status != 200 {
		t.Fatalf("deliveries %+v", d)
	}
	// A dropped channel stops notifying; DELETE disables the other.
	c.s.DropChannel("1000000068001")
	if st, body := c.do("DELETE", "/crm/v8/actions/watch?channel_ids=1000000068002,1", nil); st != 207 {
		t.Fatalf("disable: %d %v", st, body)
	}
	c.do("POST", "/crm/v8/Leads", map[string]any{"data": []any{map[string]any{"Last_Name": "C"}}})
	c.s.FlushNotifications()
	if len(rcv.all()) != 3 {
		t.Fatal("callback after the channels were gone")
	}
}

func TestWebhookFailures(t *testing.T) {
	clk := newFakeClock()
	c := newClient(t, WithClock(clk.Now))
	if st, _ := c.do("GET", "/crm/v8/settings/automation/webhook_failures", nil); st != 204 {
		t.Fatalf("empty: %d", st)
	}
	c.s.RecordWebhookFailure(WebhookFailure{WebhookID: "1", WebhookName: "zohook", Module: "Deals", RecordID: "2", URL: "http://x", StatusCode: 503, Reason: "Service Unavailable"})
	clk.Advance(time.Hour)
	c.tok = c.refresh()
	c.s.RecordWebhookFailure(WebhookFailure{WebhookID: "9", Module: "Leads"})
	st, body := c.do("GET", "/crm/v8/settings/automation/webhook_failures?webhook_id=1", nil)
	list := body["webhook_failures"].([]any)
	if st != 200 || len(list) != 1 || list[0].(map[string]any)["response_code"] != 503.0 {
		t.Fatalf("%d %v", st, body)
	}
	from := url.QueryEscape(clk.Now().Add(-time.Minute).Format(time.RFC3339))
	if _, body := c.do("GET", "/crm/v8/settings/automation/webhook_failures?from="+from, nil); len(asList(body["webhook_failures"])) != 1 {
		t.Fatalf("from filter: %v", body)
	}
}
