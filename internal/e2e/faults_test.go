package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// deadLetters lists the DLQ through a connection of the test's own.
func deadLetters(t *testing.T, js jetstream.JetStream) []*worker.DeadLetter {
	t.Helper()
	ctx := context.Background()
	dlq, err := worker.OpenDLQ(ctx, js, worker.DLQConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*worker.DeadLetter
	for dl, err := range dlq.List(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, dl)
	}
	return out
}

// exactlyOne fails unless every id has exactly one invoice.
func exactlyOne(t *testing.T, fake *zohotest.Server, orgID string, ids []string) {
	t.Helper()
	byRef := invoicesByRef(fake, orgID)
	for _, id := range ids {
		if byRef[id] != 1 {
			t.Errorf("event %s has %d invoices, want 1", id, byRef[id])
		}
	}
}

func noSecretsIn(t *testing.T, fake *zohotest.Server, extra []string, procs ...*proc) {
	t.Helper()
	cr := fake.Credentials()
	secrets := append([]string{cr.ClientSecret, cr.RefreshToken}, extra...)
	for _, p := range procs {
		out := p.out.String()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s output contains a configured secret (%s…)", p.cmd.Path, s[:4])
			}
		}
	}
}

// NATS goes away entirely: the receiver answers 503 with Retry-After (and
// /readyz fails) instead of losing what Zoho sends; when the same server
// comes back on the same address and store, the receiver recovers by
// itself, the worker reconnects, and every notification that was answered
// 200 (before the outage, or on Zoho's retry after it) is acted on once.
func TestNATSDownReceiver503ThenBothRecover(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	dataDir, natsAddr := t.TempDir(), freeAddr(t)
	startEmb := func() *events.Embedded {
		emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: dataDir, Listen: natsAddr})
		if err != nil {
			t.Fatal(err)
		}
		return emb
	}
	emb := startEmb()
	t.Cleanup(func() { emb.Shutdown() })
	url := emb.ClientURL()

	const token = "down-notify-token-8Hx"
	addr := freeAddr(t)
	recv := startProc(t, "receiver", []string{"ZOHOOK_CRM_NOTIFY_TOKENS=" + token},
		"-addr", addr, "-nats-url", url, "-publish-timeout", "1s", "-log-format", "text", "-ack-wait", "2s", "-pinned-ttl", "2s")
	rulesFile := writeRules(t, chaosRules(demo.BooksContactID, demo.BooksItemID))
	w := startProc(t, "worker", zohoEnv(fake), "-nats-url", url, "-rules", rulesFile, "-admin-addr", "127.0.0.1:0",
		"-books-rate", "0", "-log-format", "text", "-shutdown-grace", "5s")
	base := "http://" + addr
	waitFor(t, "receiver ready", 20*time.Second, httpReady(base+"/readyz"), recv)
	poster := newNotifyPoster(base, token)

	for i := range 5 {
		if code := poster.post(i, fmt.Sprintf("57257670002%08d", i)); code != http.StatusOK {
			t.Fatalf("before the outage: %d", code)
		}
	}
	waitFor(t, "the first events processed", 20*time.Second, func() bool { return len(fake.BooksRecords(demo.OrgID, "invoices")) == 5 }, w)

	emb.Shutdown()
	for i := 5; i < 10; i++ {
		resp := poster.post(i, fmt.Sprintf("57257670002%08d", i))
		if resp != http.StatusServiceUnavailable {
			t.Fatalf("notification %d during the outage answered %d, want 503", i, resp)
		}
	}
	if httpReady(base + "/readyz")() {
		t.Fatal("/readyz is 200 while NATS is down")
	}
	// Retry-After tells Zoho when to come back.
	resp, err := http.Post(base+"/zoho/crm/notify", "application/json", strings.NewReader(
		`{"module":"Deals","ids":["5725767000299999999"],"operation":"update","channel_id":"1000000068001","token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("during the outage: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	time.Sleep(2 * time.Second) // an outage longer than the publish timeout and the reconnect wait

	emb = startEmb()
	waitFor(t, "receiver ready again", 30*time.Second, httpReady(base+"/readyz"), recv)
	// Zoho retries what got 503; a few more arrive.
	for i := 5; i < 15; i++ {
		if code := poster.post(i, fmt.Sprintf("57257670002%08d", i)); code != http.StatusOK {
			t.Fatalf("after recovery: notification %d answered %d", i, code)
		}
	}
	accepted := poster.acceptedIDs()
	if len(accepted) != 15 {
		t.Fatalf("%d events accepted, want 15", len(accepted))
	}
	waitFor(t, "every accepted event processed after NATS returned", 30*time.Second, func() bool {
		return len(fake.BooksRecords(demo.OrgID, "invoices")) >= 15
	}, recv, w)
	time.Sleep(time.Second)
	ids := make([]string, 0, len(accepted))
	for id := range accepted {
		ids = append(ids, id)
	}
	exactlyOne(t, fake, demo.OrgID, ids)
	if n := len(fake.BooksRecords(demo.OrgID, "invoices")); n != 15 {
		t.Errorf("%d invoices, want 15", n)
	}
	w.stop(t)
	recv.stop(t)
	noSecretsIn(t, fake, []string{token}, recv, w)
}

// faultRules: Deals events create an invoice (transient faults only);
// Leads events create a Books contact, which this fake refuses for good.
func faultRules(customerID, itemID string) string {
	return chaosRules(customerID, itemID) + `
  - name: contact-per-lead
    on: { source: crm.notify, module: Leads, operation: update }
    steps:
      - id: contact
        action: books.create_record
        with:
          entity: contacts
          data: { contact_name: "lead ${event.record_id}", contact_type: customer }
`
}

func publishEvents(t *testing.T, js jetstream.JetStream, envs []*events.Envelope) {
	t.Helper()
	if _, err := events.NewPublisher(js, events.StreamConfig{}).Publish(context.Background(), envs); err != nil {
		t.Fatal(err)
	}
}

// Zoho misbehaves for a while: 429 with Retry-After, then 500s, then
// answers too slowly for the worker's attempt timeout. Every event still
// completes once Zoho recovers, exactly once, and none is dead-lettered;
// the events that meet a permanent refusal (400) are dead-lettered at
// once, with Zoho's reason.
func TestZohoTransientFaultsCompletePermanentDeadLettered(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	n := startNATS(t)
	const deals, leads = 20, 3
	post := http.MethodPost
	fake.Inject(zohotest.Fault{Method: post, PathPrefix: "/books/v3/invoices", Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 6})
	fake.Inject(zohotest.Fault{Method: post, PathPrefix: "/books/v3/invoices", Status: http.StatusInternalServerError, Times: 4})
	fake.Inject(zohotest.Fault{Method: post, PathPrefix: "/books/v3/invoices", Status: http.StatusServiceUnavailable, Times: 2})
	fake.Inject(zohotest.Fault{Method: post, PathPrefix: "/books/v3/invoices", Delay: 3 * time.Second, Times: 3})
	fake.Inject(zohotest.Fault{Method: post, PathPrefix: "/books/v3/contacts", Status: http.StatusBadRequest,
		Body: `{"code":4,"message":"Please enter a valid contact name."}`})

	rulesFile := writeRules(t, faultRules(demo.BooksContactID, demo.BooksItemID))
	w := startProc(t, "worker", zohoEnv(fake), append(workerArgs(n), "-rules", rulesFile, "-books-rate", "0",
		"-event-timeout", "2s", "-concurrency", "8")...)

	var envs []*events.Envelope
	var dealIDs []string
	for i := range deals {
		id := fmt.Sprintf("fault-deal-%02d", i)
		dealIDs = append(dealIDs, id)
		envs = append(envs, dealEvent(id, fmt.Sprintf("57257670003%08d", i)))
	}
	for i := range leads {
		ev := dealEvent(fmt.Sprintf("fault-lead-%d", i), fmt.Sprintf("57257670004%08d", i))
		ev.Module = "Leads"
		envs = append(envs, ev)
	}
	publishEvents(t, n.js, envs)

	waitFor(t, "every deal invoiced after Zoho recovers", 60*time.Second, func() bool {
		return len(fake.BooksRecords(demo.OrgID, "invoices")) >= deals
	}, w)
	waitFor(t, "the permanent failures dead-lettered", 20*time.Second, func() bool { return len(deadLetters(t, n.js)) >= leads }, w)
	time.Sleep(2 * time.Second) // a late redelivery would show as a double
	exactlyOne(t, fake, demo.OrgID, dealIDs)

	statuses := map[int]int{}
	for _, c := range fake.CallsTo(post, "/books/v3/invoices") {
		statuses[c.Status]++
	}
	t.Logf("invoice create answers by status: %v", statuses)
	if statuses[http.StatusTooManyRequests] == 0 || statuses[http.StatusInternalServerError] == 0 {
		t.Fatalf("the faults were not exercised: %v", statuses)
	}
	for _, dl := range deadLetters(t, n.js) {
		if dl.Event.Module != "Leads" {
			t.Errorf("transient failure dead-lettered: %s %s", dl.Event.ID, dl.Error)
			continue
		}
		if !dl.Permanent || !strings.Contains(dl.Error, "valid contact name") {
			t.Errorf("dead letter %s: permanent=%v error %q, want Zoho's permanent reason", dl.Event.ID, dl.Permanent, dl.Error)
		}
		if dl.Attempts != 1 {
			t.Errorf("dead letter %s after %d attempts, want 1 (a 400 is not retried)", dl.Event.ID, dl.Attempts)
		}
	}
	if n := len(fake.CallsTo(post, "/books/v3/contacts")); n != leads {
		t.Errorf("%d contact creates for %d lead events: a permanent refusal was retried", n, leads)
	}
	w.stop(t)
	noSecretsIn(t, fake, nil, w)
}

// Zoho Accounts refuses to refresh the access token for a while: events wait and are retried later, none
// is dead-lettered or lost, and all complete once refreshing works again.
//
// The fleet waits -token-retry after a failed refresh before anyone tries
// again (default 1 min, for Zoho's 10 refreshes per 10 minutes); 3 s here.
// While no token can be had, the worker waits in-process until the fleet's
// next refresh attempt (like a rate limit), so no delivery is spent and
// nothing is dead-lettered even with -max-deliver 5.
func TestTokenRefreshRefusedEventsWait(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	n := startNATS(t)
	// Accounts failing (5xx).
	fake.Inject(zohotest.Fault{PathPrefix: "/oauth/v2/token", Status: http.StatusInternalServerError})
	rulesFile := writeRules(t, chaosRules(demo.BooksContactID, demo.BooksItemID))
	w := startProc(t, "worker", zohoEnv(fake), append(workerArgs(n), "-rules", rulesFile, "-books-rate", "0", "-max-deliver", "5", "-token-retry", "3s")...)

	const total = 10
	var envs []*events.Envelope
	var ids []string
	for i := range total {
		id := fmt.Sprintf("refused-%02d", i)
		ids = append(ids, id)
		envs = append(envs, dealEvent(id, fmt.Sprintf("57257670005%08d", i)))
	}
	publishEvents(t, n.js, envs)
	waitFor(t, "refresh attempts refused", 20*time.Second, func() bool { return len(fake.CallsTo("", "/oauth/v2/token")) >= 1 }, w)
	time.Sleep(6 * time.Second) // refused for a while: longer than several retry rounds
	if got := len(fake.BooksRecords(demo.OrgID, "invoices")); got != 0 {
		t.Fatalf("%d invoices created without an access token", got)
	}
	if dl := deadLetters(t, n.js); len(dl) != 0 {
		t.Fatalf("%d events dead-lettered while the token was refused (first: %s)", len(dl), dl[0].Error)
	}
	fake.ClearFaults()
	waitFor(t, "every event done once refreshing works", 90*time.Second, func() bool {
		return len(fake.BooksRecords(demo.OrgID, "invoices")) >= total
	}, w)
	time.Sleep(time.Second)
	exactlyOne(t, fake, demo.OrgID, ids)
	if dl := deadLetters(t, n.js); len(dl) != 0 {
		t.Fatalf("%d events dead-lettered (first: %s)", len(dl), dl[0].Error)
	}
	t.Logf("%d token requests in all", len(fake.CallsTo("", "/oauth/v2/token")))
	w.stop(t)
	noSecretsIn(t, fake, nil, w)
}

// The Books API allows 30 calls per 3 s on the fake (Zoho: 100 per minute,
// scaled down). A burst of events is drained at the client-side pace set
// with -books-rate and the fake never answers 429.
//
// The second case uses the proportions of the worker's defaults (-books-rate
// 90/1m, -books-burst 10 against Zoho's 100/1m): a token bucket lets burst +
// rate×period through in one period, and that sum equals Zoho's limit.
func TestBooksRateLimitBurstDrainsWithoutA429(t *testing.T) {
	const limit, per, total = 30, 3 * time.Second, 75
	for _, tc := range []struct {
		name              string
		clientRate, burst int
	}{{"half the limit", limit / 2, 0}, {"defaults' proportions", limit * 9 / 10, limit / 10}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := zohotest.NewServer(zohotest.WithBooksRateLimit(limit, per))
			t.Cleanup(fake.Close)
			demo := fake.SeedDemo()
			n := startNATS(t)
			rulesFile := writeRules(t, chaosRules(demo.BooksContactID, demo.BooksItemID))
			w := startProc(t, "worker", zohoEnv(fake), append(workerArgs(n), "-rules", rulesFile,
				"-books-rate", fmt.Sprintf("%d/%s", tc.clientRate, per), "-books-burst", fmt.Sprint(max(tc.burst, 1)), "-concurrency", "16")...)
			var envs []*events.Envelope
			var ids []string
			for i := range total {
				id := fmt.Sprintf("burst-%03d", i)
				ids = append(ids, id)
				envs = append(envs, dealEvent(id, fmt.Sprintf("57257670006%08d", i)))
			}
			start := time.Now()
			publishEvents(t, n.js, envs)
			waitFor(t, "the burst drained", 60*time.Second, func() bool { return len(fake.BooksRecords(demo.OrgID, "invoices")) >= total }, w)
			elapsed := time.Since(start)
			exactlyOne(t, fake, demo.OrgID, ids)
			limited := 0
			for _, c := range fake.CallsTo("", "/books/v3/") {
				if c.Status == http.StatusTooManyRequests {
					limited++
				}
			}
			// The bucket starts full: clientRate at once, then clientRate per period.
			want := float64(tc.clientRate) / per.Seconds()
			got := float64(total-tc.clientRate) / elapsed.Seconds()
			t.Logf("%d Books calls drained in %s (%.1f/s after the initial burst; client rate %.1f/s), %d answered 429",
				len(fake.CallsTo("", "/books/v3/")), elapsed.Round(time.Millisecond), got, want, limited)
			if limited != 0 {
				t.Errorf("the fake answered 429 %d times: the client-side limit let more through than Zoho allows", limited)
			}
			if got > want*1.25 {
				t.Errorf("drained at %.1f/s, faster than the configured %.1f/s", got, want)
			}
			w.stop(t)
		})
	}
}
