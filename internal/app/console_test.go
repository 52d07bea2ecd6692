package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// consoleSystem is zohook in one process as -dev runs it (embedded NATS
// with the layout, the receiver, the in-process worker with the example
// rules, the fake Zoho), with the console served through serveConsole on
// an admin listener, as `worker -console` serves it.
type consoleSystem struct {
	fake        *zohotest.Server
	demo        zohotest.Demo
	receiverURL string
	consoleURL  string
	password    string
	token       string
	logs        *syncBuffer
}

const consoleTestToken = "console-test-notify-token-7f3a"

func startConsoleSystem(t *testing.T, password string) *consoleSystem {
	t.Helper()
	env := startLayout(t)
	ctx, cancel := context.WithCancel(context.Background())
	bb := &Backbone{NC: env.NC, JS: env.JS}
	if err := readLayout(ctx, bb); err != nil {
		t.Fatal(err)
	}
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	fake.BooksInsert(demo.OrgID, "items", map[string]any{"item_id": demoItemID, "name": "Annual licence", "rate": 1200})
	cr := fake.Credentials()
	getenv := func(k string) string {
		if k == ConsolePasswordEnv {
			return password
		}
		return ""
	}
	o := WorkerOptions{Rules: "../../rules.yaml", Concurrency: 4, MaxDeliver: 3, Name: "worker-1",
		CRMRate: "50000/24h", CRMBurst: 1000, BooksRate: "90/1m", BooksBurst: 10,
		RatePatience: time.Minute, EventTimeout: time.Minute, TokenRetry: time.Minute, ShutdownGrace: time.Second, Getenv: getenv,
		ZohoOverride: &zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
			DC: "us", AccountsURL: fake.URL(), BooksOrgID: cr.OrgID}}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	workerDone := make(chan error, 1)
	go func() { workerDone <- runWorkerOn(ctx, bb, o, log, reg) }()

	tokens, _, _, err := receiverSources(nil, []string{consoleTestToken}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := receiver.New(receiver.Config{Publisher: events.NewPublisher(bb.JS, bb.Stream), Ready: bb.Ready, CRMTokens: tokens,
		Connection: "default", Logger: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()

	admin := newAdmin(reg, bb.Ready)
	stopAdmin, err := admin.start("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	url, err := serveConsole(ctx, admin, bb, o, ConsoleOptions{Enabled: password != ""}, password == "", reg, log, consoleTestToken)
	if err != nil || url == "" {
		t.Fatalf("serveConsole: %q, %v", url, err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		select {
		case <-workerDone:
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
		stopAdmin()
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	return &consoleSystem{fake: fake, demo: demo, receiverURL: "http://" + l.Addr().String(), consoleURL: url, password: password,
		token: consoleTestToken, logs: logs}
}

// notify posts a CRM notification for a Deal and returns its event id.
func (s *consoleSystem) notify(t *testing.T, dealID string) string {
	t.Helper()
	body := fmt.Sprintf(`{"server_time":%d,"module":"Deals","ids":["%s"],"operation":"update","affected_fields":["Stage"],"channel_id":"1000000068001","token":%q}`,
		time.Now().UnixNano()/1e6, dealID, s.token)
	resp, err := http.Post(s.receiverURL+"/zoho/crm/notify", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Accepted int      `json:"accepted"`
		EventIDs []string `json:"event_ids"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 || out.Accepted != 1 || len(out.EventIDs) != 1 {
		t.Fatalf("notify: %d %s", resp.StatusCode, b)
	}
	return out.EventIDs[0]
}

// newDeal adds a Closed Won deal to the fake that the example rule invoices.
func (s *consoleSystem) newDeal(name string, amount float64) string {
	return s.fake.CRMInsert("Deals", map[string]any{"Deal_Name": name, "Stage": "Closed Won", "Amount": amount,
		"Account_Name": map[string]any{"id": s.demo.AccountID, "name": "Bowman & Co"}})
}

// api reads the console's JSON API with the password.
func (s *consoleSystem) api(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.consoleURL+"api/"+path, nil)
	if s.password != "" {
		req.Header.Set("Authorization", "Bearer "+s.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func (s *consoleSystem) status(t *testing.T, id string) string {
	var ev struct {
		Event struct {
			Status string `json:"status"`
		} `json:"event"`
	}
	req, _ := http.NewRequest("GET", s.consoleURL+"api/events/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+s.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return ""
	}
	_ = json.NewDecoder(resp.Body).Decode(&ev)
	return ev.Event.Status
}

// browser starts Debian's chromium headless, or skips when it is missing
// outside CI (CI installs it: .ci/run).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
		}
		t.Skip("browser test skipped: chromium is not installed (apt-get install -y chromium; in CI it must run)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 1000))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(tcancel)
	return tctx
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	must(t, err, "text of "+sel)
	return s
}

// poll waits until a JavaScript expression is true in the page.
func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
	must(t, err, what)
}

// pollAcrossReloads waits until expr is true in a page that may reload
// itself meanwhile (a poll inside the page ends with the page).
func pollAcrossReloads(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s (last error %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// navigateWithoutCredentials loads url answering the browser's login
// prompt with "cancel" (headless Chromium cannot show one), and returns
// the status and the text of the page.
func navigateWithoutCredentials(t *testing.T, ctx context.Context, url string) (int64, string) {
	t.Helper()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	paused := chromedp.Events(fctx, fetch.RequestPaused)
	auths := chromedp.Events(fctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auths {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}})
		}
	}()
	_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)})
	must(t, err, "fetch.enable")
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	must(t, err, "navigate without credentials")
	_, err = chromedp.Call(ctx, fetch.Disable, cdp.Empty{})
	must(t, err, "fetch.disable")
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	must(t, err, "page text")
	return resp.Status, body
}

// The proof, in a real browser: a notification appears live in the
// list; its page shows the steps and the Zoho call the fake recorded; a
// broken fake dead-letters an event that the page replays; a bulk replay
// shows its count before sending; no credentials → 401; a cross-site POST
// is refused.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	sys := startConsoleSystem(t, "browser-test-password-0b6e")
	base := sys.consoleURL

	// Without credentials: 401 (the browser's login prompt cancelled).
	if st, body := navigateWithoutCredentials(t, ctx, base+"events"); st != 401 || !strings.Contains(body, "authentication required") {
		t.Fatalf("console without credentials: %d %q; want 401", st, body)
	}
	// From now on the browser sends the password (HTTP Basic) with every request.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+sys.password))
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	must(t, err, "network.enable")
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
	must(t, err, "extra headers")

	// 1. A notification appears in the open list without a reload.
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"events"), chromedp.WaitVisible(chromedp.CSS("#events-table"))), "events page")
	poll(t, ctx, "the live stream connected", `!document.getElementById('live').hidden`)
	_, err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`))
	must(t, err, "mark the page")
	id := sys.notify(t, zohotest.DemoDealID)
	row := fmt.Sprintf(`document.querySelector('tr.event[data-id=%q]')`, id)
	poll(t, ctx, "the event in the list, done", row+` && `+row+`.dataset.status === 'done'`)
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded === true`)); err != nil || !ok {
		t.Fatal("the list was reloaded: the event did not appear live")
	}

	// 2. Its page: the steps, and the Zoho call the fake recorded.
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr.event[data-id=%q] a[href$=%q]`, id, id))),
		chromedp.WaitVisible(chromedp.CSS("#steps"))), "open the event")
	invoices := sys.fake.CallsTo("POST", "/books/v3/invoices")
	if len(invoices) != 1 || invoices[0].Status != 201 {
		t.Fatalf("fake invoice calls: %+v", invoices)
	}
	inv := text(t, ctx, `article.step[data-key="deal-won-create-invoice/invoice"]`)
	for _, want := range []string{"done", "POST /books/v3/invoices?organization_id=" + sys.demo.OrgID, `"reference_number": "CRM-DEAL-` + zohotest.DemoDealID + `"`, "201", "The invoice has been created."} {
		if !strings.Contains(inv, want) {
			t.Errorf("invoice step lacks %q:\n%s", want, inv)
		}
	}
	if !bytes.Contains(invoices[0].Body, []byte(`"reference_number":"CRM-DEAL-`+zohotest.DemoDealID+`"`)) {
		t.Errorf("the fake got another body than the page shows: %s", invoices[0].Body)
	}
	for _, key := range []string{"deal-won-create-invoice/contact", "deal-won-create-invoice/write_back"} {
		if st, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('article.step[data-key=%q]').dataset.state`, key))); err != nil || st != "done" {
			t.Errorf("step %s: %q %v", key, st, err)
		}
	}
	rulesText := text(t, ctx, "#rules")
	if !strings.Contains(rulesText, "lead-welcome-note") || !strings.Contains(rulesText, `module "Deals" is not Leads`) {
		t.Errorf("rules section does not say why the other rules did not match:\n%s", rulesText)
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	must(t, err, "page html")
	cr := sys.fake.Credentials()
	for _, secret := range []string{sys.token, sys.password, cr.ClientSecret, cr.RefreshToken} {
		if strings.Contains(html, secret) {
			t.Errorf("the event page shows a secret (%.6s…)", secret)
		}
	}
	if os.Getenv("ZOHOOK_UPDATE_SCREENSHOT") != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must(t, err, "screenshot")
		out := filepath.Join("..", "..", "docs", "console-event.png")
		must(t, os.WriteFile(out, png, 0o644), "write screenshot")
		t.Logf("wrote %s (%d bytes)", out, len(png))
	}

	// 3. Zoho refuses invoices: the next event is dead-lettered (live in the list).
	sys.fake.Inject(zohotest.Fault{Method: "POST", PathPrefix: "/books/v3/invoices", Status: 400})
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"events"), chromedp.WaitVisible(chromedp.CSS("#events-table"))), "events page")
	poll(t, ctx, "the live stream connected", `!document.getElementById('live').hidden`)
	deal2 := sys.newDeal("Second deal", 500)
	id2 := sys.notify(t, deal2)
	row2 := fmt.Sprintf(`document.querySelector('tr.event[data-id=%q]')`, id2)
	poll(t, ctx, "the second event dead-lettered in the list", row2+` && `+row2+`.dataset.status === 'dead_lettered'`)
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"dead-letters"), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr.deadletter[data-id=%q]`, id2)))), "dead letters page")
	dl := text(t, ctx, fmt.Sprintf(`tr.deadletter[data-id=%q]`, id2))
	for _, want := range []string{"deal-won-create-invoice", "invoice", "books.create_record", "400", deal2} {
		if !strings.Contains(dl, want) {
			t.Errorf("dead letter row lacks %q: %s", want, dl)
		}
	}
	// Fixed: replay it from the page; the call reaches the fake.
	sys.fake.ClearFaults()
	before := len(sys.fake.CallsTo("POST", "/books/v3/invoices"))
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.replay-one[data-id=%q]`, id2))), chromedp.WaitVisible(chromedp.CSS("#notice"))), "replay one")
	if n := text(t, ctx, "#notice"); !strings.Contains(n, "Replayed 1") {
		t.Errorf("notice after replay: %q", n)
	}
	pollAcrossReloads(t, ctx, "the replayed event done on its page (it reloads itself)", `document.getElementById('event-status') !== null && document.getElementById('event-status').textContent === 'done'`)
	after := sys.fake.CallsTo("POST", "/books/v3/invoices")
	if len(after) != before+1 || after[len(after)-1].Status != 201 || !bytes.Contains(after[len(after)-1].Body, []byte("CRM-DEAL-"+deal2)) {
		t.Fatalf("invoice calls after the replay: %d (was %d); last %+v", len(after), before, after[len(after)-1])
	}
	if st := text(t, ctx, `article.step[data-key="deal-won-create-invoice/invoice"]`); !strings.Contains(st, "201") {
		t.Errorf("after the replay the invoice step shows:\n%s", st)
	}

	// 4. Two more dead letters; a bulk replay shows its count before sending.
	sys.fake.Inject(zohotest.Fault{Method: "POST", PathPrefix: "/books/v3/invoices", Status: 400})
	ids := []string{sys.notify(t, sys.newDeal("Third deal", 700)), sys.notify(t, sys.newDeal("Fourth deal", 900))}
	for _, id := range ids {
		waitUntil(t, "dead-lettered "+id, func() bool { return sys.status(t, id) == "dead_lettered" })
	}
	sys.fake.ClearFaults()
	before = len(sys.fake.CallsTo("POST", "/books/v3/invoices"))
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"dead-letters"), chromedp.WaitVisible(chromedp.CSS("#replay-all")),
		chromedp.Click(chromedp.CSS("#replay-all")), chromedp.WaitVisible(chromedp.CSS("#preview-count"))), "bulk replay preview")
	if p := text(t, ctx, "#preview-count"); p != "This will replay 2 events." {
		t.Fatalf("preview: %q", p)
	}
	if n := len(sys.fake.CallsTo("POST", "/books/v3/invoices")); n != before {
		t.Fatalf("the preview sent %d invoice calls", n-before)
	}

	// 5. A page on another site posting the same form is refused (the
	// browser even sends the password along), and nothing is replayed.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%sdead-letters/replay"><input name="expect" value="2">`+
			`<input name="id" value="%s"><input name="id" value="%s"><button id="go">win a prize</button></form>`, base, ids[0], ids[1])
	}))
	defer evil.Close()
	must(t, chromedp.Do(ctx, chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)), chromedp.WaitVisible(chromedp.CSS("#go"))), "evil page")
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#go")))
	must(t, err, "cross-site post")
	if resp.Status != 403 {
		t.Fatalf("cross-site POST: %d; want 403", resp.Status)
	}
	if n := len(sys.fake.CallsTo("POST", "/books/v3/invoices")); n != before {
		t.Fatal("the cross-site POST replayed something")
	}
	for _, id := range ids {
		if st := sys.status(t, id); st != "dead_lettered" {
			t.Fatalf("after the refused cross-site POST %s is %q", id, st)
		}
	}

	// Back on the console: confirm the preview.
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"dead-letters"), chromedp.Click(chromedp.CSS("#replay-all")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-replay")), chromedp.Click(chromedp.CSS("#confirm-replay")),
		chromedp.WaitVisible(chromedp.CSS("#notice"))), "confirm the bulk replay")
	if n := text(t, ctx, "#notice"); !strings.Contains(n, "Replayed 2 event(s)") {
		t.Errorf("notice: %q", n)
	}
	waitUntil(t, "both invoices created", func() bool { return len(sys.fake.CallsTo("POST", "/books/v3/invoices")) == before+2 })
	for _, id := range ids {
		waitUntil(t, "done "+id, func() bool { return sys.status(t, id) == "done" })
	}

	// 6. Health: who serves the partitions, the backlog, the budget left.
	var h struct {
		Partitions []struct {
			Partition int    `json:"partition"`
			Member    string `json:"member"`
		} `json:"partitions"`
		Rates []struct {
			Name      string  `json:"name"`
			Available float64 `json:"available"`
			Granted   uint64  `json:"granted"`
		} `json:"rates"`
		Rules struct {
			Version string `json:"version"`
		} `json:"rules"`
	}
	// A worker reports the partitions it holds with its next heartbeat
	// (every 2.5 s), so right after it starts nobody is shown yet.
	waitUntil(t, "partition 3 served by worker-1", func() bool {
		sys.api(t, "health", &h)
		return len(h.Partitions) == 4 && h.Partitions[3].Member == "worker-1"
	})
	if h.Rules.Version == "" {
		t.Errorf("health: %+v", h)
	}
	for _, r := range h.Rates {
		if r.Name == "books-default" && (r.Granted == 0 || r.Available >= 10) {
			t.Errorf("books budget after the invoices: %+v", r)
		}
	}
	must(t, chromedp.Do(ctx, chromedp.Navigate(base+"health"), chromedp.WaitVisible(chromedp.CSS("#partitions"))), "health page")
	if w := text(t, ctx, "#workers"); !strings.Contains(w, "worker-1") || !strings.Contains(w, "0, 1, 2, 3") {
		t.Errorf("workers on the health page: %s", w)
	}
	if r := text(t, ctx, `tr.rate[data-name="books-default"]`); !strings.Contains(r, "90/1m") {
		t.Errorf("books rate on the health page: %s", r)
	}
}

// -dev serves the console without a password, on loopback only; it still
// refuses cross-site POSTs. Outside -dev, -console needs a password.
func TestConsoleServing(t *testing.T) {
	env := startLayout(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bb := &Backbone{NC: env.NC, JS: env.JS}
	must(t, readLayout(ctx, bb), "layout")
	log := slog.New(slog.DiscardHandler)
	o := WorkerOptions{Rules: "../../rules.yaml", CRMRate: "50000/24h", BooksRate: "90/1m", Getenv: func(string) string { return "" }}

	// -dev on loopback: served, no password, its URL in the banner.
	admin := newAdmin(prometheus.NewRegistry(), bb.Ready)
	stop, err := admin.start("127.0.0.1:0", log)
	must(t, err, "admin")
	defer stop()
	url, err := serveConsole(ctx, admin, bb, o, ConsoleOptions{}, true, nil, log)
	if err != nil || url != "http://"+admin.addr+"/console/" {
		t.Fatalf("dev console: %q %v", url, err)
	}
	var banner bytes.Buffer
	printConsoleBanner(&banner, url)
	if !strings.Contains(banner.String(), "console    "+url) {
		t.Errorf("banner: %q", banner.String())
	}
	resp, err := http.Get(url + "api/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("dev console without a password: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", url+"api/dead-letters/replay", strings.NewReader(`{"all":true,"dry_run":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("cross-site POST in -dev: %v %v; want 403", resp, err)
	}
	resp.Body.Close()

	// -dev on a public address without a password: not served.
	public := &adminServer{mux: http.NewServeMux(), addr: "0.0.0.0:9091"}
	if url, err := serveConsole(ctx, public, bb, o, ConsoleOptions{}, true, nil, log); url != "" || err != nil {
		t.Fatalf("dev console on 0.0.0.0 without a password: %q %v; want not served", url, err)
	}
	// Outside -dev: a password is required.
	var ue *UsageError
	if _, err := serveConsole(ctx, public, bb, o, ConsoleOptions{Enabled: true}, false, nil, log); !errors.As(err, &ue) || !strings.Contains(err.Error(), ConsolePasswordEnv) {
		t.Fatalf("-console without a password: %v", err)
	}
	// Not asked for: nothing.
	if url, err := serveConsole(ctx, public, bb, o, ConsoleOptions{}, false, nil, log); url != "" || err != nil {
		t.Fatalf("no -console: %q %v", url, err)
	}
	// With -console-password-file: 401 without it, 200 with it.
	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte("file-password-93e1c2\n"), 0o600), "password file")
	admin2 := newAdmin(prometheus.NewRegistry(), bb.Ready)
	stop2, err := admin2.start("127.0.0.1:0", log)
	must(t, err, "admin")
	defer stop2()
	url2, err := serveConsole(ctx, admin2, bb, o, ConsoleOptions{Enabled: true, PasswordFile: pwFile}, false, nil, log)
	must(t, err, "console with a password file")
	if resp, _ := http.Get(url2 + "api/health"); resp.StatusCode != 401 {
		t.Fatalf("without the password: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", url2+"api/health", nil)
	req.SetBasicAuth("ops", "file-password-93e1c2")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the password: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "file-password-93e1c2") {
		t.Fatal("the health answer shows the password")
	}
	for _, want := range []string{`"books-default"`, `"crm-default"`, `"partitions"`, `"version"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("health lacks %s", want)
		}
	}
}

// A production worker connects with the worker role's NATS permissions:
// the console it serves lists, explains and replays within them.
func TestConsoleWithinTheWorkerRole(t *testing.T) {
	dir := t.TempDir()
	emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Auth: true})
	must(t, err, "embedded nats")
	t.Cleanup(emb.Shutdown)
	adminNC, err := emb.Connect()
	must(t, err, "admin connection")
	t.Cleanup(adminNC.Close)
	adminJS, err := jetstream.New(adminNC)
	must(t, err, "jetstream")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scfg := events.StreamConfig{Partitions: 2}.WithDefaults()
	_, err = EnsureLayout(ctx, adminJS, scfg, events.ConsumerConfig{}, events.CreateMissing)
	must(t, err, "layout")
	// An event, and its dead letter, written with the admin role.
	pub := events.NewPublisher(adminJS, scfg)
	env := &events.Envelope{ID: events.DeriveID("role-test"), Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
		Operation: events.OpUpdate, RecordID: "5725767000000777001", ReceivedAt: time.Now().UTC()}
	res, err := pub.Publish(ctx, []*events.Envelope{env})
	must(t, err, "publish")
	dlq, err := worker.OpenDLQ(ctx, adminJS, worker.DLQConfig{}, pub)
	must(t, err, "dlq")
	must(t, dlq.DeadLetter(ctx, &worker.Message{Envelope: env, Sequence: res[0].Sequence, Subject: res[0].Subject, Delivered: 1},
		worker.Permanent(&worker.Failure{Rule: "r", Step: "s", Action: "a", Err: errors.New("refused")})), "dead letter")

	workerNC, err := events.Connect(events.ConnectConfig{URLs: emb.ClientURL(), Name: "zohook-worker",
		NKeySeedFile: events.EmbeddedSeedFile(dir, events.RoleWorker), FailFast: true})
	must(t, err, "worker connection")
	t.Cleanup(workerNC.Close)
	workerJS, err := jetstream.New(workerNC)
	must(t, err, "jetstream")
	bb := &Backbone{NC: workerNC, JS: workerJS}
	must(t, readLayout(ctx, bb), "layout as the worker")
	// The worker role may not create streams: prove the connection is restricted.
	// (A denied request gets no answer: bound the wait.)
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = workerJS.CreateStream(dctx, jetstream.StreamConfig{Name: "NOT_ALLOWED", Subjects: []string{"not.allowed"}})
	dcancel()
	if err == nil {
		t.Fatal("the worker role created a stream: the test is not running with its permissions")
	}
	log := slog.New(slog.DiscardHandler)
	admin := newAdmin(prometheus.NewRegistry(), bb.Ready)
	stop, err := admin.start("127.0.0.1:0", log)
	must(t, err, "admin listener")
	defer stop()
	password := "worker-role-password-55aa"
	o := WorkerOptions{Rules: "../../rules.yaml", CRMRate: "50000/24h", BooksRate: "90/1m",
		Getenv: func(k string) string { return map[string]string{ConsolePasswordEnv: password}[k] }}
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	url, err := serveConsole(cctx, admin, bb, o, ConsoleOptions{Enabled: true}, false, nil, log)
	must(t, err, "console")
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, url+"api/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+password)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err, path)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil(t, "the event listed", func() bool {
		code, body := call("GET", "events", "")
		return code == 200 && strings.Contains(body, env.ID) && strings.Contains(body, `"loaded":true`)
	})
	if code, body := call("GET", "events/"+env.ID, ""); code != 200 || !strings.Contains(body, `"dead_letter"`) || strings.Contains(body, "warnings") {
		t.Fatalf("event detail as the worker role: %d %s", code, body)
	}
	if code, body := call("GET", "health", ""); code != 200 || strings.Contains(body, "problems") {
		t.Fatalf("health as the worker role: %d %s", code, body)
	}
	if code, body := call("POST", "dead-letters/replay", `{"ids":["`+env.ID+`"],"expect":1}`); code != 200 || !strings.Contains(body, env.ID) {
		t.Fatalf("replay as the worker role: %d %s", code, body)
	}
	if n, err := dlq.Count(ctx); err != nil || n != 0 {
		t.Fatalf("dead letters after the replay: %d %v", n, err)
	}
}
