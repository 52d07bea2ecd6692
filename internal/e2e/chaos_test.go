package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// chaosRules creates one Books invoice per event, its reference_number the
// event id: the one side effect per event the fake can count, and the key
// the engine uses to resolve a create left in doubt by a crash.
func chaosRules(customerID, itemID string) string {
	return fmt.Sprintf(`
version: 1
rules:
  - name: invoice-per-event
    on: { source: crm.notify, module: Deals, operation: update }
    steps:
      - id: invoice
        action: books.create_record
        with:
          entity: invoices
          data:
            customer_id: %q
            reference_number: "${event.id}"
            line_items: [ { item_id: %q, rate: 10, quantity: 1 } ]
`, customerID, itemID)
}

func writeRules(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// dealEvent is a CRM notification event for one Deal.
func dealEvent(id, recordID string) *events.Envelope {
	return &events.Envelope{ID: id, Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
		Operation: events.OpUpdate, RecordID: recordID, ChangedFields: []string{"Stage"}, ReceivedAt: time.Now().UTC()}
}

// invoicesByRef counts the fake's invoices per reference number.
func invoicesByRef(fake *zohotest.Server, orgID string) map[string]int {
	got := map[string]int{}
	for _, inv := range fake.BooksRecords(orgID, "invoices") {
		ref, _ := inv["reference_number"].(string)
		got[ref]++
	}
	return got
}

// 1,000 events flow in while the worker is SIGKILLed at random moments and
// restarted each time: afterwards every event has exactly one invoice on the
// fake Zoho (none lost, none doubled) and nothing was dead-lettered.
func TestWorkerSIGKILLedRepeatedlyWhile1000EventsFlow(t *testing.T) {
	const total, records, kills = 1000, 40, 8
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	n := startNATS(t)
	ctx := context.Background()

	rulesFile := writeRules(t, chaosRules(demo.BooksContactID, demo.BooksItemID))
	args := append(workerArgs(n), "-rules", rulesFile, "-books-rate", "0", "-concurrency", "16", "-log-level", "warn")
	w := startProc(t, "worker", zohoEnv(fake), args...)

	// Events arrive over about eight seconds, in batches, spread over
	// records so partitions and per-record lanes are all busy.
	pub := events.NewPublisher(n.js, events.StreamConfig{})
	var wg sync.WaitGroup
	wg.Add(1)
	pubErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		const batch = 25
		for i := 0; i < total; i += batch {
			envs := make([]*events.Envelope, 0, batch)
			for j := i; j < i+batch && j < total; j++ {
				envs = append(envs, dealEvent(fmt.Sprintf("chaos-%04d", j), fmt.Sprintf("57257670000%08d", j%records)))
			}
			if _, err := pub.Publish(ctx, envs); err != nil {
				pubErr <- err
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	// A fixed seed keeps the kill schedule reproducible: each worker is
	// killed after a random number of further invoices (plus a random few
	// milliseconds), so kills land mid-flow: during Zoho calls, between a
	// create and its journal entry, between ack and the next fetch.
	rng := rand.New(rand.NewPCG(7, 1000))
	count := func() int { return len(fake.BooksRecords(demo.OrgID, "invoices")) }
	done := func() bool { return count() >= total }
	procs := []*proc{w}
	killed := 0
	for ; killed < kills && !done(); killed++ {
		target := count() + 1 + rng.IntN(total/kills)
		waitFor(t, "progress before the next kill", 30*time.Second, func() bool { return count() >= target }, w)
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		w.kill()
		t.Logf("kill %d: %d invoices so far", killed+1, count())
		w = startProc(t, "worker", zohoEnv(fake), args...)
		procs = append(procs, w)
	}
	wg.Wait()
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	waitFor(t, "an invoice for every event", 45*time.Second, done, w)
	// Let any redelivery still pending run out, so a late double shows.
	time.Sleep(3 * time.Second)
	w.stop(t)

	byRef := invoicesByRef(fake, demo.OrgID)
	var missing, doubled []string
	for i := range total {
		ref := fmt.Sprintf("chaos-%04d", i)
		switch c := byRef[ref]; {
		case c == 0:
			missing = append(missing, ref)
		case c > 1:
			doubled = append(doubled, fmt.Sprintf("%s×%d", ref, c))
		}
	}
	if len(missing) > 0 || len(doubled) > 0 || len(byRef) != total {
		t.Fatalf("after %d kills: %d distinct references; missing %v; doubled %v", killed, len(byRef), missing, doubled)
	}
	dlq, err := worker.OpenDLQ(ctx, n.js, worker.DLQConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for dl, err := range dlq.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("dead letter: %s %s", dl.Event.ID, dl.Error)
	}
	posts := len(fake.CallsTo(http.MethodPost, "/books/v3/invoices"))
	searches := 0
	for _, c := range fake.CallsTo(http.MethodGet, "/books/v3/invoices") {
		if c.Query.Has("reference_number") {
			searches++
		}
	}
	recovered := 0
	for _, p := range procs {
		recovered += strings.Count(p.out.String(), "in-doubt step resolved")
	}
	t.Logf("%d kills, %d invoices, %d create calls, %d in-doubt lookups, %d creates found by reference after a kill",
		killed, total, posts, searches, recovered)
	if killed == 0 {
		t.Fatal("the worker was never killed: the test proved nothing")
	}
}
