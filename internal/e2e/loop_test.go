package e2e

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const selfUpdateRules = `
version: 1
rules:
  - name: stamp-deal
    on: { source: crm.notify, module: Deals, operation: update }
    record: { fields: [Deal_Name, Stage] }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "stage seen by zohook: ${record.Stage}" } }
`

type fixedRules struct{ s *rules.Set }

func (f fixedRules) Current() *rules.Set { return f.s }

// A rule that updates the very Deal that triggered it: Zoho notifies zohook
// of that write too, and the loop guard makes it run once, not forever.
// Everything is real: the fake Zoho POSTs its notification callbacks over
// HTTP to the receiver, which stores them in JetStream for the worker.
func TestSelfUpdatingRuleRunsOnce(t *testing.T) {
	ctx := context.Background()
	fake := zohotest.NewServer(zohotest.WithNotifications(true))
	t.Cleanup(fake.Close)
	fake.SeedDemo()
	env := eventstest.Start(t)

	const token = "loop-test-channel-token"
	srv, err := receiver.New(receiver.Config{Publisher: events.NewPublisher(env.JS, env.Stream), CRMTokens: receiver.NewStaticTokens([]string{token})})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(ctx) })

	cr := fake.Credentials()
	client, err := zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		AccountsURL: fake.URL(), BooksOrgID: cr.OrgID})
	if err != nil {
		t.Fatal(err)
	}
	affected := true
	if _, _, err := client.CRM.EnableChannel(ctx, zoho.Channel{ChannelID: "1000000068001", Events: []string{"Deals.edit"},
		NotifyURL: "http://" + l.Addr().String() + "/zoho/crm/notify", Token: token, ReturnAffectedFieldValues: &affected}); err != nil {
		t.Fatal(err)
	}

	set, err := rules.Parse("rules.yaml", []byte(selfUpdateRules))
	if err != nil {
		t.Fatal(err)
	}
	journal, _ := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	loops, _ := engine.OpenLoopGuard(ctx, env.JS, engine.LoopGuardConfig{})
	eng, err := engine.New(engine.Config{Rules: fixedRules{set}, Actors: engine.StaticActors{"default": client},
		Loops: loops, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	runner, err := worker.NewRunner(worker.Config{JS: env.JS, Stream: env.Stream, Journal: journal, Concurrency: 2,
		Handler: worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
			err := eng.Handle(ctx, m)
			if err == nil {
				handled.Add(1)
			}
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = runner.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()

	// A user moves the deal on (all Zoho automations on, as in the UI).
	if _, _, err := client.CRM.UpdateRecord(ctx, "Deals", demoDeal, zoho.Record{"Stage": "Negotiation/Review"}, nil); err != nil {
		t.Fatal(err)
	}
	// Two notifications: the user's change, then zohook's own write.
	waitFor(t, "both notifications handled", 20*time.Second, func() bool { return handled.Load() >= 2 })
	zohookWrites := 0
	for _, c := range fake.CallsTo(http.MethodPut, "/crm/v8/Deals") {
		if len(c.Body) > 0 && strings.Contains(string(c.Body), "stage seen by zohook") {
			zohookWrites++
		}
	}
	if zohookWrites != 1 {
		t.Fatalf("the rule wrote %d times, want exactly once", zohookWrites)
	}
	if n := len(fake.Deliveries()); n != 2 {
		t.Fatalf("%d notifications delivered, want 2 (a loop would keep adding)", n)
	}
	d, _ := fake.CRMRecord("Deals", demoDeal)
	if d["Description"] != "stage seen by zohook: Negotiation/Review" {
		t.Fatalf("deal description %v", d["Description"])
	}
}
