package engine_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// publish stores an event for record id with the given values.
func (fx *fixture) publish(t *testing.T, id, module, record string, values map[string]any) {
	t.Helper()
	_, err := events.NewPublisher(fx.env.JS, fx.env.Stream).Publish(context.Background(), []*events.Envelope{{
		ID: id, Source: events.SourceCRMNotify, Connection: "default", Module: module, Operation: events.OpUpdate,
		RecordID: record, Values: values, ReceivedAt: time.Now().UTC(),
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) deadLettered(id string) bool {
	_, err := fx.dlq.Get(context.Background(), id)
	return err == nil
}

const refusedPathRules = `
version: 1
rules:
  - name: skip-raw
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - action: crm.raw_request
        on_failure: skip
        with: { method: GET, path: "${event.values.path}" }
  - name: retry-raw
    on: { source: crm.notify, module: Leads, operations: [update] }
    steps:
      - action: crm.raw_request
        with: { method: GET, path: "${event.values.path}" }
`

// A path refused before sending (it comes from the event and leaves the
// API) is a refusal: on_failure: skip applies at once; without it the event
// is dead-lettered at once, not retried for minutes.
func TestRefusedPathIsPermanent(t *testing.T) {
	fx, stop := setup(t, refusedPathRules)
	defer stop()
	for _, path := range []string{"//127.0.0.1:1/x", "../../etc/passwd", "http://evil.example/x"} {
		before := len(fx.fake.Calls())
		id := "ev-path-skip-" + path
		fx.publish(t, id, "Deals", fx.dealID, map[string]any{"path": path})
		waitUntil(t, "skip rule handled "+path, func() bool { _, ok := fx.handled.Load(id); return ok })
		if strings.Contains(fx.logs.String(), "event will be retried event_id="+id) {
			t.Fatalf("%s: retried", path)
		}
		id2 := "ev-path-dead-" + path
		fx.publish(t, id2, "Leads", "5725767000000524999", map[string]any{"path": path})
		waitUntil(t, "retry rule dead-lettered "+path, func() bool { return fx.deadLettered(id2) })
		if dl, _ := fx.dlq.Get(context.Background(), id2); dl.Attempts != 1 || !dl.Permanent {
			t.Fatalf("%s: dead letter after %d attempts, permanent %v", path, dl.Attempts, dl.Permanent)
		}
		if n := len(fx.fake.Calls()) - before; n != 0 {
			t.Fatalf("%s: %d calls reached Zoho", path, n)
		}
	}
	if !strings.Contains(fx.logs.String(), "skipped (on_failure: skip)") {
		t.Fatalf("the skipped step was not logged:\n%s", fx.logs.String())
	}
}

const missingRules = `
version: 1
rules:
  - name: stamp-default
    on: { source: crm.notify, module: Deals, operations: [update] }
    record: { fields: [Stage] }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "seen ${record.Stage}" } }
  - name: stamp-strict
    on: { source: crm.notify, module: Leads, operations: [update] }
    record: all
    on_missing: dead_letter
    steps:
      - action: crm.update_record
        with: { module: Leads, id: "${event.record_id}", data: { Description: x } }
  - name: touch-gone
    on: { source: crm.notify, module: Contacts, operations: [update] }
    steps:
      - action: crm.update_record
        with: { module: Contacts, id: "${event.record_id}", data: { Description: x } }
      - action: crm.update_record
        with: { module: Deals, id: "` + "${event.values.deal}" + `", data: { Description: never } }
`

// A record deleted since the notification: by default the rule is skipped
// (logged with the record id, never retried); on_missing: dead_letter
// dead-letters at once; a step whose target record is gone stops its rule.
func TestMissingRecords(t *testing.T) {
	fx, stop := setup(t, missingRules)
	defer stop()
	gone := "5725767000000999001"
	fx.publish(t, "ev-gone-1", "Deals", gone, nil)
	waitUntil(t, "missing record handled", func() bool { _, ok := fx.handled.Load("ev-gone-1"); return ok })
	logs := fx.logs.String()
	if !strings.Contains(logs, "no longer exists in Zoho; rule skipped") || !strings.Contains(logs, "record_id="+gone) {
		t.Fatalf("no info line about the missing record:\n%s", logs)
	}
	if strings.Contains(logs, "event will be retried event_id=ev-gone-1") {
		t.Fatal("a missing record was retried")
	}

	fx.publish(t, "ev-gone-2", "Leads", gone, nil)
	waitUntil(t, "on_missing: dead_letter", func() bool { return fx.deadLettered("ev-gone-2") })

	contact := fx.fake.CRMInsert("Contacts", map[string]any{"Last_Name": "Doe"})
	fx.publish(t, "ev-gone-3", "Contacts", contact, map[string]any{"deal": gone})
	waitUntil(t, "step target gone handled", func() bool { _, ok := fx.handled.Load("ev-gone-3"); return ok })
	if c, _ := fx.fake.CRMRecord("Contacts", contact); c["Description"] != "x" {
		t.Fatalf("the first step did not run: %v", c)
	}
	if !strings.Contains(fx.logs.String(), "its record is gone; rule stopped (on_missing: skip)") {
		t.Fatalf("the gone step target was not logged:\n%s", fx.logs.String())
	}
}

const skipLogRules = `
version: 1
rules:
  - name: best-effort
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - action: crm.update_record
        on_failure: skip
        with: { module: Deals, id: "${event.record_id}", data: { Description: "stamped" } }
`

// A skipped step logs Zoho's answer: status, code and message.
func TestSkippedStepLogsZohoAnswer(t *testing.T) {
	fx, stop := setup(t, skipLogRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPut, PathPrefix: "/crm/v8/Deals", Status: http.StatusBadRequest,
		Body: `{"code":"INVALID_DATA","details":{"api_name":"Description"},"message":"invalid data","status":"error"}`, Times: 1})
	fx.publishDealUpdate(t, "ev-skiplog-1")
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-skiplog-1"); return ok })
	logs := fx.logs.String()
	for _, want := range []string{"level=WARN", "skipped (on_failure: skip)", "action=crm.update_record", "status=400", "code=INVALID_DATA", `message="invalid data"`} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
}

const refNumberRules = `
version: 1
rules:
  - name: invoice
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - id: invoice
        action: books.create_record
        with:
          entity: invoices
          data: { customer_id: "${event.values.customer}", reference_number: "CRM-DEAL-${event.record_id}", line_items: [{ name: x, rate: 1, quantity: 1 }] }
`

// A create Zoho refused (429) is not in doubt: the next attempt sends it
// again without looking it up by reference_number first.
func TestNoLookupAfterARefusal(t *testing.T) {
	fx, stop := setup(t, refNumberRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/books/v3/invoices", Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 1})
	customer := fx.fake.BooksInsert(fx.orgID, "contacts", map[string]any{"contact_name": "Bowman & Co"})
	fx.publish(t, "ev-noref-1", "Deals", fx.dealID, map[string]any{"customer": customer})
	defer func() {
		if t.Failed() {
			t.Log(fx.logs.String())
		}
	}()
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-noref-1"); return ok })
	if n := len(fx.fake.CallsTo(http.MethodGet, "/books/v3/invoices")); n != 0 {
		t.Fatalf("%d reference_number lookups after a refusal", n)
	}
	if n := len(fx.fake.BooksRecords(fx.orgID, "invoices")); n != 1 {
		t.Fatalf("%d invoices", n)
	}
}

const batchRules = `
version: 1
rules:
  - name: two-deals
    on: { source: crm.notify, module: Leads, operations: [update] }
    steps:
      - id: deals
        action: crm.create_record
        with:
          module: Deals
          data:
            - { Deal_Name: "first ${event.record_id}", Stage: Qualification }
            - { Stage: "${event.values.stage}" }
`

// Zoho creates one record of a batch and refuses the other: the dead
// letter's replay sends only the refused record, never the created one
// again.
func TestPartlyAcceptedBatchResendsOnlyTheRefused(t *testing.T) {
	fx, stop := setup(t, batchRules)
	defer stop()
	lead := "5725767000000777001"
	fx.publish(t, "ev-batch-1", "Leads", lead, map[string]any{"stage": "Qualification"})
	waitUntil(t, "partial batch dead-lettered", func() bool { return fx.deadLettered("ev-batch-1") })
	created := func() int {
		n := 0
		for _, c := range fx.fake.CallsTo(http.MethodPost, "/crm/v8/Deals") {
			n += strings.Count(string(c.Body), "Deal_Name")
		}
		return n
	}
	if created() != 1 {
		t.Fatalf("first attempt sent %d named deals", created())
	}
	if err := fx.dlq.Replay(context.Background(), "ev-batch-1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "replay dead-lettered again (the data is still refused)", func() bool {
		return len(fx.fake.CallsTo(http.MethodPost, "/crm/v8/Deals")) == 2 && fx.deadLettered("ev-batch-1")
	})
	calls := fx.fake.CallsTo(http.MethodPost, "/crm/v8/Deals")
	if last := string(calls[len(calls)-1].Body); strings.Contains(last, "Deal_Name") || strings.Count(last, "Stage") != 1 {
		t.Fatalf("the replay resent the created record: %s", last)
	}
	var e worker.EventRecord
	if r, err := fx.journal.Get(context.Background(), "ev-batch-1"); err != nil || r == nil {
		t.Fatalf("journal: %v", err)
	} else {
		e = *r
	}
	if s := e.Steps["two-deals/deals"]; s == nil || s.State != worker.StepRefused || len(s.Calls) == 0 {
		t.Fatalf("journal step %+v", s)
	}
	_ = errors.New
}

// The journal keeps each step's HTTP exchange as sent and answered (the
// console shows it): real status, no secrets.
func TestJournalKeepsTheWire(t *testing.T) {
	fx, stop := setup(t, skipLogRules)
	defer stop()
	fx.publishDealUpdate(t, "ev-wire-1")
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-wire-1"); return ok })
	r, err := fx.journal.Get(context.Background(), "ev-wire-1")
	if err != nil || r == nil {
		t.Fatalf("journal: %v", err)
	}
	calls := string(r.Steps["best-effort/#0"].Calls)
	for _, want := range []string{`"method":"PUT"`, `"path":"/crm/v8/Deals`, `"status":200`, `"code":"SUCCESS"`, `"trigger":[]`, `"Description":"stamped"`} {
		if !strings.Contains(calls, want) {
			t.Fatalf("calls lack %s: %s", want, calls)
		}
	}
	cr := fx.fake.Credentials()
	if strings.Contains(calls, cr.ClientSecret) || strings.Contains(calls, cr.RefreshToken) || strings.Contains(strings.ToLower(calls), "zoho-oauthtoken") {
		t.Fatalf("calls hold a secret: %s", calls)
	}
}
