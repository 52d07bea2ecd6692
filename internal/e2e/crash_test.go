package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const (
	demoDeal = "5725767000000524157"
	demoItem = "982000000030049" // vars.books_item_id in rules.yaml
)

func workerArgs(n *natsEnv) []string {
	return []string{"-nats-url", n.url, "-rules", "rules.yaml", "-admin-addr", "127.0.0.1:0",
		"-log-format", "text", "-shutdown-grace", "5s"}
}

// The worker is SIGKILLed while Zoho is creating the invoice (the request
// reached Zoho, the answer never came back: the one window the journal
// cannot close by itself). The restarted worker finds the invoice by its
// reference number instead of creating a second one, and finishes the rule.
func TestWorkerKilledMidStepCreatesExactlyOneInvoice(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	fake.BooksInsert(demo.OrgID, "items", map[string]any{"item_id": demoItem, "name": "Annual licence", "rate": 1200})
	n := startNATS(t)
	ctx := context.Background()

	// Zoho takes 1.5 s to create the invoice: long enough to kill the worker mid-call.
	fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/books/v3/invoices", AnswerDelay: 1500 * time.Millisecond, Times: 1})
	w1 := startProc(t, "worker", zohoEnv(fake), workerArgs(n)...)

	ev := &events.Envelope{ID: "ev-kill-1", Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
		Operation: events.OpUpdate, RecordID: demoDeal, ChangedFields: []string{"Stage"}, ReceivedAt: time.Now().UTC()}
	scfg := events.StreamConfig{}
	if _, err := events.NewPublisher(n.js, scfg).Publish(ctx, []*events.Envelope{ev}); err != nil {
		t.Fatal(err)
	}
	journal, err := worker.OpenJournal(ctx, n.js, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Kill only once the request reached Zoho: the start mark is written
	// just before the call (rate limiter and token come in between), and a
	// kill before the call is a different, easier case.
	waitFor(t, "the invoice step to start and its request to reach Zoho", 20*time.Second, func() bool {
		r, _ := journal.Get(ctx, ev.ID)
		return r != nil && r.Steps["deal-won-create-invoice/invoice"] != nil && r.Steps["deal-won-create-invoice/invoice"].State == worker.StepStarted && len(fake.CallsTo(http.MethodPost, "/books/v3/invoices")) == 1
	}, w1)
	w1.kill()

	// Zoho finishes creating the invoice although nobody reads the answer.
	waitFor(t, "the fake to create the invoice", 5*time.Second, func() bool {
		return len(fake.BooksRecords(demo.OrgID, "invoices")) == 1
	})
	if d, _ := fake.CRMRecord("Deals", demoDeal); d["Invoice_Number"] != nil {
		t.Fatal("write-back happened before the kill")
	}

	w2 := startProc(t, "worker", zohoEnv(fake), workerArgs(n)...)
	waitFor(t, "the restarted worker to finish the rule", 30*time.Second, func() bool {
		d, _ := fake.CRMRecord("Deals", demoDeal)
		return d["Invoice_Number"] != nil
	}, w2)
	invoices := fake.BooksRecords(demo.OrgID, "invoices")
	if len(invoices) != 1 {
		t.Fatalf("%d invoices, want exactly 1", len(invoices))
	}
	if d, _ := fake.CRMRecord("Deals", demoDeal); d["Invoice_Number"] != invoices[0]["invoice_number"] {
		t.Fatalf("deal has %v, invoice is %v", d["Invoice_Number"], invoices[0]["invoice_number"])
	}
	if n := len(fake.CallsTo(http.MethodPost, "/books/v3/invoices")); n != 1 {
		t.Fatalf("invoice create sent %d times", n)
	}
	w2.stop(t)
}
