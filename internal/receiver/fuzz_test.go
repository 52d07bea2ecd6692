package receiver_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/receiver"
)

// Fuzz targets for every callback decoder, driven through the real HTTP
// handler on loopback. Whatever the body, the receiver must answer 200 or a
// JSON 4xx (never 5xx, never a panic), publish nothing on a 4xx, hand the
// store only envelopes that survive a JSON round trip, and never echo a
// configured secret in an answer or a log line.
//
// `go test ./...` fuzzes each target for a few seconds (internal/fuzzci);
// a longer run, one target at a time (-fuzz takes one per run):
//
//	go test -run '^$' -fuzz '^FuzzCRMNotify$' -fuzztime 5m ./internal/receiver
//
// Without -fuzz, `go test` runs the seed corpus in testdata/fuzz/<Target>/
// plus the f.Add seeds as ordinary tests.

const (
	fuzzNotifyToken = "fz-notify-token-Qp81"
	fuzzHookSecret  = "fz-hook-secret-Xk27"
	fuzzBooksSecret = "fz-books-secret-Lm09"
)

// memPublisher is an in-memory receiver.Publisher: fuzzing is about the
// decoders, and a JetStream round trip per input would cut the exec rate a
// hundredfold. It applies the same checks a stored event must pass.
type memPublisher struct {
	mu   sync.Mutex
	envs []*events.Envelope
	bad  []string
}

var _ receiver.Publisher = (*memPublisher)(nil)

func (p *memPublisher) Publish(_ context.Context, envs []*events.Envelope) ([]events.PublishResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]events.PublishResult, len(envs))
	var errs []error
	for i, e := range envs {
		// What events.Publisher does first: an envelope Encode refuses is
		// an error for the receiver to answer, not a stored event.
		data, err := events.Encode(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		back, err := events.Decode(data)
		if err != nil {
			p.bad = append(p.bad, fmt.Sprintf("decode of %s: %v", data, err))
			continue
		}
		subj := events.Subject(back, 16)
		if strings.ContainsAny(subj, "*> \t\r\n") || strings.Count(subj, ".") != events.SubjectTokens-1 {
			p.bad = append(p.bad, "unsafe subject "+subj)
		}
		p.envs = append(p.envs, e)
		out[i] = events.PublishResult{ID: e.ID, Subject: subj, Sequence: uint64(len(p.envs))}
	}
	return out, errors.Join(errs...)
}

// take returns and clears what was published and any envelope problem.
func (p *memPublisher) take() ([]*events.Envelope, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	envs, bad := p.envs, p.bad
	p.envs, p.bad = nil, nil
	return envs, bad
}

// fuzzTarget is one receiver on loopback shared by every input of a target.
type fuzzTarget struct {
	url  string
	pub  *memPublisher
	logs *lockedBuffer
	http *http.Client
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) takeString() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	ft := &fuzzTarget{pub: &memPublisher{}, logs: &lockedBuffer{}}
	srv, err := receiver.New(receiver.Config{
		Publisher: ft.pub,
		CRMTokens: receiver.NewStaticTokens([]string{fuzzNotifyToken}),
		BodyLimit: 64 << 10,
		CRMWorkflowHooks: map[string]receiver.HookConfig{
			"fixed":  {Secret: fuzzHookSecret, Module: "Deals", Operation: "update"},
			"fields": {Secret: fuzzHookSecret, ModuleField: "module", OperationField: "op", RecordIDField: "record"},
		},
		BooksHooks: map[string]receiver.HookConfig{
			"plain":  {Secret: fuzzBooksSecret, Operation: "paid"},
			"signed": {Secret: fuzzBooksSecret, Signature: true},
		},
		Logger: slog.New(slog.NewJSONHandler(ft.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	f.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	ft.url = "http://" + l.Addr().String()
	ft.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	f.Cleanup(ft.http.CloseIdleConnections)
	return ft
}

// contentTypes the fuzzer picks from by index; the last is "none".
var fuzzContentTypes = []string{"application/json", "application/x-www-form-urlencoded", "text/plain", "text/json",
	"application/json; charset=utf-8", "multipart/form-data; boundary=x", "application/json; charset=\"", ""}

// post sends one input and checks the invariants shared by every route.
// secretsInRequest lists configured secrets the request itself carried
// legitimately: they are still not allowed back in the answer.
func (ft *fuzzTarget) post(t *testing.T, path string, ctype uint8, hdr http.Header, body []byte) (int, []*events.Envelope) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ft.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct := fuzzContentTypes[int(ctype)%len(fuzzContentTypes)]; ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := ft.http.Do(req)
	if err != nil {
		t.Fatalf("request failed (server crashed or hung up?): %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	envs, bad := ft.pub.take()
	logs := ft.logs.takeString()
	for _, b := range bad {
		t.Errorf("receiver published an envelope the store cannot hold: %s", b)
	}
	if resp.StatusCode >= 500 {
		t.Fatalf("status %d for body %q: %s", resp.StatusCode, body, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d answer is not a JSON object: %q", resp.StatusCode, raw)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		ids, _ := out["event_ids"].([]any)
		if len(envs) == 0 || len(ids) != len(envs) {
			t.Fatalf("200 with %d published events and event_ids %v", len(envs), out["event_ids"])
		}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		if len(envs) != 0 {
			t.Fatalf("status %d but %d events were published", resp.StatusCode, len(envs))
		}
		if msg, _ := out["error"].(string); msg == "" {
			t.Fatalf("status %d without an error message: %s", resp.StatusCode, raw)
		}
	default:
		t.Fatalf("unexpected status %d: %s", resp.StatusCode, raw)
	}
	for _, secret := range []string{fuzzNotifyToken, fuzzHookSecret, fuzzBooksSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("answer contains a configured secret: %s", raw)
		}
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains a configured secret: %s", logs)
		}
		for _, e := range envs {
			if bytes.Contains(e.Raw, []byte(secret)) {
				t.Fatalf("stored event keeps a configured secret: %s", e.Raw)
			}
		}
	}
	return resp.StatusCode, envs
}

func FuzzCRMNotify(f *testing.F) {
	ft := newFuzzTarget(f)
	seed := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	valid := map[string]any{"server_time": 1718117126473, "query_params": map[string]any{}, "module": "Deals",
		"resource_uri": "https://www.zohoapis.com/crm/v8/Deals", "ids": []any{"5725767000000524157", "5725767000000524158"},
		"affected_fields": []any{map[string]any{"5725767000000524157": []any{"Stage", "Amount"}}},
		"operation":       "update", "channel_id": "1000000068001", "token": fuzzNotifyToken}
	f.Add(seed(valid), uint8(0))
	f.Add([]byte(`{"module":"Leads","ids":[5725767000000524201],"operation":"insert","channel_id":1000000068001,"token":"`+fuzzNotifyToken+`","affected_values":[{"record_id":"5725767000000524201","values":{"Lead_Status":"New"}}]}`), uint8(3))
	f.Add([]byte(`{"module":"Deals","ids":["1","1"],"operation":"delete","channel_id":"1","token":"`+fuzzNotifyToken+`"}`), uint8(0))
	f.Add([]byte(`{"module":"Deals","ids":["12"],"operation":"edit","channel_id":"1","token":"wrong"}`), uint8(7))
	f.Add([]byte(`{"token":"`+fuzzNotifyToken+`","ids":{"a":1}}`), uint8(4))
	f.Add([]byte("\xff\xfe{}"), uint8(0))
	f.Add([]byte(`[]`), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, ctype uint8) {
		code, envs := ft.post(t, "/zoho/crm/notify", ctype, nil, body)
		for _, e := range envs {
			if e.Source != events.SourceCRMNotify || e.RecordID == "" || e.Module == "" {
				t.Fatalf("%d: incomplete envelope %+v", code, e)
			}
		}
	})
}

func FuzzCRMWorkflowHook(f *testing.F) {
	ft := newFuzzTarget(f)
	f.Add([]byte(`{"id":"5725767000000524157","stage":"Closed Lost","modified":"2026-11-29T10:00:00+05:30"}`), uint8(0), "fixed", "", true)
	f.Add([]byte(`id=5725767000000524157&stage=Closed+Won&secret=`+fuzzHookSecret), uint8(1), "fixed", "", false)
	f.Add([]byte(`{"record":77,"module":"Leads","op":"insert"}`), uint8(0), "fields", "operation=update", true)
	f.Add([]byte(`record=1&record=2&module=Deals`), uint8(1), "fields", "", true)
	f.Add([]byte(`{"id":"1e400"}`), uint8(2), "fixed", "secret="+fuzzHookSecret, false)
	f.Add([]byte(`id=%zz`), uint8(1), "fixed", "", true)
	f.Add([]byte(`{"id":"42"}`), uint8(0), "missing", "", true)
	f.Fuzz(func(t *testing.T, body []byte, ctype uint8, hook, query string, header bool) {
		if hook != "fixed" && hook != "fields" {
			hook = "unknown"
		}
		var hdr http.Header
		if header {
			hdr = http.Header{"X-Zohook-Secret": {fuzzHookSecret}}
		}
		path := "/zoho/crm/workflow/" + hook
		if q, err := url.ParseQuery(query); err == nil && len(q) > 0 {
			path += "?" + q.Encode()
		}
		_, envs := ft.post(t, path, ctype, hdr, body)
		for _, e := range envs {
			if e.Source != events.SourceCRMWorkflow || e.Hook != hook || e.RecordID == "" {
				t.Fatalf("incomplete envelope %+v", e)
			}
		}
	})
}

// booksSignature computes the HMAC the way Zoho's finance apps document it
// (API.md §9): sorted query (and form) parameters as key+value, then the raw
// body for JSON.
func booksSignature(q url.Values, form url.Values, body []byte) string {
	params := url.Values{}
	for k, v := range q {
		params[k] = append(params[k], v...)
	}
	for k, v := range form {
		params[k] = append(params[k], v...)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mac := hmac.New(sha256.New, []byte(fuzzBooksSecret))
	for _, k := range keys {
		for _, v := range params[k] {
			mac.Write([]byte(k + v))
		}
	}
	if form == nil {
		mac.Write(body)
	}
	return hex.EncodeToString(mac.Sum(nil))
}

func FuzzBooksHook(f *testing.F) {
	ft := newFuzzTarget(f)
	f.Add([]byte(`{"invoice":{"invoice_id":"982000000567114","reference_number":"CRM-DEAL-1","total":1200,"status":"paid"}}`), uint8(0), true, "operation=paid", uint8(1))
	f.Add([]byte(`{"invoice":{"invoice_id":982000000567114},"contact":{"contact_id":"1"}}`), uint8(0), false, "", uint8(1))
	f.Add([]byte(`JSONString=%7B%22salesorder%22%3A%7B%22salesorder_id%22%3A%2277%22%7D%7D`), uint8(1), true, "", uint8(1))
	f.Add([]byte(`JSONString=%7B%22salesorder%22%3A%7B%22salesorder_id%22%3A%2277%22%7D%7D`), uint8(1), false, "", uint8(1))
	f.Add([]byte(`{"customerpayment":{"payment_id":"5"}}`), uint8(0), true, "z=1&a=2", uint8(2))
	f.Add([]byte(`{"bill":{"bill_id":"9"}}`), uint8(0), true, "", uint8(0))
	f.Add([]byte(`{"estimate_id":"31","status":"sent"}`), uint8(3), false, "operation=sent", uint8(1))
	f.Add([]byte(`null`), uint8(0), true, "", uint8(1))
	// mode: 0 no credentials, 1 valid signature (signed hook) / secret header
	// (plain hook), 2 a signature over different bytes.
	f.Fuzz(func(t *testing.T, body []byte, ctype uint8, signed bool, query string, mode uint8) {
		q, err := url.ParseQuery(query)
		if err != nil {
			q = nil
		}
		hook := "plain"
		if signed {
			hook = "signed"
		}
		path := "/zoho/books/" + hook
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		hdr := http.Header{}
		switch mode % 3 {
		case 1:
			if signed {
				var form url.Values
				if fuzzContentTypes[int(ctype)%len(fuzzContentTypes)] == "application/x-www-form-urlencoded" {
					form, _ = url.ParseQuery(string(body))
				}
				hdr.Set(receiver.SignatureHeader, booksSignature(q, form, body))
			} else {
				hdr.Set("X-Zohook-Secret", fuzzBooksSecret)
			}
		case 2:
			hdr.Set(receiver.SignatureHeader, booksSignature(q, nil, append([]byte("x"), body...)))
		}
		code, envs := ft.post(t, path, ctype, hdr, body)
		authenticated := mode%3 == 1 || (!signed && q.Get("secret") == fuzzBooksSecret)
		if !authenticated && code == http.StatusOK {
			t.Fatalf("unauthenticated Books webhook answered %d", code)
		}
		for _, e := range envs {
			if e.Source != events.SourceBooks || e.Hook != hook || e.RecordID == "" {
				t.Fatalf("incomplete envelope %+v", e)
			}
		}
	})
}
