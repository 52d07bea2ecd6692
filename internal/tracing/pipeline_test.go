package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/tracing"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// The rule of the engine's own tests: a record load, a Books search (its
// query holds a record value), two creates and a CRM write-back.
const dealWonRules = `
version: 1
rules:
  - name: deal-won-invoice
    on: { source: crm.notify, module: Deals, operations: [update] }
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

const (
	notifyToken = "notify-channel-token-7f3a9c"
	dealName    = "Bowman & Co – Annual licence"
	accountName = "Bowman & Co"
)

type staticRules struct{ set *rules.Set }

func (s staticRules) Current() *rules.Set { return s.set }

// pipeline is the real receiver (echo over real HTTP), an embedded NATS,
// the real worker runner and engine, and the fake Zoho over real HTTP.
type pipeline struct {
	fake    *zohotest.Server
	env     *eventstest.Env
	client  *zoho.Client
	url     string
	dealID  string
	orgID   string
	logs    testutil.SyncBuffer
	handled atomic.Int64
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	ctx := context.Background()
	p := &pipeline{fake: zohotest.NewServer(), env: eventstest.Start(t)}
	t.Cleanup(p.fake.Close)
	cr := p.fake.Credentials()
	p.orgID = cr.OrgID
	acct := p.fake.CRMInsert("Accounts", map[string]any{"Account_Name": accountName})
	p.dealID = p.fake.CRMInsert("Deals", map[string]any{"Deal_Name": dealName, "Stage": "Closed Won",
		"Amount": 1200, "Account_Name": map[string]any{"id": acct, "name": accountName}})
	log := slog.New(slog.NewJSONHandler(&p.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	srv, err := receiver.New(receiver.Config{Publisher: events.NewPublisher(p.env.JS, p.env.Stream),
		CRMTokens: receiver.NewStaticTokens([]string{notifyToken}), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	p.url = "http://" + l.Addr().String() + "/zoho/crm/notify"

	p.client, err = zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		AccountsURL: p.fake.URL(), BooksOrgID: cr.OrgID}, zoho.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse("rules.yaml", []byte(dealWonRules))
	if err != nil {
		t.Fatal(err)
	}
	journal, err := worker.OpenJournal(ctx, p.env.JS, worker.JournalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	loops, err := engine.OpenLoopGuard(ctx, p.env.JS, engine.LoopGuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Rules: staticRules{set}, Actors: engine.StaticActors{"default": p.client}, Loops: loops, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := worker.Chain(eng, worker.Recover(log), worker.Log(log))
	r, err := worker.NewRunner(worker.Config{JS: p.env.JS, Stream: p.env.Stream, Journal: journal, Concurrency: 4, Logger: log,
		Handler: worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
			err := h.Handle(ctx, m)
			if err == nil {
				p.handled.Add(1)
			}
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// notify POSTs one CRM notification for the deal, as Zoho does.
func (p *pipeline) notify(t *testing.T) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"server_time": time.Now().UnixMilli(), "module": "Deals", "ids": []string{p.dealID},
		"operation": "update", "affected_fields": []string{"Stage"}, "channel_id": "1000000068001", "token": notifyToken})
	resp, err := http.Post(p.url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("notification answered %d", resp.StatusCode)
	}
	waitFor(t, "the event handled and its invoice number written back", func() bool {
		d, _ := p.fake.CRMRecord("Deals", p.dealID)
		return p.handled.Load() == 1 && d["Invoice_Number"] != nil
	})
}

// secrets are the values no span may hold: every access token the fake
// saw, the client secret, the refresh token, the channel token, and the
// record's values and id (and what the rule wrote).
func (p *pipeline) secrets() []string {
	cr := p.fake.Credentials()
	out := []string{cr.ClientSecret, cr.RefreshToken, notifyToken, dealName, accountName, "1200", p.dealID, "CRM-DEAL-"}
	for _, c := range p.fake.Calls() {
		if tok, ok := strings.CutPrefix(c.Header.Get("Authorization"), "Zoho-oauthtoken "); ok {
			out = append(out, tok)
		}
	}
	for _, inv := range p.fake.BooksRecords(p.orgID, "invoices") {
		out = append(out, fmt.Sprint(inv["invoice_number"]), fmt.Sprint(inv["invoice_id"]), fmt.Sprint(inv["customer_id"]))
	}
	return out
}

// zohoCalls counts the API calls the fake served (token refreshes are
// the token source's, not an action's attempt).
func (p *pipeline) zohoCalls() []zohotest.Call {
	var out []zohotest.Call
	for _, c := range p.fake.Calls() {
		if !strings.HasPrefix(c.Path, "/oauth/") {
			out = append(out, c)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// installMemory makes zohook's spans go to an in-memory exporter (the
// SDK's own), exported as each span ends.
func installMemory(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	restore := tracing.Install(tp)
	t.Cleanup(func() { restore(); _ = tp.Shutdown(context.Background()) })
	return exp
}

func spanNamed(spans tracetest.SpanStubs, name string) (tracetest.SpanStub, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

// One notification through the real receiver and worker yields one trace:
// callback → publish → the worker's run of the event → rule → each step →
// each Zoho call of the step (the record load hangs off the event's run).
func TestOneTraceFromCallbackToEveryZohoCall(t *testing.T) {
	exp := installMemory(t)
	p := startPipeline(t)
	p.notify(t)
	waitFor(t, "the worker's span to end", func() bool { _, ok := spanNamed(exp.GetSpans(), "handle crm.notify"); return ok })
	spans := exp.GetSpans()

	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	parentOf := func(s tracetest.SpanStub) tracetest.SpanStub {
		t.Helper()
		par, ok := byID[s.Parent.SpanID()]
		if !ok {
			t.Fatalf("span %q: parent %s not among the exported spans", s.Name, s.Parent.SpanID())
		}
		return par
	}
	callback, ok := spanNamed(spans, "POST /zoho/crm/notify")
	if !ok {
		t.Fatalf("no callback span; spans: %v", names(spans))
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != callback.SpanContext.TraceID() {
			t.Errorf("span %q is in trace %s, the callback in %s: want one trace", s.Name, s.SpanContext.TraceID(), callback.SpanContext.TraceID())
		}
	}
	if callback.Parent.IsValid() || callback.SpanKind != trace.SpanKindServer {
		t.Errorf("callback span: parent %v kind %v; want a server root", callback.Parent, callback.SpanKind)
	}
	if attr(callback, "http.route") != "/zoho/crm/notify" || attr(callback, "http.response.status_code") != "200" {
		t.Errorf("callback attributes %v", callback.Attributes)
	}

	publish, ok := spanNamed(spans, "publish "+p.env.Stream.Name)
	if !ok || parentOf(publish).Name != callback.Name || publish.SpanKind != trace.SpanKindProducer {
		t.Fatalf("publish span %v: want a producer child of the callback", publish.Name)
	}
	run, _ := spanNamed(spans, "handle crm.notify")
	if !run.Parent.IsRemote() || parentOf(run).Name != publish.Name || run.SpanKind != trace.SpanKindConsumer {
		t.Errorf("worker span: parent %v (remote %v); want the publish span, carried in the NATS headers", run.Parent.SpanID(), run.Parent.IsRemote())
	}
	if attr(run, "zohook.event.id") != attr(publish, "zohook.event.id") || attr(run, "zohook.event.id") == "" ||
		attr(run, "zohook.delivery") != "1" || attr(run, "zohook.outcome") != worker.OutcomeAcked || attr(run, "zohook.result") != "done" {
		t.Errorf("worker span attributes %v", run.Attributes)
	}
	rule, ok := spanNamed(spans, "rule deal-won-invoice")
	if !ok || parentOf(rule).Name != run.Name || attr(rule, "zohook.outcome") != "done" {
		t.Fatalf("rule span %v %v: want a child of the worker's span", rule.Name, rule.Attributes)
	}

	// Every step is a child of the rule; every Zoho call a child of its
	// step (or, for the record load, of the worker's span).
	steps := map[string]tracetest.SpanStub{}
	var zohoSpans []tracetest.SpanStub
	for _, s := range spans {
		switch {
		case strings.HasPrefix(s.Name, "step "):
			if parentOf(s).Name != rule.Name {
				t.Errorf("step span %q: parent %q, want the rule", s.Name, parentOf(s).Name)
			}
			steps[attr(s, "zohook.step")] = s
		case s.SpanKind == trace.SpanKindClient:
			zohoSpans = append(zohoSpans, s)
		}
	}
	for _, key := range []string{"contact", "new_contact", "invoice", "writeback"} {
		s, ok := steps["deal-won-invoice/"+key]
		if !ok || attr(s, "zohook.outcome") != "ok" {
			t.Errorf("step %s: span %v %v", key, s.Name, s.Attributes)
		}
	}
	calls := p.zohoCalls()
	if len(zohoSpans) != len(calls) {
		t.Errorf("%d Zoho call spans for %d calls the fake served: %v", len(zohoSpans), len(calls), names(zohoSpans))
	}
	perStep := map[string]int{}
	templates := map[string]bool{}
	for _, z := range zohoSpans {
		par := parentOf(z)
		switch {
		case strings.HasPrefix(par.Name, "step "):
			perStep[attr(par, "zohook.step")]++
		case par.Name == run.Name: // the record load
		default:
			t.Errorf("Zoho span %q: parent %q, want a step or the event's run", z.Name, par.Name)
		}
		if attr(z, "http.response.status_code") == "" || attr(z, "zoho.api") == "" || attr(z, "url.template") == "" {
			t.Errorf("Zoho span %q attributes %v", z.Name, z.Attributes)
		}
		if z.Name != attr(z, "http.request.method")+" "+attr(z, "url.template") {
			t.Errorf("Zoho span name %q, template %q", z.Name, attr(z, "url.template"))
		}
		templates[z.Name] = true
	}
	for _, want := range []string{"GET /crm/v8/Deals/{id}", "GET /books/v3/contacts", "POST /books/v3/contacts", "POST /books/v3/invoices"} {
		if !templates[want] {
			t.Errorf("no Zoho span %q among %v", want, names(zohoSpans))
		}
	}
	for _, key := range []string{"contact", "new_contact", "invoice", "writeback"} {
		if perStep["deal-won-invoice/"+key] == 0 {
			t.Errorf("step %s has no Zoho call span", key)
		}
	}
	if code := attr(spanByName(t, spans, "POST /books/v3/invoices"), "zoho.code"); code != "0" {
		t.Errorf("Books create: zoho.code %q, want Books' 0", code)
	}

	// trace_id on every log line about the event.
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if _, about := rec["event_id"]; !about {
			continue
		}
		lines++
		if rec["trace_id"] != callback.SpanContext.TraceID().String() {
			t.Errorf("log line about the event without its trace_id: %s", line)
		}
	}
	if lines < 3 { // engine's rule and step lines, the Log middleware's
		t.Errorf("only %d log lines about the event:\n%s", lines, p.logs.String())
	}
}

func spanByName(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	s, ok := spanNamed(spans, name)
	if !ok {
		t.Fatalf("no span %q among %v", name, names(spans))
	}
	return s
}

func names(spans []tracetest.SpanStub) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// No span name, attribute, status or event holds a token, the client
// secret, the refresh token, the channel token, a record's id or any
// value of the record or of what the rule wrote.
func TestSpansHoldNoSecretOrRecordValue(t *testing.T) {
	exp := installMemory(t)
	p := startPipeline(t)
	p.notify(t)
	waitFor(t, "the worker's span to end", func() bool { _, ok := spanNamed(exp.GetSpans(), "handle crm.notify"); return ok })
	spans := exp.GetSpans()
	secrets := p.secrets()
	if len(secrets) < 10 {
		t.Fatalf("too few values to look for: %v", secrets)
	}
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key)+"="+a.Value.String())
		}
		for _, e := range s.Events {
			texts = append(texts, e.Name)
			for _, a := range e.Attributes {
				texts = append(texts, a.Value.String())
			}
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(text, secret) {
					t.Errorf("span %q holds %q: %q", s.Name, secret, text)
				}
			}
			if strings.Contains(text, "?") || strings.Contains(text, "contact_name") {
				t.Errorf("span %q holds a query: %q", s.Name, text)
			}
		}
	}
}

// A refused callback still has its span (with the status it got); the
// probes have none.
func TestCallbackSpanForARefusalAndNoneForProbes(t *testing.T) {
	exp := installMemory(t)
	p := startPipeline(t)
	base := strings.TrimSuffix(p.url, "/zoho/crm/notify")
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post(p.url, "application/json", strings.NewReader(`{"module":"Deals","ids":["1"],"operation":"update","channel_id":"1000000068001","token":"wrong-token"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("spans %v, want only the refused callback's", names(spans))
	}
	if s := spans[0]; s.Name != "POST /zoho/crm/notify" || attr(s, "http.response.status_code") != "401" || strings.Contains(fmt.Sprint(s.Attributes), "wrong-token") {
		t.Errorf("refused callback span %q %v", s.Name, s.Attributes)
	}
}
