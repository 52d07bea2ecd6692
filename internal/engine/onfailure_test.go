package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	fx.publishDealUpdate(t, "ev-skip-1")
	waitUntil(t, "event handled", func() bool { _, ok := fx.handled.Load("ev-skip-1"); return ok })
	if d, _ := fx.fake.CRMRecord("Deals", fx.dealID); d["Description"] != "stamped" {
		t.Fatalf("the step was dropped after a 503: Description %v", d["Description"])
	}
}

// The same event can arrive again as a new message on its first delivery:
// a duplicate callback after the stream's dedupe window, or a consumer
// recreated from the start of the stream. Its steps must not run again.
func TestSameEventAsANewMessageRepeatsNothing(t *testing.T) {
	fx, stop := setup(t, attachRules)
	defer stop()
	fx.publishDealUpdate(t, "ev-again-1")
	waitUntil(t, "first handling", func() bool { _, ok := fx.handled.Load("ev-again-1"); return ok })
	fx.handled.Delete("ev-again-1")
	e := &events.Envelope{Version: events.EnvelopeVersion, ID: "ev-again-1", Source: events.SourceCRMNotify, Connection: "default",
		Module: "Deals", Operation: events.OpUpdate, RecordID: fx.dealID, ChangedFields: []string{"Stage"}, ReceivedAt: time.Now().UTC()}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(events.Subject(e, fx.env.Stream.Partitions))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "past-the-dedupe-window") // a new message, not a replay
	if _, err := fx.env.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "second handling", func() bool { _, ok := fx.handled.Load("ev-again-1"); return ok })
	if n := len(fx.fake.CRMAttachments("Deals", fx.dealID)); n != 2 {
		t.Fatalf("%d attachments, want 2: the second message repeated the journaled steps", n)
	}
}
