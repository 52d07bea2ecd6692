package engine_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const attachRules = `
version: 1
rules:
  - name: deal-welcome-note
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - id: note
        action: crm.add_attachment
        with: { module: Deals, id: "${event.record_id}", file_name: welcome.txt, content: "Welcome aboard" }
      - id: link
        action: crm.add_attachment
        with: { module: Deals, id: "${event.record_id}", url: "https://example.com/terms", title: Terms }
`

// Zoho stores an attachment but its answer never reaches the worker (the
// client gives up waiting: an ambiguous failure it must not repeat). The
// step is in doubt on the next delivery; the worker finds the attachment by
// name and size, and the link by its URL, instead of uploading them again.
func TestInDoubtAttachmentIsFoundNotUploadedTwice(t *testing.T) {
	fx, stop := setupWith(t, attachRules, []zoho.Option{zoho.WithHTTPClient(&http.Client{Timeout: 300 * time.Millisecond})})
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/crm/v8/Deals/" + fx.dealID + "/Attachments",
		AnswerDelay: time.Second, Times: 2})
	fx.publishDealUpdate(t, "ev-attach-1")
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-attach-1"); return ok })
	atts := fx.fake.CRMAttachments("Deals", fx.dealID)
	if len(atts) != 2 {
		t.Fatalf("%d attachments on the Deal, want the file and the link once each: %+v", len(atts), atts)
	}
	if n := len(fx.fake.CallsTo(http.MethodPost, "/crm/v8/Deals/"+fx.dealID+"/Attachments")); n != 2 {
		t.Fatalf("%d uploads sent, want 2 (one per step, none repeated)", n)
	}
	if n := len(fx.fake.CallsTo(http.MethodGet, "/crm/v8/Deals/"+fx.dealID+"/Attachments")); n < 2 {
		t.Fatalf("%d attachment lookups, want one per in-doubt step", n)
	}
}

const removeRules = `
version: 1
rules:
  - name: lost-deal-cleanup
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - id: find_invoice
        action: books.get_records
        with: { entity: invoices, search: { reference_number: "CRM-DEAL-${event.record_id}" } }
      - id: drop_invoice
        action: books.remove_record
        with: { entity: invoices, id: "${steps.find_invoice.invoices[0].invoice_id}" }
      - id: drop_deal
        action: crm.remove_record
        with: { module: Deals, id: "${event.record_id}" }
`

// Zoho deletes the record but its answer never reaches the worker. Sent
// again, the delete would fail (Zoho refuses to delete what is gone) and
// dead-letter an event whose work is done; the worker finds the record
// gone and records the step as done instead.
func TestInDoubtDeleteThatLandedIsNotDeadLettered(t *testing.T) {
	fx, stop := setupWith(t, removeRules, []zoho.Option{zoho.WithHTTPClient(&http.Client{Timeout: 300 * time.Millisecond})})
	defer stop()
	invoice := fx.fake.BooksInsert(fx.orgID, "invoices", map[string]any{"customer_name": "Bowman & Co", "total": 1200,
		"reference_number": "CRM-DEAL-" + fx.dealID})
	fx.fake.Inject(zohotest.Fault{Method: http.MethodDelete, PathPrefix: "/books/v3/invoices/" + invoice, AnswerDelay: time.Second, Times: 1})
	fx.fake.Inject(zohotest.Fault{Method: http.MethodDelete, PathPrefix: "/crm/v8/Deals", AnswerDelay: time.Second, Times: 1})
	fx.publishDealUpdate(t, "ev-remove-1")
	deadLettered := func() bool { _, err := fx.dlq.Get(context.Background(), "ev-remove-1"); return err == nil }
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-remove-1"); return ok || deadLettered() })
	if deadLettered() {
		d, _ := fx.dlq.Get(context.Background(), "ev-remove-1")
		t.Fatalf("dead-lettered although both deletes happened: %+v", d)
	}
	if _, ok := fx.fake.CRMRecord("Deals", fx.dealID); ok {
		t.Fatal("the Deal still exists")
	}
	if _, ok := fx.fake.BooksRecord(fx.orgID, "invoices", invoice); ok {
		t.Fatal("the invoice still exists")
	}
	if n := len(fx.fake.CallsTo(http.MethodDelete, "/crm/v8/Deals")); n != 1 {
		t.Fatalf("%d CRM deletes sent, want 1 (the in-doubt one not repeated)", n)
	}
	if n := len(fx.fake.CallsTo(http.MethodDelete, "/books/v3/invoices/"+invoice)); n != 1 {
		t.Fatalf("%d Books deletes sent, want 1", n)
	}
}

const noteRules = `
version: 1
rules:
  - name: deal-note
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - id: note
        action: crm.raw_request
        in_doubt: dead_letter
        with:
          method: POST
          path: /Notes
          json: { data: [ { Note_Title: Won, Parent_Id: { module: { api_name: Deals }, id: "${event.record_id}" } } ] }
      - id: stamp
        action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "noted" } }
`

// A raw POST whose answer was lost cannot be looked up: with in_doubt:
// dead_letter the worker sends nothing more and dead-letters the event with
// the reason; the operator's decision then finishes it, sending the POST
// again only when told it did not happen.
func TestInDoubtDeadLetterPolicyWaitsForAHuman(t *testing.T) {
	for _, decision := range []string{worker.InDoubtDone, worker.InDoubtResend} {
		t.Run(decision, func(t *testing.T) {
			fx, stop := setupWith(t, noteRules, []zoho.Option{zoho.WithHTTPClient(&http.Client{Timeout: 300 * time.Millisecond})})
			defer stop()
			fx.fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/crm/v8/Notes", AnswerDelay: time.Second, Times: 1})
			ctx := context.Background()
			id := "ev-note-" + decision
			fx.publishDealUpdate(t, id)
			var dl *worker.DeadLetter
			waitUntil(t, "dead letter", func() bool { var err error; dl, err = fx.dlq.Get(ctx, id); return err == nil })
			if !dl.Permanent || dl.Step != "note" || !strings.Contains(dl.Error, "in doubt") || !strings.Contains(dl.Error, "-in-doubt done "+id) {
				t.Fatalf("dead letter %+v: want a permanent in-doubt failure of step note telling what to run", dl)
			}
			if n := len(fx.fake.CallsTo(http.MethodPost, "/crm/v8/Notes")); n != 1 {
				t.Fatalf("%d POSTs before the decision, want 1 (the in-doubt one, not repeated)", n)
			}
			if err := fx.dlq.Replay(ctx, id); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "dead-lettered again without a decision", func() bool { d, err := fx.dlq.Get(ctx, id); return err == nil && d.DeadAt.After(dl.DeadAt) })
			if err := fx.dlq.ReplayInDoubt(ctx, fx.journal, id, decision); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load(id); return ok })
			want := map[string]int{worker.InDoubtDone: 1, worker.InDoubtResend: 2}[decision]
			if n := len(fx.fake.CallsTo(http.MethodPost, "/crm/v8/Notes")); n != want {
				t.Fatalf("%d POSTs after deciding %q, want %d", n, decision, want)
			}
			if d, _ := fx.fake.CRMRecord("Deals", fx.dealID); d["Description"] != "noted" {
				t.Fatalf("the step after the in-doubt one did not run: %v", d["Description"])
			}
			if err := fx.dlq.ReplayInDoubt(ctx, fx.journal, id, decision); !errors.Is(err, worker.ErrNotFound) {
				t.Fatalf("second decision: %v, want ErrNotFound (no dead letter left)", err)
			}
		})
	}
}

// A step Zoho refused (4xx) provably did nothing: it is not in doubt, so a
// plain replay after fixing the cause sends it, even with in_doubt:
// dead_letter.
func TestRefusedStepIsNotInDoubt(t *testing.T) {
	fx, stop := setup(t, noteRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/crm/v8/Notes", Status: http.StatusBadRequest, Times: 1})
	ctx := context.Background()
	fx.publishDealUpdate(t, "ev-refused")
	var dl *worker.DeadLetter
	waitUntil(t, "dead letter", func() bool { var err error; dl, err = fx.dlq.Get(ctx, "ev-refused"); return err == nil })
	if strings.Contains(dl.Error, "in doubt") {
		t.Fatalf("a refused step was taken for in doubt: %s", dl.Error)
	}
	if err := fx.dlq.ReplayInDoubt(ctx, fx.journal, "ev-refused", worker.InDoubtResend); !errors.Is(err, worker.ErrNotInDoubt) {
		t.Fatalf("in-doubt decision on a refused step: %v, want ErrNotInDoubt", err)
	}
	if err := fx.dlq.Replay(ctx, "ev-refused"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-refused"); return ok })
	if n := len(fx.fake.CallsTo(http.MethodPost, "/crm/v8/Notes")); n != 2 {
		t.Fatalf("%d POSTs, want 2 (refused, then sent on replay)", n)
	}
}
