package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/receiver"
)

// A record id sent as a JSON number has 19 digits: decoded as a float64 it
// would become another record's id (5725767000000524157 → …288) and the
// worker would act on the wrong record. Fractions are not ids.
func TestHookKeepsLongNumericRecordIDs(t *testing.T) {
	h := start(t, nil, withHooks)
	hdr := http.Header{"X-Zohook-Secret": {hookSecret}}
	code, out := h.do(t, "/zoho/crm/workflow/deal-stage", "application/json", hdr, []byte(`{"id": 5725767000000524157, "amount": 1200.50}`))
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	envs := h.env.Envelopes(t)
	if len(envs) != 1 || envs[0].RecordID != "5725767000000524157" {
		t.Fatalf("stored %+v, want record 5725767000000524157", envs)
	}
	if !bytes.Contains(envs[0].Raw, []byte(`5725767000000524157`)) || !bytes.Contains(envs[0].Raw, []byte(`1200.50`)) {
		t.Fatalf("stored body lost digits: %s", envs[0].Raw)
	}
	if code, out := h.do(t, "/zoho/crm/workflow/deal-stage", "application/json", hdr, []byte(`{"id": 1.5}`)); code != 400 {
		t.Fatalf("fractional id: %d %v, want 400", code, out)
	}
}

// Go's decoder matches "Token" to the token field, so the receiver
// authenticated with it: it must not stay in the stored event either.
func TestNotifyTokenInAnySpellingIsNotStored(t *testing.T) {
	h := start(t, nil)
	body := notification(func(m map[string]any) { delete(m, "token"); m["Token"] = token })
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", body); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	for _, e := range h.env.Envelopes(t) {
		if bytes.Contains(e.Raw, []byte(token)) {
			t.Fatalf("stored event keeps the channel token: %s", e.Raw)
		}
	}
}

// Each record of a notification stores its own share of the body, not the
// whole body: a 500-record callback must not be stored 500 times over.
func TestNotifyStoresEachRecordsShareOnly(t *testing.T) {
	h := start(t, nil, func(c *receiver.Config) { c.BodyLimit = 1 << 20 })
	const n = 500
	ids := make([]any, n)
	values := make([]any, n)
	for i := range ids {
		id := fmt.Sprintf("57257670000005%05d", i)
		ids[i] = id
		values[i] = map[string]any{"record_id": id, "values": map[string]any{"Stage": "Closed Won", "Description": fmt.Sprintf("%0300d", i)}}
	}
	body := notification(func(m map[string]any) {
		m["ids"], m["affected_values"] = ids, values
		m["affected_fields"] = []any{"Stage", "Description"}
	})
	code, out := h.post(t, "/zoho/crm/notify", "application/json", body)
	if code != 200 || out["accepted"].(float64) != n {
		t.Fatalf("%d %v", code, out)
	}
	total := 0
	for _, e := range h.env.Envelopes(t) {
		total += len(e.Raw)
		var share struct {
			IDs            []string `json:"ids"`
			AffectedValues []struct {
				RecordID string `json:"record_id"`
			} `json:"affected_values"`
			Module string `json:"module"`
		}
		if err := json.Unmarshal(e.Raw, &share); err != nil {
			t.Fatal(err)
		}
		if len(share.IDs) != 1 || share.IDs[0] != e.RecordID || len(share.AffectedValues) != 1 ||
			share.AffectedValues[0].RecordID != e.RecordID || share.Module != "Deals" {
			t.Fatalf("record %s stored %s, want its own share of the callback", e.RecordID, e.Raw)
		}
		if e.Values["Description"] == nil {
			t.Fatalf("record %s lost its values", e.RecordID)
		}
	}
	if total > 3*len(body) {
		t.Fatalf("%d records stored %d bytes of body for a %d-byte callback: each must keep only its share", n, total, len(body))
	}
}

// A hook without its own connection belongs to the receiver's -connection,
// as notifications do.
func TestHookDefaultsToTheReceiversConnection(t *testing.T) {
	h := start(t, nil, withHooks, func(c *receiver.Config) { c.Connection = "acme" })
	hdr := http.Header{"X-Zohook-Secret": {hookSecret}}
	if code, out := h.do(t, "/zoho/crm/workflow/deal-stage", "application/json", hdr, []byte(`{"id":"5725767000000524157"}`)); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if envs := h.env.Envelopes(t); len(envs) != 1 || envs[0].Connection != "acme" {
		t.Fatalf("stored %+v, want connection acme", envs)
	}
}

// A signal right at start can make Shutdown run before Serve: Serve must
// then return at once, not serve on while the event store is closed.
func TestShutdownBeforeServeStopsServe(t *testing.T) {
	env := eventstest.Start(t)
	srv, err := receiver.New(receiver.Config{Publisher: events.NewPublisher(env.JS, env.Stream), CRMTokens: receiver.NewStaticTokens([]string{token})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve kept serving after Shutdown")
	}
}

// A worker refuses events nested deeper than events.MaxDepth; the raw
// callback is one level down in an event, so a callback nested
// events.MaxDepth-1 levels is stored and one level more is refused (400),
// not stored for no worker to read.
func TestCallbackNestingLimit(t *testing.T) {
	h := start(t, nil)
	nested := func(depth int) []byte { // the body's own object is level 1
		q := any(1)
		for range depth - 1 {
			q = map[string]any{"a": q}
		}
		return notification(func(m map[string]any) { m["query_params"] = q; m["ids"] = []any{fmt.Sprint(depth)} })
	}
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", nested(events.MaxDepth-1)); code != 200 {
		t.Fatalf("nested %d levels: %d %v", events.MaxDepth-1, code, out)
	}
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", nested(events.MaxDepth)); code != 400 {
		t.Fatalf("nested %d levels: %d %v, want 400", events.MaxDepth, code, out)
	}
	envs := h.env.Envelopes(t)
	if len(envs) != 1 {
		t.Fatalf("%d events stored, want 1", len(envs))
	}
}

// Several records, one of them with values nested too deep: the callback
// is refused whole, no record stored (a 4xx stores nothing).
func TestCallbackNestingLimitSeveralRecords(t *testing.T) {
	h := start(t, nil)
	deep := any("x")
	for range events.MaxDepth {
		deep = []any{deep}
	}
	body := notification(func(m map[string]any) {
		m["affected_values"] = []any{
			map[string]any{"record_id": "5725767000000524157", "values": map[string]any{"Stage": "Won"}},
			map[string]any{"record_id": "5725767000000524158", "values": map[string]any{"Deep": deep}},
		}
	})
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", body); code != 400 {
		t.Fatalf("%d %v, want 400", code, out)
	}
	if n := h.env.Messages(t); n != 0 {
		t.Fatalf("%d events stored, want none", n)
	}
}
