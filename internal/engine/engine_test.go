package engine_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const dealWonRules = `
version: 1
rules:
  - name: deal-won-invoice
    on:
      source: crm.notify
      module: Deals
      operations: [update]
    record:
      fields: [Deal_Name, Stage, Amount, Account_Name]
    when: record.Stage == "Closed Won"
    steps:
      - id: contact
        action: books.get_records
        with:
          entity: contacts
          search: { contact_name: "${record.Account_Name.name}" }
      - id: new_contact
        when: len(steps.contact.contacts) == 0
        action: books.create_record
        with: { entity: contacts, data: { contact_name: "${record.Account_Name.name}" } }
      - id: invoice
        action: books.create_record
        with:
          entity: invoices
          data:
            customer_id: "${len(steps.contact.contacts) > 0 ? steps.contact.contacts[0].contact_id : steps.new_contact.contact.contact_id}"
            reference_number: "CRM-DEAL-${event.record_id}"
            line_items:
              - { name: "${record.Deal_Name}", rate: "${record.Amount}", quantity: 1 }
      - id: writeback
        action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Invoice_Number: "${steps.invoice.invoice.invoice_number}" } }
`

type staticRules struct{ set *rules.Set }

func (s staticRules) Current() *rules.Set { return s.set }

type fixture struct {
	fake    *zohotest.Server
	env     *eventstest.Env
	dlq     *worker.DLQ
	journal *worker.Journal
	dealID  string
	orgID   string
	handled sync.Map
	logs    testutil.SyncBuffer
}

func setup(t *testing.T, rulesYAML string, fakeOpts ...zohotest.Option) (*fixture, func()) {
	t.Helper()
	return setupWith(t, rulesYAML, nil, fakeOpts...)
}

// setupWith is setup with extra options for the Zoho client.
func setupWith(t *testing.T, rulesYAML string, clientOpts []zoho.Option, fakeOpts ...zohotest.Option) (*fixture, func()) {
	t.Helper()
	fx := &fixture{fake: zohotest.NewServer(fakeOpts...), env: eventstest.Start(t)}
	t.Cleanup(fx.fake.Close)
	cr := fx.fake.Credentials()
	fx.orgID = cr.OrgID
	client, err := zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		AccountsURL: fx.fake.URL(), BooksOrgID: cr.OrgID},
		append([]zoho.Option{zoho.WithRetryPolicy(zoho.RetryPolicy{MaxRetries: 1, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})},
			clientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	acct := fx.fake.CRMInsert("Accounts", map[string]any{"Account_Name": "Bowman & Co"})
	fx.dealID = fx.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "Bowman & Co – Annual licence", "Stage": "Closed Won",
		"Amount": 1200, "Account_Name": map[string]any{"id": acct, "name": "Bowman & Co"}})

	set, err := rules.Parse("rules.yaml", []byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	journal, err := worker.OpenJournal(ctx, fx.env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fx.journal = journal
	loops, err := engine.OpenLoopGuard(ctx, fx.env.JS, engine.LoopGuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(fx.env.JS, fx.env.Stream)
	fx.dlq, err = worker.OpenDLQ(ctx, fx.env.JS, worker.DLQConfig{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Rules: staticRules{set}, Actors: engine.StaticActors{"default": client},
		Loops: loops, Logger: slog.New(slog.NewTextHandler(&fx.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
		err := eng.Handle(ctx, m)
		if err == nil {
			fx.handled.Store(m.Envelope.ID, true)
		}
		return err
	})
	r, err := worker.NewRunner(worker.Config{JS: fx.env.JS, Stream: fx.env.Stream, Handler: h, DeadLetter: fx.dlq, Journal: journal,
		Concurrency: 4, RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Consumer: events.ConsumerConfig{MaxDeliver: 5}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(runCtx); close(done) }()
	return fx, func() { cancel(); <-done }
}

func (fx *fixture) publishDealUpdate(t *testing.T, id string) {
	t.Helper()
	_, err := events.NewPublisher(fx.env.JS, fx.env.Stream).Publish(context.Background(), []*events.Envelope{{
		ID: id, Source: events.SourceCRMNotify, Connection: "default", Module: "Deals", Operation: events.OpUpdate,
		RecordID: fx.dealID, ChangedFields: []string{"Stage"}, ReceivedAt: time.Now().UTC(),
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDealWonCreatesOneInvoiceAndWritesBack(t *testing.T) {
	fx, stop := setup(t, dealWonRules)
	defer stop()
	fx.publishDealUpdate(t, "ev-won-1")
	waitUntil(t, "invoice number written back", func() bool {
		d, _ := fx.fake.CRMRecord("Deals", fx.dealID)
		return d["Invoice_Number"] != nil
	})
	invoices := fx.fake.BooksRecords(fx.orgID, "invoices")
	contacts := fx.fake.BooksRecords(fx.orgID, "contacts")
	if len(invoices) != 1 || len(contacts) != 1 {
		t.Fatalf("%d invoices, %d contacts; want 1 and 1", len(invoices), len(contacts))
	}
	inv := invoices[0]
	if inv["reference_number"] != "CRM-DEAL-"+fx.dealID || inv["customer_id"] != contacts[0]["contact_id"] {
		t.Fatalf("invoice %v", inv)
	}
	deal, _ := fx.fake.CRMRecord("Deals", fx.dealID)
	if deal["Invoice_Number"] != inv["invoice_number"] {
		t.Fatalf("deal invoice number %v, invoice %v", deal["Invoice_Number"], inv["invoice_number"])
	}
	// The write-back fired no Zoho automation (loop-safe default).
	puts := fx.fake.CallsTo(http.MethodPut, "/crm/v8/Deals")
	if len(puts) != 1 || !strings.Contains(string(puts[0].Body), `"trigger":[]`) {
		t.Fatalf("write-back calls: %d, body %s", len(puts), firstBody(puts))
	}
}

// The write-back fails for a while (Zoho 500s beyond the client's own
// retries): the event is redelivered, and the journal keeps the contact and
// the invoice from being created again.
func TestRedeliveryNeverRepeatsAcceptedSteps(t *testing.T) {
	fx, stop := setup(t, dealWonRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPut, PathPrefix: "/crm/v8/Deals", Status: 500, Times: 5})
	fx.publishDealUpdate(t, "ev-won-2")
	waitUntil(t, "event handled after retries", func() bool { _, ok := fx.handled.Load("ev-won-2"); return ok })
	if n := len(fx.fake.BooksRecords(fx.orgID, "invoices")); n != 1 {
		t.Fatalf("%d invoices after redeliveries, want exactly 1", n)
	}
	if n := len(fx.fake.CallsTo(http.MethodPost, "/books/v3/invoices")); n != 1 {
		t.Fatalf("invoice create sent %d times", n)
	}
	if n := len(fx.fake.BooksRecords(fx.orgID, "contacts")); n != 1 {
		t.Fatalf("%d contacts", n)
	}
}

// A permanent Zoho refusal dead-letters the event with the rule and step,
// and a replay after the cause is fixed completes it without repeating the
// steps that had succeeded.
func TestPermanentFailureDeadLettersThenReplays(t *testing.T) {
	fx, stop := setup(t, dealWonRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/books/v3/invoices", Status: 400,
		Body: `{"code":1001,"message":"Invoice number already exists."}`})
	fx.publishDealUpdate(t, "ev-won-3")
	var dl *worker.DeadLetter
	waitUntil(t, "dead letter", func() bool {
		d, err := fx.dlq.Get(context.Background(), "ev-won-3")
		dl = d
		return err == nil
	})
	if dl.Rule != "deal-won-invoice" || dl.Step != "invoice" || dl.Action != "books.create_record" || !dl.Permanent || !strings.Contains(dl.Error, "1001") {
		t.Fatalf("dead letter %+v", dl)
	}
	fx.fake.ClearFaults()
	if err := fx.dlq.Replay(context.Background(), "ev-won-3"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "replayed event done", func() bool { _, ok := fx.handled.Load("ev-won-3"); return ok })
	if n := len(fx.fake.CallsTo(http.MethodPost, "/books/v3/contacts")); n != 1 {
		t.Fatalf("contact created %d times across the replay", n)
	}
	if n := len(fx.fake.BooksRecords(fx.orgID, "invoices")); n != 1 {
		t.Fatalf("%d invoices", n)
	}
}

func firstBody(calls []zohotest.Call) string {
	if len(calls) == 0 {
		return ""
	}
	return string(calls[0].Body)
}

// A 429 storm longer than the client's own retries and than the event's
// deliveries, on the last step: the worker waits it out in-process, no dead
// letter, and the steps done before the storm are not repeated.
func TestRateLimitStormDrainsWithoutDeadLetter(t *testing.T) {
	fx, stop := setup(t, dealWonRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPut, PathPrefix: "/crm/v8/Deals", Status: http.StatusTooManyRequests, Times: 20})
	fx.publishDealUpdate(t, "ev-storm-1")
	waitUntil(t, "event handled after the storm", func() bool { _, ok := fx.handled.Load("ev-storm-1"); return ok })
	if n := len(fx.fake.CallsTo(http.MethodPut, "/crm/v8/Deals")); n != 21 {
		t.Fatalf("write-back PUTs: %d, want 20 refused + 1 accepted", n)
	}
	if n := len(fx.fake.CallsTo(http.MethodPost, "/books/v3/invoices")); n != 1 {
		t.Fatalf("invoice created %d times across the in-process retries", n)
	}
	if n := len(fx.fake.BooksRecords(fx.orgID, "invoices")); n != 1 {
		t.Fatalf("%d invoices", n)
	}
	if _, err := fx.dlq.Get(context.Background(), "ev-storm-1"); err == nil {
		t.Fatal("a transient storm was dead-lettered")
	}
}
