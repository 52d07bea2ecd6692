package reconcile

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const crmLayout = "2006-01-02T15:04:05-07:00"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type env struct {
	fake *zohotest.Server
	crm  *zoho.CRMService
	clk  *clock
	js   *eventstest.Env
	seen *Seen
	pub  *events.Publisher
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 17, 10, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))}
	fake := zohotest.NewServer(zohotest.WithClock(clk.Now))
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	c, err := zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		DC: "us", AccountsURL: fake.URL()}, zoho.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	js := eventstest.Start(t)
	// As the worker opens it: the history also tells what was received.
	seen, err := OpenSeen(context.Background(), js.JS, SeenConfig{History: js.Stream.HistoryName})
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, crm: c.CRM, clk: clk, js: js, seen: seen, pub: events.NewPublisher(js.JS, js.Stream)}
}

func (e *env) job(t *testing.T, cfg Config) *Job {
	t.Helper()
	cfg.Clock, cfg.Logger = e.clk.Now, quiet()
	j, err := NewJob(context.Background(), e.js.JS, e.crm, e.pub, e.seen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// stored reads every envelope in the events stream.
func (e *env) stored(t *testing.T) []*events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := int(e.js.Messages(t))
	if n == 0 {
		return nil
	}
	cons, err := e.js.JS.OrderedConsumer(ctx, e.js.Stream.Name, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.Envelope
	for len(out) < n {
		batch, err := cons.Fetch(min(n-len(out), 1000), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			env, err := events.Decode(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, env)
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
	}
	return out
}

func TestReconcile5000RecordsPublishesExactlyTheUnseen(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := e.clk.Now()
	const n = 5000
	ids := make([]string, n)
	want := map[string]string{} // record id → operation expected
	for i := range n {
		mt := base.Add(time.Duration(i) * time.Second)
		created := mt
		if i%2 == 1 {
			created = base.Add(-time.Hour)
		}
		ids[i] = e.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "d" + strconv.Itoa(i),
			"Created_Time": created.Format(crmLayout), "Modified_Time": mt.Format(crmLayout)})
		switch {
		case i%4 == 0: // received by a notification already
			if err := e.seen.MarkSeen(ctx, "", "Deals", ids[i], mt); err != nil {
				t.Fatal(err)
			}
		case i%7 == 0: // an older change was received, not this one
			if err := e.seen.MarkSeen(ctx, "", "Deals", ids[i], mt.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			fallthrough
		default:
			want[ids[i]] = map[bool]string{true: events.OpCreate, false: events.OpUpdate}[i%2 == 0]
		}
	}
	// A record of another module is not reconciled.
	e.fake.CRMInsert("Leads", map[string]any{"Last_Name": "x"})
	e.clk.Set(base.Add(n*time.Second + time.Hour))
	j := e.job(t, Config{Modules: []string{"Deals"}})
	st, err := j.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scanned != n || st.Published != len(want) || st.AlreadySeen != n-len(want) || st.Duplicates != 0 {
		t.Fatalf("stats %+v, want %d scanned, %d published, %d seen", st, n, len(want), n-len(want))
	}
	got := e.stored(t)
	if len(got) != len(want) {
		t.Fatalf("%d events stored, want %d", len(got), len(want))
	}
	for _, ev := range got {
		op, ok := want[ev.RecordID]
		if !ok {
			t.Fatalf("published record %s that was already seen or unknown", ev.RecordID)
		}
		if ev.Source != events.SourceCRMNotify || ev.ChannelID != ChannelID || ev.Module != "Deals" || ev.Operation != op ||
			ev.Values["Modified_Time"] == nil {
			t.Fatalf("event %+v", ev)
		}
		delete(want, ev.RecordID)
	}
	// The walk crossed the 2,000-record wall with page_token.
	tokens := 0
	for _, c := range e.fake.CallsTo(http.MethodGet, "/crm/v8/Deals") {
		if c.Path != "/crm/v8/Deals" {
			continue // the deleted-records list
		}
		if c.Query.Get("page_token") != "" {
			tokens++
		}
		if c.Query.Get("sort_by") != "Modified_Time" || c.Query.Get("sort_order") != "asc" || c.Header.Get("If-Modified-Since") == "" {
			t.Fatalf("list call %v %v", c.Query, c.Header)
		}
	}
	if tokens != 15 { // pages 11..25 of 200
		t.Fatalf("%d page_token calls, want 15", tokens)
	}
	cur, err := j.Cursor(ctx, "Deals")
	if err != nil || !cur.Equal(base.Add((n-1)*time.Second)) {
		t.Fatalf("cursor %s %v", cur, err)
	}

	// A second run finds nothing new.
	before := e.js.Messages(t)
	st, err = j.RunOnce(ctx)
	if err != nil || st.Published != 0 || st.Duplicates != 0 {
		t.Fatalf("second run: %+v %v", st, err)
	}
	if e.js.Messages(t) != before {
		t.Fatal("second run stored events")
	}

	// One record changes while its notification is lost; another is
	// received. The next run publishes exactly the lost one.
	now := e.clk.Now()
	lost, got2 := ids[8], ids[9]
	for _, id := range []string{lost, got2} {
		e.fake.CRMInsert("Deals", map[string]any{"id": id, "Deal_Name": "changed", "Created_Time": base.Format(crmLayout),
			"Modified_Time": now.Add(-10 * time.Minute).Format(crmLayout)})
	}
	if err := e.seen.MarkSeen(ctx, "", "Deals", got2, now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "too recent", "Modified_Time": now.Add(-30 * time.Second).Format(crmLayout)})
	st, err = j.RunOnce(ctx)
	if err != nil || st.Published != 1 {
		t.Fatalf("third run: %+v %v", st, err)
	}
	all := e.stored(t)
	if last := all[len(all)-1]; last.RecordID != lost || last.Operation != events.OpUpdate {
		t.Fatalf("published %+v, want an update of %s", last, lost)
	}
}

func TestSameChangeFromTwoJobsIsStoredOnce(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := e.clk.Now()
	for i := range 30 {
		e.fake.CRMInsert("Leads", map[string]any{"Last_Name": "l", "Modified_Time": base.Add(time.Duration(i) * time.Second).Format(crmLayout)})
	}
	e.clk.Set(base.Add(time.Hour))
	// Two jobs with separate state buckets and seen stores (e.g. a lost
	// cursor): the second finds the same changes, JetStream keeps one copy.
	st1, err := e.job(t, Config{Modules: []string{"Leads"}}).RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen2, err := OpenSeen(ctx, e.js.JS, SeenConfig{Bucket: "other_seen"})
	if err != nil {
		t.Fatal(err)
	}
	j2, err := NewJob(ctx, e.js.JS, e.crm, e.pub, seen2, Config{Modules: []string{"Leads"}, StateBucket: "other_state", Clock: e.clk.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	st2, err := j2.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Published != 30 || st2.Published != 0 || st2.Duplicates != 30 || e.js.Messages(t) != 30 {
		t.Fatalf("first %+v second %+v, %d stored", st1, st2, e.js.Messages(t))
	}
}

func TestWebhookFailuresReplayedOnce(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := e.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "Big", "Stage": "Closed Lost"})
	e.fake.RecordWebhookFailure(zohotest.WebhookFailure{WebhookID: "111", WebhookName: "Deal lost hook", Module: "Deals", RecordID: id,
		URL: "https://hooks.example.com/zoho/crm/workflow/deal-lost?x=1", StatusCode: 503, Reason: "Service Unavailable"})
	e.fake.RecordWebhookFailure(zohotest.WebhookFailure{WebhookID: "112", WebhookName: "elsewhere", Module: "Deals", RecordID: id,
		URL: "https://other.example.com/hook", StatusCode: 500})
	j := e.job(t, Config{WebhookFailures: true})
	st, err := j.RunOnce(ctx)
	if err != nil || st.Failures != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	got := e.stored(t)
	hooks := []string{got[0].Hook, got[1].Hook}
	slices.Sort(hooks)
	if !slices.Equal(hooks, []string{"deal-lost", "elsewhere"}) {
		t.Fatalf("hooks %v", hooks)
	}
	for _, ev := range got {
		if ev.Source != events.SourceCRMWorkflow || ev.RecordID != id || ev.Values["Stage"] != "Closed Lost" {
			t.Fatalf("event %+v", ev)
		}
	}
	st, err = j.RunOnce(ctx)
	if err != nil || st.Failures != 0 || e.js.Messages(t) != 2 {
		t.Fatalf("second run %+v %v", st, err)
	}
}

func TestRunUnderLease(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := e.clk.Now()
	for i := range 10 {
		e.fake.CRMInsert("Contacts", map[string]any{"Last_Name": "c", "Modified_Time": base.Add(time.Duration(i) * time.Second).Format(crmLayout)})
	}
	e.clk.Set(base.Add(time.Hour))
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	for _, holder := range []string{"a", "b"} {
		lease, err := fleet.NewLease(e.js.JS, "reconcile-default", holder, time.Second, fleet.WithLeaseLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		j := e.job(t, Config{Modules: []string{"Contacts"}, Interval: 10 * time.Millisecond})
		go func() { done <- j.Run(rctx, lease) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.js.Messages(t) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rcancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := e.js.Messages(t); n != 10 {
		t.Fatalf("%d events, want 10", n)
	}
}
