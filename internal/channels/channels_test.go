package channels

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const testRules = `version: 1
rules:
  - name: deal-stage
    on: { source: crm.notify, module: Deals, operation: update }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: x } }
  - name: deal-new
    on: { source: crm.notify, module: Deals, operation: create }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: y } }
  - name: leads-any
    on: { source: crm.notify, module: Leads }
    steps:
      - action: crm.update_record
        with: { module: Leads, id: "${event.record_id}", data: { Description: z } }
  - name: contacts-both
    on: { source: crm.notify, module: Contacts, operations: [create, update] }
    steps:
      - action: crm.update_record
        with: { module: Contacts, id: "${event.record_id}", data: { Description: w } }
  - name: workflow-only
    on: { source: crm.workflow, module: Accounts }
    steps:
      - action: crm.update_record
        with: { module: Accounts, id: "${event.record_id}", data: { Description: v } }
  - name: other-connection
    on: { source: crm.notify, module: Tasks, connection: eu }
    steps:
      - action: crm.update_record
        with: { module: Tasks, id: "${event.record_id}", data: { Description: u } }
  - name: no-module
    on: { source: crm.notify, operation: delete }
    steps:
      - action: crm.update_record
        with: { module: Leads, id: "${event.record_id}", data: { Description: t } }
`

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	fake  *zohotest.Server
	crm   *zoho.CRMService
	clk   *clock
	jsEnv *eventstest.Env
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, fakeOpts ...zohotest.Option) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 17, 10, 0, 0, 0, time.UTC)}
	fake := zohotest.NewServer(append([]zohotest.Option{zohotest.WithClock(clk.Now)}, fakeOpts...)...)
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	c, err := zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		DC: "us", AccountsURL: fake.URL()}, zoho.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, crm: c.CRM, clk: clk, jsEnv: eventstest.Start(t)}
}

func (e *env) manager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if cfg.NotifyURL == "" {
		cfg.NotifyURL = "https://hooks.example.com/zoho/crm/notify"
	}
	cfg.Clock = e.clk.Now
	if cfg.Logger == nil {
		cfg.Logger = quietLog()
	}
	m, err := NewManager(context.Background(), e.jsEnv.JS, e.crm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func neededFromRules(t *testing.T) []string {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return NeededEvents(set.Rules(), "", quietLog())
}

func TestNeededEventsFromRules(t *testing.T) {
	got := neededFromRules(t)
	want := []string{"Contacts.create", "Contacts.edit", "Deals.create", "Deals.edit", "Leads.all"}
	if !slices.Equal(got, want) {
		t.Fatalf("needed = %v, want %v", got, want)
	}
	set, _ := rules.Parse("rules.yaml", []byte(testRules))
	if eu := NeededEvents(set.Rules(), "eu", quietLog()); !slices.Contains(eu, "Tasks.all") || !slices.Contains(eu, "Leads.all") {
		t.Fatalf("eu needs %v, want Tasks.all and the connection-less rules", eu)
	}
}

func TestSyncSubscribesExactlyTheNeededEvents(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	reg := prometheus.NewRegistry()
	met, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m := e.manager(t, Config{Metrics: met})
	needed := neededFromRules(t)
	rep, err := m.Sync(ctx, needed)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Created) != 3 {
		t.Fatalf("created %v, want 3 channels", rep.Created)
	}
	var all []string
	v, err := NewTokenVerifier(ctx, e.jsEnv.JS, VerifierConfig{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, c := range e.fake.Channels() {
		all = append(all, c.Events...)
		if c.NotifyURL != "https://hooks.example.com/zoho/crm/notify" || !c.HasToken || len(c.Token) < 32 {
			t.Fatalf("channel %s: url %q token set %v len %d", c.ChannelID, c.NotifyURL, c.HasToken, len(c.Token))
		}
		if c.ChannelID != m.ChannelID(moduleOf(c.Events[0])) {
			t.Fatalf("channel id %s is not the module's stable id", c.ChannelID)
		}
		if want := e.clk.Now().Add(DefaultExpiry); !c.Expiry.Equal(want) {
			t.Fatalf("expiry %s, want %s", c.Expiry, want)
		}
		if c.ReturnAffectedFieldValues != true || c.NotifyOnRelatedAction != false {
			t.Fatalf("channel flags: affected %v related %v", c.ReturnAffectedFieldValues, c.NotifyOnRelatedAction)
		}
		// The receiver accepts exactly this channel's token.
		if conn, module, ok := v.VerifyChannelToken(ctx, c.ChannelID, c.Token); !ok || conn != "" || module != moduleOf(c.Events[0]) {
			t.Fatalf("verifier refused channel %s's token (conn %q, module %q)", c.ChannelID, conn, module)
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, needed) {
		t.Fatalf("Zoho has events %v, want %v", all, needed)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
		if mf.GetName() == "zohook_channel_expiry_timestamp_seconds" {
			for _, mt := range mf.GetMetric() {
				if got, want := mt.GetGauge().GetValue(), float64(e.clk.Now().Add(DefaultExpiry).Unix()); got != want {
					t.Fatalf("expiry gauge %v, want %v", got, want)
				}
			}
		}
	}
	if series["zohook_channel_expiry_timestamp_seconds"] != 3 || series["zohook_channel_last_sync_timestamp_seconds"] != 1 {
		t.Fatalf("metric series: %v", series)
	}
	// A second sync changes nothing and makes no write.
	e.fake.ResetCalls()
	rep, err = m.Sync(ctx, needed)
	if err != nil || len(rep.Unchanged) != 3 {
		t.Fatalf("second sync: %+v %v", rep, err)
	}
	for _, c := range e.fake.Calls() {
		if c.Method != http.MethodGet && strings.Contains(c.Path, "actions/watch") {
			t.Fatalf("idle sync wrote: %s %s", c.Method, c.Path)
		}
	}
}

func TestRenewBeforeExpiryKeepsToken(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	m := e.manager(t, Config{})
	needed := []string{"Deals.edit"}
	if _, err := m.Sync(ctx, needed); err != nil {
		t.Fatal(err)
	}
	token := e.fake.Channels()[0].Token
	patches := func() []zohotest.Call {
		return e.fake.CallsTo(http.MethodPatch, "/crm/v8/actions/watch")
	}
	// Five days on, 1d23h are left: beyond the 1-day margin.
	e.clk.Advance(5 * 24 * time.Hour)
	if rep, err := m.Sync(ctx, needed); err != nil || len(rep.Renewed) != 0 || len(patches()) != 0 {
		t.Fatalf("renewed too early: %+v %v", rep, err)
	}
	e.clk.Advance(24 * time.Hour) // 23 h left: within the margin
	rep, err := m.Sync(ctx, needed)
	if err != nil || len(rep.Renewed) != 1 {
		t.Fatalf("no renewal within the margin: %+v %v", rep, err)
	}
	ps := patches()
	if len(ps) != 1 {
		t.Fatalf("%d PATCH calls, want 1", len(ps))
	}
	var body struct {
		Watch []map[string]any `json:"watch"`
	}
	if err := json.Unmarshal(ps[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	w := body.Watch[0]
	if w["token"] != token || w["events"] == nil || w["channel_expiry"] == nil {
		t.Fatalf("renewal PATCH must resend token and events (G11): %v", w)
	}
	ch := e.fake.Channels()[0]
	if !ch.HasToken || ch.Token != token {
		t.Fatal("token lost or changed by the renewal")
	}
	if want := e.clk.Now().Add(DefaultExpiry); !ch.Expiry.Equal(want) {
		t.Fatalf("expiry after renewal %s, want %s", ch.Expiry, want)
	}
	// Past the original expiry the channel is still alive.
	e.clk.Advance(2 * 24 * time.Hour)
	if len(e.fake.Channels()) != 1 {
		t.Fatal("renewed channel expired")
	}
}

func TestDroppedChannelIsResubscribed(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	m := e.manager(t, Config{})
	needed := []string{"Deals.create", "Leads.all"}
	if _, err := m.Sync(ctx, needed); err != nil {
		t.Fatal(err)
	}
	id := m.ChannelID("Deals")
	var token string
	for _, c := range e.fake.Channels() {
		if c.ChannelID == id {
			token = c.Token
		}
	}
	e.fake.DropChannel(id)
	rep, err := m.Sync(ctx, needed)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Resubscribed, []string{id}) || len(rep.Unchanged) != 1 {
		t.Fatalf("report %+v, want %s re-subscribed", rep, id)
	}
	found := false
	for _, c := range e.fake.Channels() {
		if c.ChannelID == id {
			found = true
			if c.Token != token || !slices.Equal(c.Events, []string{"Deals.create"}) {
				t.Fatalf("re-subscribed channel: token kept %v, events %v", c.Token == token, c.Events)
			}
		}
	}
	if !found {
		t.Fatal("channel not re-subscribed")
	}
	// A channel that expired unnoticed comes back too.
	e.clk.Advance(8 * 24 * time.Hour)
	rep, err = m.Sync(ctx, needed)
	if err != nil || len(rep.Resubscribed) != 2 || len(e.fake.Channels()) != 2 {
		t.Fatalf("after expiry: %+v %v, %d channels", rep, err, len(e.fake.Channels()))
	}
}

func TestSyncTrimsAndRepairs(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	m := e.manager(t, Config{})
	if _, err := m.Sync(ctx, []string{"Deals.create", "Deals.edit", "Leads.all"}); err != nil {
		t.Fatal(err)
	}
	// Someone PATCHes without the token (Zoho nulls it): sync rewrites the channel.
	deals := m.ChannelID("Deals")
	if _, _, err := e.crm.PatchChannel(ctx, zoho.Channel{ChannelID: deals, ChannelExpiry: e.clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Sync(ctx, []string{"Deals.create"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Updated, []string{deals}) || !slices.Equal(rep.Disabled, []string{m.ChannelID("Leads")}) {
		t.Fatalf("report %+v", rep)
	}
	chs := e.fake.Channels()
	if len(chs) != 1 || !slices.Equal(chs[0].Events, []string{"Deals.create"}) || !chs[0].HasToken {
		t.Fatalf("channels after trim: %+v", chs)
	}
	sts, err := m.List(ctx)
	if err != nil || len(sts) != 1 || !sts[0].TokenMatches || !sts[0].InBucket {
		t.Fatalf("list: %+v %v", sts, err)
	}
	// Only an event removed: DisableEvents, no rewrite.
	if _, err := m.Sync(ctx, []string{"Deals.create", "Deals.delete"}); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCalls()
	rep, err = m.Sync(ctx, []string{"Deals.delete"})
	if err != nil || !slices.Equal(rep.Updated, []string{deals}) {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := len(e.fake.CallsTo(http.MethodPut, "/crm/v8/actions/watch")); n != 0 {
		t.Fatalf("%d PUTs for a removal", n)
	}
	if evs := e.fake.Channels()[0].Events; !slices.Equal(evs, []string{"Deals.delete"}) {
		t.Fatalf("events %v", evs)
	}
	// Disable everything.
	ids, err := m.Disable(ctx)
	if err != nil || len(ids) != 1 || len(e.fake.Channels()) != 0 {
		t.Fatalf("disable: %v %v, %d left", ids, err, len(e.fake.Channels()))
	}
}

func TestVerifierFollowsTheBucket(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	v, err := NewTokenVerifier(ctx, e.jsEnv.JS, VerifierConfig{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m := e.manager(t, Config{Connection: "eu"})
	if _, err := m.Sync(ctx, []string{"Deals.all"}); err != nil {
		t.Fatal(err)
	}
	c := e.fake.Channels()[0]
	waitFor(t, func() bool { return v.Len() == 1 })
	if conn, _, ok := v.VerifyChannelToken(ctx, c.ChannelID, c.Token); !ok || conn != "eu" {
		t.Fatalf("stored token refused (conn %q ok %v)", conn, ok)
	}
	for _, tc := range []struct{ id, tok string }{{c.ChannelID, c.Token + "x"}, {c.ChannelID, ""}, {"123", c.Token}, {c.ChannelID, strings.ToUpper(c.Token)}} {
		if _, _, ok := v.VerifyChannelToken(ctx, tc.id, tc.tok); ok && tc.tok != c.Token {
			t.Fatalf("accepted channel %s with a wrong token", tc.id)
		} else if ok {
			t.Fatalf("accepted the token for another channel %s", tc.id)
		}
	}
	if _, err := m.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, _, ok := v.VerifyChannelToken(ctx, c.ChannelID, c.Token); return !ok })
}

// waitFor polls a condition that another goroutine (a KV watch) makes true.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTwoManagersNeverSyncAtOnce(t *testing.T) {
	e := newEnv(t, zohotest.WithLatency(2*time.Millisecond))
	ctx := ctxT(t)
	var inSync, maxInSync atomic.Int32
	var syncs [2]atomic.Int32
	run := func(i int, ctx context.Context, done chan<- struct{}) {
		m := e.manager(t, Config{RenewMargin: time.Hour, Interval: 5 * time.Millisecond})
		m.syncHook = func(start bool) {
			if !start {
				inSync.Add(-1)
				return
			}
			n := inSync.Add(1)
			for {
				old := maxInSync.Load()
				if n <= old || maxInSync.CompareAndSwap(old, n) {
					break
				}
			}
			syncs[i].Add(1)
		}
		lease, err := fleet.NewLease(e.jsEnv.JS, "channels-default", []string{"a", "b"}[i], 300*time.Millisecond,
			fleet.WithLeaseLogger(quietLog()))
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		go func() {
			defer close(done)
			if err := m.Run(ctx, lease, func() []string { return []string{"Deals.all"} }); err != nil {
				t.Error(err)
			}
		}()
	}
	ctxA, cancelA := context.WithCancel(ctx)
	ctxB, cancelB := context.WithCancel(ctx)
	doneA, doneB := make(chan struct{}), make(chan struct{})
	run(0, ctxA, doneA)
	waitFor(t, func() bool { return syncs[0].Load() >= 3 })
	run(1, ctxB, doneB)
	waitFor(t, func() bool { return syncs[0].Load() >= 10 })
	if n := syncs[1].Load(); n != 0 {
		t.Fatalf("the second manager synced %d times while the first held the lease", n)
	}
	cancelA() // the holder stops: the other takes over once the lease is released
	<-doneA
	waitFor(t, func() bool { return syncs[1].Load() >= 5 })
	cancelB()
	<-doneB
	if maxInSync.Load() != 1 {
		t.Fatalf("%d managers synced at once", maxInSync.Load())
	}
	if chs := e.fake.Channels(); len(chs) != 1 {
		t.Fatalf("%d channels, want 1", len(chs))
	}
}

// nats.go ends a KV watch for good when it cannot re-create the watch's
// consumer (here: the bucket deleted, and still missing when the watch
// tries again). The verifier must watch again once the bucket is back, or
// channels subscribed afterwards get 401 until the receiver restarts.
func TestVerifierWatchesAgainAfterItsWatchEnds(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	v, err := NewTokenVerifier(ctx, e.jsEnv.JS, VerifierConfig{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := e.jsEnv.JS.DeleteKeyValue(ctx, DefaultBucket); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for v.ended.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch of a deleted bucket never ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := e.manager(t, Config{Connection: "eu"}) // creates the bucket again
	if _, err := m.Sync(ctx, []string{"Deals.all"}); err != nil {
		t.Fatal(err)
	}
	c := e.fake.Channels()[0]
	deadline = time.Now().Add(15 * time.Second)
	for {
		if _, _, ok := v.VerifyChannelToken(ctx, c.ChannelID, c.Token); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a channel stored after the watch ended is still unknown")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A channel stored just before Zoho starts calling (the worker stores the
// token, then enables the channel) must not get 401 while the watch has
// not applied it yet: a miss reads the bucket before refusing. Before the
// fix, 17 to 68 of 200 such callbacks were refused.
func TestVerifierReadsTheBucketOnAMiss(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	v, err := NewTokenVerifier(ctx, e.jsEnv.JS, VerifierConfig{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	kv, err := e.jsEnv.JS.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := range 200 {
		id := fmt.Sprintf("1000000%06d", i)
		tok := fmt.Sprintf("tok-%d-secret", i)
		b, _ := json.Marshal(Entry{ChannelID: id, Token: tok, Connection: "default", Module: "Deals"})
		if _, err := kv.Put(ctx, id, b); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := v.VerifyChannelToken(ctx, id, tok); !ok {
			refused++
		}
	}
	if refused > 0 {
		t.Fatalf("%d of 200 callbacks right after their channel was stored were refused", refused)
	}
	// A forged id still costs at most one bucket read a second.
	for range 50 {
		if _, _, ok := v.VerifyChannelToken(ctx, "999999", "guess"); ok {
			t.Fatal("forged channel accepted")
		}
	}
}
