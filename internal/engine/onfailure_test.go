package engine_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const skipRules = `
version: 1
rules:
  - name: best-effort-stamp
    on: { source: crm.notify, module: Deals, operations: [update] }
    steps:
      - id: stamp
        action: crm.update_record
        on_failure: skip
        with: { module: Deals, id: "${event.record_id}", data: { Description: "stamped" } }
`

// on_failure: skip is for Zoho refusing a step. A 503 is not a refusal:
// the event is retried and the step done, not dropped.
func TestSkipDoesNotDropATransientFailure(t *testing.T) {
	fx, stop := setup(t, skipRules)
	defer stop()
	fx.fake.Inject(zohotest.Fault{Method: http.MethodPut, PathPrefix: "/crm/v8/Deals", Status: http.StatusServiceUnavailable, Times: 3})
	_, err := events.NewPublisher(fx.env.JS, fx.env.Stream).Publish(context.Background(), []*events.Envelope{{
		ID: "ev-skip-1", Source: events.SourceCRMNotify, Connection: "default", Module: "Deals", Operation: events.OpUpdate,
		RecordID: fx.dealID, ReceivedAt: time.Now().UTC(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-skip-1"); return ok })
	if d, _ := fx.fake.CRMRecord("Deals", fx.dealID); d["Description"] != "stamped" {
		t.Fatalf("the step was dropped after a 503: Description %v", d["Description"])
	}
}
