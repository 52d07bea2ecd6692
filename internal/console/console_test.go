package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
)

// fixture is a console on a real embedded NATS with the layout's streams;
// tests write what the worker would (envelopes, outcome records, journal
// entries, dead letters) through the same APIs the worker uses.
type fixture struct {
	env      *eventstest.Env
	c        *Console
	srv      *httptest.Server
	journal  *worker.Journal
	dlq      *worker.DLQ
	pub      *events.Publisher
	outcomes *worker.Outcomes
	password string
}

const testPassword = "correct horse battery staple"

// knownSecret is a secret the console is told about (a notification token).
const knownSecret = "notify-token-4c1f9e"

func newFixture(t testing.TB, indexEvents int) *fixture {
	t.Helper()
	env := eventstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := events.EnsureStream(ctx, env.JS, worker.OutcomesSpec(1, events.DefaultMaxAge, 1<<30), events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	j, err := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{Holder: "test-worker"})
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(env.JS, env.Stream)
	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load("../../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{JS: env.JS, Stream: env.Stream, Journal: j, DLQ: dlq, Rules: rules.NewWatcher("../../rules.yaml", set),
		Password: testPassword, Secrets: []string{knownSecret}, IndexEvents: indexEvents,
		Rates: []RateLimit{{Name: "books-default", API: "books", Connection: "default", Limit: 90, Per: time.Minute, Burst: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(rctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle(Prefix, c)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); stop(); <-done })
	return &fixture{env: env, c: c, srv: srv, journal: j, dlq: dlq, pub: pub, outcomes: worker.NewOutcomes(env.JS, "test-worker", nil), password: testPassword}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish stores an envelope in the work stream (the history sources it).
func (f *fixture) publish(t testing.TB, env *events.Envelope) events.PublishResult {
	t.Helper()
	res, err := f.pub.Publish(context.Background(), []*events.Envelope{env})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// outcome records a handler run as the runner does.
func (f *fixture) outcome(env *events.Envelope, seq uint64, outcome string, rep *worker.Report, d time.Duration) {
	f.outcomes.Record(&worker.Message{Envelope: env, Sequence: seq, Subject: events.Subject(env, 4), Delivered: 1, Attempt: 1, Report: rep}, outcome, d)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.outcomes.Flush(ctx)
}

func deal(id, recordID string, at time.Time) *events.Envelope {
	return &events.Envelope{ID: events.DeriveID("test", id), Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
		Operation: events.OpUpdate, RecordID: recordID, ChangedFields: []string{"Stage"}, ChannelID: "1000000068001", ReceivedAt: at,
		Values: map[string]any{"Stage": "Closed Won", "client_secret": "cs-by-name-only"},
		Raw:    json.RawMessage(`{"module":"Deals","ids":["` + recordID + `"],"operation":"update","token":"` + knownSecret + `","channel_id":"1000000068001"}`)}
}

// do sends a request with the console password (unless auth is "").
func (f *fixture) do(t testing.TB, method, path, auth string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func (f *fixture) bearer() string { return "Bearer " + f.password }

func (f *fixture) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, body := f.do(t, "GET", path, f.bearer(), nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
	assertNoSecrets(t, path, body)
}

func assertNoSecrets(t testing.TB, where, body string) {
	t.Helper()
	for _, s := range []string{knownSecret, "cs-by-name-only", "leaked-access-token", testPassword} {
		if strings.Contains(body, s) {
			t.Errorf("%s shows the secret %q", where, s)
		}
	}
}

// invoiceCalls is a step's exchanges as the engine journals them.
const invoiceCalls = `[{"api":"books","method":"POST","path":"/books/v3/invoices","query":{"organization_id":["10234695"]},` +
	`"body":{"customer_id":"460000000026049","reference_number":"CRM-DEAL-111","access_token":"leaked-access-token"},` +
	`"status":201,"code":"0","message":"The invoice has been created.","duration_ns":12000000,"attempt":1}]`

func TestConsoleAPI(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	now := time.Now().UTC()
	e1, e2, e3 := deal("1", "111", now.Add(-3*time.Second)), deal("2", "222", now.Add(-2*time.Second)), deal("3", "333", now.Add(-time.Second))
	e3.Module = "Leads"
	r1 := f.publish(t, e1)
	f.publish(t, e2)
	f.publish(t, e3)

	// e1 ran: a record snapshot, three steps done (the invoice with its Zoho call).
	entry, err := f.journal.Load(ctx, e1.ID)
	if err != nil {
		t.Fatal(err)
	}
	entry.SetRecord(map[string]any{"Stage": "Closed Won", "Amount": 1200, "Deal_Name": "Bowman", "Account_Name": map[string]any{"name": "Bowman & Co"}})
	for _, s := range []struct{ key, action, calls string }{
		{"deal-won-create-invoice/contact", "books.get_records", ""},
		{"deal-won-create-invoice/invoice", "books.create_record", invoiceCalls},
		{"deal-won-create-invoice/write_back", "crm.update_record", ""},
	} {
		if err := entry.Start(ctx, s.key, s.action, 1); err != nil {
			t.Fatal(err)
		}
		if err := entry.Done(ctx, s.key, s.action, 1, map[string]any{"ok": true}, json.RawMessage(s.calls), true); err != nil {
			t.Fatal(err)
		}
	}
	f.outcome(e1, r1.Sequence, worker.OutcomeAcked, &worker.Report{Outcome: "done", Rules: []string{"deal-won-create-invoice"}, Calls: 3}, 120*time.Millisecond)

	waitFor(t, "three events indexed, e1 done", func() bool {
		s, ok := f.c.Index().Lookup(e1.ID)
		return f.c.Index().Loaded() && f.c.Index().Stats().Events == 3 && ok && s.Status == StatusDone
	})

	// No credentials: 401 with a Basic challenge, for the API and the pages.
	for _, p := range []string{"/console/api/events", "/console/events", "/console/health", "/console/static/console.css"} {
		resp, body := f.do(t, "GET", p, "", nil, nil)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s without credentials: %d %q", p, resp.StatusCode, body)
		}
		if resp, _ := f.do(t, "GET", p, "Bearer wrong", nil, nil); resp.StatusCode != 401 {
			t.Errorf("GET %s with a wrong password: %d", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/console/api/events", nil)
	req.SetBasicAuth("anyone", testPassword)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("Basic auth: %v %v", resp, err)
	}

	var list ListResult
	f.getJSON(t, "/console/api/events", &list)
	if len(list.Events) != 3 || list.Events[0].ID != e3.ID || list.Events[2].ID != e1.ID || list.Via != "index" {
		t.Fatalf("list: %+v", list)
	}
	if s := list.Events[2]; s.Status != StatusDone || s.Runs != 1 || s.Calls != 3 || s.RecordID != "111" {
		t.Fatalf("e1 row: %+v", s)
	}
	f.getJSON(t, "/console/api/events?module=leads", &list)
	if len(list.Events) != 1 || list.Events[0].ID != e3.ID {
		t.Fatalf("module=leads: %+v", list.Events)
	}
	f.getJSON(t, "/console/api/events?status=waiting&limit=1", &list)
	if len(list.Events) != 1 || list.Events[0].ID != e3.ID || list.Older == 0 {
		t.Fatalf("status=waiting, limit 1: %+v", list)
	}
	f.getJSON(t, fmt.Sprintf("/console/api/events?status=waiting&limit=1&before=%d", list.Older), &list)
	if len(list.Events) != 1 || list.Events[0].ID != e2.ID {
		t.Fatalf("second page: %+v", list)
	}
	f.getJSON(t, "/console/api/events?q=111", &list)
	if len(list.Events) != 1 || list.Events[0].ID != e1.ID || list.Via != "index" || list.Events[0].Status != StatusDone {
		t.Fatalf("record search: %+v", list)
	}
	f.getJSON(t, "/console/api/events?q="+e2.ID, &list)
	if len(list.Events) != 1 || list.Events[0].ID != e2.ID || list.Via != "id" {
		t.Fatalf("id search: %+v", list)
	}
	if resp, body := f.do(t, "GET", "/console/api/events?since=yesterday", f.bearer(), nil, nil); resp.StatusCode != 400 || !strings.Contains(body, "since") {
		t.Fatalf("bad since: %d %s", resp.StatusCode, body)
	}

	// One event: envelope without secrets, rules explained, steps with the
	// Zoho request as sent and Zoho's answer, the run.
	var d EventDetail
	f.getJSON(t, "/console/api/events/"+e1.ID, &d)
	if !strings.Contains(string(d.Envelope), `"record_id":"111"`) || !strings.Contains(string(d.Envelope), redacted) {
		t.Errorf("envelope: %s", d.Envelope)
	}
	var matched, explained []string
	for _, x := range d.Rules.Explanations {
		explained = append(explained, x.Rule)
		if x.Matched {
			matched = append(matched, x.Rule)
		} else if x.Reason == "" {
			t.Errorf("rule %s did not match and says nothing why", x.Rule)
		}
	}
	if fmt.Sprint(matched) != "[deal-won-create-invoice]" || len(explained) < 3 || fmt.Sprint(d.Rules.Matched) != "[deal-won-create-invoice]" {
		t.Errorf("rules: matched now %v of %v; at the last run %v", matched, explained, d.Rules.Matched)
	}
	states := map[string]string{}
	for _, s := range d.Steps {
		states[s.Step] = s.State
	}
	if states["contact"] != "done" || states["invoice"] != "done" || states["write_back"] != "done" || states["new_contact"] != "not_run" {
		t.Errorf("steps: %v", states)
	}
	var inv StepView
	for _, s := range d.Steps {
		if s.Step == "invoice" {
			inv = s
		}
	}
	if len(inv.Calls) != 1 {
		t.Fatalf("invoice step calls: %+v", inv)
	}
	call := inv.Calls[0]
	if call.Method != "POST" || call.Path != "/books/v3/invoices" || call.Query != "organization_id=10234695" || call.Status != 201 ||
		call.Message != "The invoice has been created." || !strings.Contains(string(call.Body), "CRM-DEAL-111") || call.Duration != 12*time.Millisecond {
		t.Errorf("invoice call: %+v body %s", call, call.Body)
	}
	if len(d.Runs) != 1 || d.Runs[0].Outcome != worker.OutcomeAcked || d.Runs[0].Worker != "test-worker" || d.Handling != 120*time.Millisecond {
		t.Errorf("runs: %+v handling %s", d.Runs, d.Handling)
	}
	if !strings.Contains(string(d.Record), "Bowman") {
		t.Errorf("record snapshot: %s", d.Record)
	}
	if resp, _ := f.do(t, "GET", "/console/api/events/"+events.DeriveID("nope"), f.bearer(), nil, nil); resp.StatusCode != 404 {
		t.Errorf("unknown event: %d", resp.StatusCode)
	}
	// The pages render the same, with nothing secret in them.
	for _, p := range []string{"/console/events", "/console/events?q=111", "/console/events/" + e1.ID, "/console/health", "/console/dead-letters"} {
		resp, body := f.do(t, "GET", p, f.bearer(), nil, map[string]string{"Accept": "text/html"})
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, body)
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no CSP", p)
		}
		assertNoSecrets(t, p, body)
	}
	_, page := f.do(t, "GET", "/console/events/"+e1.ID, f.bearer(), nil, map[string]string{"Accept": "text/html"})
	for _, want := range []string{"POST /books/v3/invoices?organization_id=10234695", "The invoice has been created.", "deal-won-create-invoice", "CRM-DEAL-111"} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks %q", want)
		}
	}
}

func TestConsoleDeadLettersReplayWithPreview(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	now := time.Now().UTC()
	var dead []*events.Envelope
	for i := range 3 {
		e := deal(fmt.Sprint("dl", i), fmt.Sprint(900+i), now.Add(time.Duration(i)*time.Millisecond))
		r := f.publish(t, e)
		cause := worker.Permanent(&worker.Failure{Rule: "deal-won-create-invoice", Step: "invoice", Action: "books.create_record", Err: errors.New("zoho: 400 code 2: Invalid value passed")})
		if err := f.dlq.DeadLetter(ctx, &worker.Message{Envelope: e, Sequence: r.Sequence, Subject: r.Subject, Delivered: 1}, cause); err != nil {
			t.Fatal(err)
		}
		f.outcome(e, r.Sequence, worker.OutcomeDeadLettered, &worker.Report{Outcome: "failed", Rules: []string{"deal-won-create-invoice"}, Calls: 1}, time.Millisecond)
		dead = append(dead, e)
	}
	// The third one is in doubt: its step was started and never answered.
	entry, _ := f.journal.Load(ctx, dead[2].ID)
	if err := entry.Start(ctx, "deal-won-create-invoice/invoice", "books.create_record", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three dead letters indexed", func() bool {
		return len(f.c.Index().List(Filter{Status: StatusDeadLettered}, 0, 0, 10).Events) == 3
	})
	var dls struct {
		DeadLetters []DeadLetterView `json:"dead_letters"`
		Total       int              `json:"total"`
	}
	f.getJSON(t, "/console/api/dead-letters", &dls)
	if dls.Total != 3 || len(dls.DeadLetters) != 3 || dls.DeadLetters[0].ID != dead[2].ID || !dls.DeadLetters[0].InDoubt ||
		dls.DeadLetters[1].Rule != "deal-won-create-invoice" || dls.DeadLetters[1].Step != "invoice" || !strings.Contains(dls.DeadLetters[1].Error, "Invalid value") {
		t.Fatalf("dead letters: %+v", dls)
	}
	workSeq := func() uint64 {
		s, _ := f.env.JS.Stream(ctx, f.env.Stream.Name)
		info, _ := s.Info(ctx)
		return info.State.LastSeq
	}
	before := workSeq()
	post := func(path, body string) (*http.Response, string) {
		return f.do(t, "POST", path, f.bearer(), strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	}
	// Replaying needs a preview's count; a wrong one sends nothing.
	if resp, body := post("/console/api/dead-letters/replay", `{"all":true}`); resp.StatusCode != 400 || !strings.Contains(body, "dry_run") {
		t.Fatalf("replay without a preview: %d %s", resp.StatusCode, body)
	}
	resp, body := post("/console/api/dead-letters/replay", `{"all":true,"dry_run":true}`)
	var preview struct {
		WouldReplay int           `json:"would_replay"`
		Preview     ReplayPreview `json:"preview"`
	}
	if err := json.Unmarshal([]byte(body), &preview); err != nil || resp.StatusCode != 200 || preview.WouldReplay != 2 || len(preview.Preview.Skipped) != 1 {
		t.Fatalf("preview: %d %s", resp.StatusCode, body)
	}
	if resp, body := post("/console/api/dead-letters/replay", `{"all":true,"expect":3}`); resp.StatusCode != 409 || !strings.Contains(body, `"would_replay":2`) {
		t.Fatalf("replay with a stale count: %d %s", resp.StatusCode, body)
	}
	if workSeq() != before {
		t.Fatal("a refused replay published something")
	}
	// Cross-site and tokenless form posts are refused before anything runs.
	form := url.Values{"all": {"1"}}.Encode()
	for name, h := range map[string]map[string]string{
		"cross-site":  {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
		"other-host":  {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
		"no token":    {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"},
		"cross-json":  {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
		"text/plain:": {"Content-Type": "text/plain"},
	} {
		resp, body := f.do(t, "POST", "/console/dead-letters/replay", f.bearer(), strings.NewReader(form), h)
		if resp.StatusCode != 403 && resp.StatusCode != 415 {
			t.Errorf("%s POST: %d %s", name, resp.StatusCode, body)
		}
	}
	if resp, _ := f.do(t, "GET", "/console/dead-letters/replay", f.bearer(), nil, nil); resp.StatusCode != 405 {
		t.Errorf("GET on a state-changing route: %d; want 405", resp.StatusCode)
	}
	if workSeq() != before {
		t.Fatal("a refused request published something")
	}
	// The form flow: preview page, then confirm with the count it showed.
	token := f.c.formToken()
	resp, page := f.do(t, "POST", "/console/dead-letters/preview", f.bearer(), strings.NewReader(url.Values{"csrf": {token}, "all": {"1"}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin", "Accept": "text/html"})
	if resp.StatusCode != 200 || !strings.Contains(page, "This will replay <b>2</b> events") {
		t.Fatalf("preview page: %d\n%s", resp.StatusCode, page)
	}
	if workSeq() != before {
		t.Fatal("the preview published something")
	}
	// Ids in page order (newest first): they go back oldest first.
	confirm := url.Values{"csrf": {token}, "expect": {"2"}, "id": {dead[1].ID, dead[0].ID}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", f.srv.URL+"/console/dead-letters/replay", strings.NewReader(confirm.Encode()))
	req.Header.Set("Authorization", f.bearer())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	r2, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 303 || !strings.Contains(r2.Header.Get("Location"), "replayed=2") {
		t.Fatalf("confirm: %d %s", r2.StatusCode, r2.Header.Get("Location"))
	}
	if got := workSeq(); got != before+2 {
		t.Fatalf("work stream grew by %d; want the 2 replayed events", got-before)
	}
	waitFor(t, "the replayed events back in the list, waiting", func() bool {
		p := f.c.Index().List(Filter{}, 0, 0, 2)
		return len(p.Events) == 2 && p.Events[0].Replays == 1 && p.Events[1].Replays == 1 && p.Events[0].Status == StatusWaiting
	})
	s0, _ := f.c.Index().Lookup(dead[0].ID)
	s1, _ := f.c.Index().Lookup(dead[1].ID)
	if s0.Seq >= s1.Seq {
		t.Errorf("replayed newest first: %s at %d, %s at %d", dead[0].ID, s0.Seq, dead[1].ID, s1.Seq)
	}
	// The in-doubt one: resolve "done" records the step and replays it.
	if resp, body := post("/console/api/dead-letters/"+dead[2].ID+"/replay", `{}`); resp.StatusCode != 409 || !strings.Contains(body, "in doubt") {
		t.Fatalf("plain replay of an in-doubt dead letter: %d %s", resp.StatusCode, body)
	}
	if resp, body := post("/console/api/dead-letters/"+dead[2].ID+"/resolve", `{"decision":"done"}`); resp.StatusCode != 200 {
		t.Fatalf("resolve: %d %s", resp.StatusCode, body)
	}
	rec, _ := f.journal.Get(ctx, dead[2].ID)
	if s := rec.Steps["deal-won-create-invoice/invoice"]; s == nil || s.State != worker.StepDone {
		t.Fatalf("after resolve done: %+v", s)
	}
	if n, _ := f.dlq.Count(ctx); n != 0 {
		t.Fatalf("%d dead letters left", n)
	}
	if got := workSeq(); got != before+3 {
		t.Fatalf("work stream grew by %d; want 3", got-before)
	}
	// The event page's form: "Zoho did not: send it again".
	e := deal("dl-page", "990", now)
	r := f.publish(t, e)
	cause := worker.Permanent(&worker.Failure{Rule: "deal-won-create-invoice", Step: "invoice", Action: "books.create_record", Err: errors.New("in doubt")})
	if err := f.dlq.DeadLetter(ctx, &worker.Message{Envelope: e, Sequence: r.Sequence, Subject: r.Subject, Delivered: 1}, cause); err != nil {
		t.Fatal(err)
	}
	entry, _ = f.journal.Load(ctx, e.ID)
	if err := entry.Start(ctx, "deal-won-create-invoice/invoice", "books.create_record", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the in-doubt event indexed", func() bool { _, ok := f.c.Index().Lookup(e.ID); return ok })
	_, page = f.do(t, "GET", "/console/events/"+e.ID, f.bearer(), nil, map[string]string{"Accept": "text/html"})
	if !strings.Contains(page, `id="resolve-resend"`) || strings.Contains(page, `id="replay"`) {
		t.Fatalf("the in-doubt event's page offers no decision (or a plain replay)")
	}
	req, _ = http.NewRequest("POST", f.srv.URL+"/console/dead-letters/"+e.ID+"/resolve", strings.NewReader(url.Values{"csrf": {token}, "decision": {"resend"}}.Encode()))
	req.Header.Set("Authorization", f.bearer())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	r2, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 303 || !strings.Contains(r2.Header.Get("Location"), "resolved=resend") {
		t.Fatalf("resolve form: %d %s", r2.StatusCode, r2.Header.Get("Location"))
	}
	rec, _ = f.journal.Get(ctx, e.ID)
	if s := rec.Steps["deal-won-create-invoice/invoice"]; s == nil || s.State != worker.StepRefused {
		t.Fatalf("after resend: %+v; want refused (sent again, not in doubt)", s)
	}
}

// The live stream sends a new event to a reader filtered on its module.
func TestConsoleStreamsChanges(t *testing.T) {
	f := newFixture(t, 0)
	waitFor(t, "index loaded", f.c.Index().Loaded)
	req, _ := http.NewRequest("GET", f.srv.URL+"/console/api/events/stream?module=Deals", nil)
	req.Header.Set("Authorization", f.bearer())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	lead := deal("lead", "444", time.Now())
	lead.Module = "Leads"
	d := deal("deal", "555", time.Now())
	go func() {
		f.publish(t, lead)
		f.publish(t, d)
	}()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var s EventSummary
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.ID == "" {
			continue
		}
		if s.ID != d.ID || s.Module != "Deals" || s.Status != StatusWaiting {
			t.Fatalf("streamed %+v; want only the Deal", s)
		}
		return
	}
	t.Fatalf("stream ended: %v", sc.Err())
}

// A console whose index is smaller than the history still finds every
// event of a record: record lookups read the streams by subject.
func TestRecordLookupsReachBeyondTheIndex(t *testing.T) {
	f := newFixture(t, 5)
	now := time.Now().UTC()
	var first *events.Envelope
	for i := range 12 {
		e := deal(fmt.Sprint("many", i), fmt.Sprint(7000+i%3), now.Add(time.Duration(i)*time.Millisecond))
		r := f.publish(t, e)
		if i == 0 {
			first = e
			f.outcome(e, r.Sequence, worker.OutcomeAcked, &worker.Report{Outcome: "condition_false"}, time.Millisecond)
		}
	}
	waitFor(t, "index full", func() bool { st := f.c.Index().Stats(); return st.Loaded && st.Events == 5 && !st.Complete })
	if _, ok := f.c.Index().Lookup(first.ID); ok {
		t.Fatal("the first event is still in a 5-event index")
	}
	var list ListResult
	f.getJSON(t, "/console/api/events?record=7000", &list)
	if len(list.Events) != 4 || list.Via != "streams" {
		t.Fatalf("record 7000: %+v", list)
	}
	last := list.Events[3]
	if last.ID != first.ID || last.Status != StatusSkipped || last.Detail != "condition_false" {
		t.Fatalf("oldest event of the record: %+v", last)
	}
}
