package app

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// doctorRules listen to CRM notifications (a channel is needed), update
// CRM and read Books (an organization is needed).
const doctorRules = `version: 1
rules:
  - name: deal-updated
    on: { source: crm.notify, module: Deals, operation: update }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: seen } }
      - action: books.get_records
        with: { entity: invoices }
`

const doctorNotifyURL = "https://hooks.example.com/zoho/crm/notify"

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runDoctor runs `worker doctor -json` with vars as the environment.
func runDoctor(t *testing.T, vars map[string]string, args ...string) (int, *DoctorReport) {
	t.Helper()
	code, out, errs := runWorkerMain(t, func(k string) string { return vars[k] }, append([]string{"doctor", "-json"}, args...)...)
	var rep DoctorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor -json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if rep.OK != (code == ExitOK) || (code != ExitOK && code != ExitFailure) {
		t.Fatalf("doctor exit %d with ok=%v", code, rep.OK)
	}
	return code, &rep
}

func line(t *testing.T, rep *DoctorReport, name string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %q line in %s", name, dump(rep))
	return Check{}
}

func dump(rep *DoctorReport) string {
	var b strings.Builder
	printDoctor(&b, rep)
	return b.String()
}

// wantOnly asserts that the named line has status (and mentions want),
// and that every other line is ok or one of the allowed statuses.
func wantOnly(t *testing.T, rep *DoctorReport, name, status, want string, others map[string]string) {
	t.Helper()
	c := line(t, rep, name)
	if c.Status != status || !strings.Contains(c.Detail+" → "+c.Fix, want) {
		t.Errorf("%s: %s %q, want %s mentioning %q\n%s", name, c.Status, c.Detail+" → "+c.Fix, status, want, dump(rep))
	}
	for _, o := range rep.Checks {
		if o.Name == name {
			continue
		}
		allowed := checkOK
		if s, ok := others[o.Name]; ok {
			allowed = s
		}
		if o.Status != allowed {
			t.Errorf("%s is %s (%s), want %s: one thing broken at a time\n%s", o.Name, o.Status, o.Detail, allowed, dump(rep))
		}
	}
}

// The healthy baseline and one thing broken at a time: each run names the
// failing line and what to do; every other line stays as it was.
func TestDoctor(t *testing.T) {
	env := startLayout(t) // 4 partitions
	ctx := context.Background()
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	rulesFile := writeFile(t, "rules.yaml", doctorRules)
	healthy := map[string]string{"ZOHOOK_NATS_URL": env.Embedded.ClientURL(), "ZOHOOK_RULES": rulesFile, "ZOHOOK_NOTIFY_URL": doctorNotifyURL,
		zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret, zoho.EnvRefreshToken: cr.RefreshToken,
		zoho.EnvAccountsURL: fake.URL(), zoho.EnvBooksOrgID: cr.OrgID}
	with := func(k, v string) map[string]string {
		m := maps.Clone(healthy)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	// What a running fleet has: the channel subscribed (which also caches
	// the fleet's access token in NATS) and a worker holding every partition.
	if code, out, errs := runWorkerMain(t, func(k string) string { return healthy[k] }, "channels", "sync"); code != ExitOK || !strings.Contains(out, "created: 1") {
		t.Fatalf("channels sync: %d %s %s", code, out, errs)
	}
	member, stopMember := joinMember(t, env, "worker-a")
	member.SetHeld([]int{0, 1, 2, 3})
	waitHolds(t, env, map[string][]int{"worker-a": {0, 1, 2, 3}})
	cachedScopes := map[string]string{"scopes default": checkSkip} // the fleet's cache does not record scopes

	t.Run("healthy", func(t *testing.T) {
		refreshes := fake.TokenRefreshes()
		before := snapshot(t, env.JS)
		code, rep := runDoctor(t, healthy)
		diffSnapshots(t, "doctor", before, snapshot(t, env.JS))
		if code != ExitOK {
			t.Fatalf("exit %d\n%s", code, dump(rep))
		}
		var names []string
		for _, c := range rep.Checks {
			names = append(names, c.Name)
		}
		want := []string{"rules", "connection default", "nats", "jetstream", "layout", "replicas", "backlog", "dead letters", "workers",
			"partitions", "token default", "scopes default", "books default", "channels default"}
		if !slices.Equal(names, want) {
			t.Fatalf("checks %v, want %v", names, want)
		}
		wantOnly(t, rep, "token default", checkOK, "the fleet's shared token", cachedScopes)
		if c := line(t, rep, "channels default"); !strings.Contains(c.Detail, doctorNotifyURL) || !strings.Contains(c.Detail, "expires in") {
			t.Errorf("channels: %+v", c)
		}
		if c := line(t, rep, "workers"); c.Detail != "1 alive: worker-a (4 partitions)" {
			t.Errorf("workers: %+v", c)
		}
		if fake.TokenRefreshes() != refreshes {
			t.Error("doctor spent a refresh although the fleet had a valid token")
		}
		// The text form: one line per check, status first.
		code, out, _ := runWorkerMain(t, func(k string) string { return healthy[k] }, "doctor")
		if code != ExitOK || !strings.Contains(out, "ok    nats ") || !strings.Contains(out, "skip  scopes default") || !strings.HasSuffix(out, "no failure, 0 warning(s), 1 skipped\n") {
			t.Fatalf("doctor: %d\n%s", code, out)
		}
	})
	t.Run("credentials missing", func(t *testing.T) {
		code, rep := runDoctor(t, with(zoho.EnvClientSecret, ""))
		if code != ExitFailure {
			t.Fatalf("exit %d", code)
		}
		// The connection cannot be used: no Zoho check runs for it.
		wantOnly(t, rep, "connection default", checkFail, zoho.EnvClientSecret, nil)
	})
	t.Run("Books organization not set", func(t *testing.T) {
		_, rep := runDoctor(t, with(zoho.EnvBooksOrgID, ""))
		others := maps.Clone(cachedScopes)
		others["books default"] = checkSkip
		wantOnly(t, rep, "connection default", checkFail, `rule "deal-updated" uses Books but the connection has no Books organization id → set ZOHOOK_ZOHO_BOOKS_ORG_ID`, others)
	})
	t.Run("Books organization unknown", func(t *testing.T) {
		_, rep := runDoctor(t, with(zoho.EnvBooksOrgID, "999"))
		wantOnly(t, rep, "books default", checkFail, "organization 999 is not one of this user's: "+cr.OrgID+" (Zillum)", cachedScopes)
	})
	t.Run("base URL wrong", func(t *testing.T) {
		_, rep := runDoctor(t, with(zoho.EnvAPIURL, fake.URL()+"/crm/v8"))
		wantOnly(t, rep, "connection default", checkFail, "already carries the CRM API path", nil)
	})
	t.Run("rules invalid", func(t *testing.T) {
		bad := writeFile(t, "bad.yaml", strings.Replace(doctorRules, "crm.update_record", "crm.update_recrod", 1))
		_, rep := runDoctor(t, with("ZOHOOK_RULES", bad))
		// Without rules nothing says which scopes or channels are needed.
		others := map[string]string{"scopes default": checkSkip}
		wantOnly(t, rep, "rules", checkFail, "worker rules check", others)
	})
	t.Run("rules with warnings", func(t *testing.T) {
		warned := writeFile(t, "warned.yaml", doctorRules+`  - name: task
    on: { source: crm.notify, module: Deals, operation: update }
    steps:
      - action: crm.create_record
        with: { module: Tasks, data: { Subject: x } }
`)
		code, rep := runDoctor(t, with("ZOHOOK_RULES", warned))
		if code != ExitOK {
			t.Fatalf("warnings are not failures: exit %d", code)
		}
		wantOnly(t, rep, "rules", checkWarn, "duplicate_check_fields", cachedScopes)
	})
	t.Run("channel points elsewhere", func(t *testing.T) {
		_, rep := runDoctor(t, with("ZOHOOK_NOTIFY_URL", "https://new.example.com/zoho/crm/notify"))
		wantOnly(t, rep, "channels default", checkFail, "points at "+doctorNotifyURL+", not -notify-url https://new.example.com/zoho/crm/notify", cachedScopes)
	})
	t.Run("channel gone", func(t *testing.T) {
		getenv := func(k string) string { return healthy[k] }
		if code, _, errs := runWorkerMain(t, getenv, "channels", "disable"); code != ExitOK || len(fake.Channels()) != 0 {
			t.Fatalf("channels disable: %d %s", code, errs)
		}
		_, rep := runDoctor(t, healthy)
		wantOnly(t, rep, "channels default", checkFail, "Deals: no channel at Zoho (needs Deals.edit) → worker channels sync", cachedScopes)
		if code, _, errs := runWorkerMain(t, getenv, "channels", "sync"); code != ExitOK {
			t.Fatalf("channels sync: %d %s", code, errs)
		}
	})
	t.Run("scopes missing", func(t *testing.T) {
		// A refresh token granted without the notification and COQL scopes.
		g, err := zoho.NewOAuth(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, AccountsURL: fake.URL()}, nil).Exchange(ctx, fake.IssueGrantCode(), "")
		if err != nil {
			t.Fatal(err)
		}
		refreshes := fake.TokenRefreshes()
		code, rep := runDoctor(t, with(zoho.EnvRefreshToken, g.RefreshToken), "-check-scopes")
		if code != ExitFailure {
			t.Fatalf("exit %d", code)
		}
		wantOnly(t, rep, "scopes default", checkFail, "missing: ZohoCRM.notifications.READ (notification channels)", nil)
		if fake.TokenRefreshes() != refreshes+1 {
			t.Errorf("-check-scopes spent %d refreshes, want 1", fake.TokenRefreshes()-refreshes)
		}
	})
	t.Run("backlog late", func(t *testing.T) {
		pub := events.NewPublisher(env.JS, env.Stream)
		if _, err := pub.Publish(ctx, []*events.Envelope{{ID: "ev-doctor-1", Source: events.SourceCRMNotify, Connection: "default",
			Module: "Deals", Operation: "update", RecordID: "5725767000000524157", ReceivedAt: time.Now().UTC()}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		code, rep := runDoctor(t, healthy, "-late", "10ms")
		if code != ExitOK {
			t.Fatalf("a late backlog is a warning: exit %d", code)
		}
		wantOnly(t, rep, "backlog", checkWarn, "1 event(s) waiting (1 pending, 0 ack pending), the oldest stored", cachedScopes)
		_, rep = runDoctor(t, healthy)
		wantOnly(t, rep, "backlog", checkOK, "1 event(s) waiting", cachedScopes)
	})
	t.Run("dead letter", func(t *testing.T) {
		dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, events.NewPublisher(env.JS, env.Stream))
		if err != nil {
			t.Fatal(err)
		}
		ev := &events.Envelope{ID: "ev-doctor-dead", Source: events.SourceCRMNotify, Connection: "default", Module: "Deals",
			Operation: "update", RecordID: "5725767000000524158", ReceivedAt: time.Now().UTC()}
		if err := dlq.DeadLetter(ctx, &worker.Message{Envelope: ev, Sequence: 1, Delivered: 1, Subject: "zoho.x"}, worker.Permanent(errors.New("refused"))); err != nil {
			t.Fatal(err)
		}
		_, rep := runDoctor(t, healthy)
		wantOnly(t, rep, "dead letters", checkWarn, "1 dead letter(s): events whose actions did not happen → worker dlq list", cachedScopes)
		if err := dlq.Replay(ctx, ev.ID); err != nil { // back to one thing at a time
			t.Fatal(err)
		}
	})
	t.Run("token refused", func(t *testing.T) {
		kv, err := env.JS.KeyValue(ctx, fleet.DefaultTokenBucket)
		if err != nil {
			t.Fatal(err)
		}
		if err := kv.Delete(ctx, "default.token"); err != nil { // the cached token expired, say
			t.Fatal(err)
		}
		_, rep := runDoctor(t, with(zoho.EnvRefreshToken, "1000.revoked.token"))
		wantOnly(t, rep, "token default", checkFail, "invalid_code → the refresh token is revoked, wrong or for another client",
			map[string]string{"zoho default": checkSkip})
		// The failed refresh is recorded for the fleet (which then waits a
		// minute): clear it, and a good refresh token works at once.
		if err := kv.Delete(ctx, "default.token"); err != nil {
			t.Fatal(err)
		}
		refreshes := fake.TokenRefreshes()
		_, rep = runDoctor(t, healthy)
		wantOnly(t, rep, "token default", checkOK, "refreshed (spent one of Zoho's 10 refreshes per 10 minutes), now shared with the workers", nil)
		if fake.TokenRefreshes() != refreshes+1 {
			t.Errorf("%d refreshes spent, want 1", fake.TokenRefreshes()-refreshes)
		}
	})

	t.Run("partition held by no worker", func(t *testing.T) {
		member.SetHeld([]int{0, 1, 2})
		waitHolds(t, env, map[string][]int{"worker-a": {0, 1, 2}})
		_, rep := runDoctor(t, healthy)
		wantOnly(t, rep, "partitions", checkFail, "partition(s) (3) of 4 held by no worker", cachedScopes)
	})
	t.Run("no worker", func(t *testing.T) {
		stopMember()
		if err := member.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		_, rep := runDoctor(t, healthy)
		others := maps.Clone(cachedScopes)
		others["partitions"] = checkSkip
		wantOnly(t, rep, "workers", checkFail, "no worker process is alive", others)
	})
	t.Run("NATS unreachable", func(t *testing.T) {
		refreshes := fake.TokenRefreshes()
		start := time.Now()
		_, rep := runDoctor(t, with("ZOHOOK_NATS_URL", closedPort(t)))
		others := map[string]string{"jetstream": checkSkip, "layout": checkSkip, "workers": checkSkip, "token default": checkSkip}
		wantOnly(t, rep, "nats", checkFail, "cannot reach NATS at", others)
		if fake.TokenRefreshes() != refreshes || time.Since(start) > 7*time.Second {
			t.Errorf("without NATS: %d refreshes spent, took %s", fake.TokenRefreshes()-refreshes, time.Since(start))
		}
	})
}

// A layout object missing is named, with what creates it.
func TestDoctorLayoutMissing(t *testing.T) {
	env := startLayout(t)
	if err := env.JS.DeleteStream(context.Background(), worker.DefaultDLQStream); err != nil {
		t.Fatal(err)
	}
	code, rep := runDoctor(t, map[string]string{"ZOHOOK_NATS_URL": env.Embedded.ClientURL(), "ZOHOOK_RULES": writeFile(t, "r.yaml", doctorRules)})
	if code != ExitFailure {
		t.Fatalf("exit %d", code)
	}
	c := line(t, rep, "layout")
	if c.Status != checkFail || !strings.Contains(c.Detail, "stream ZOHOOK_DLQ") || !strings.Contains(c.Fix, "worker setup -apply") {
		t.Fatalf("layout: %+v", c)
	}
	if c := line(t, rep, "replicas"); c.Status != checkSkip {
		t.Fatalf("replicas: %+v", c)
	}
}

// A NATS server without JetStream: the jetstream line fails.
func TestDoctorJetStreamDisabled(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	_, rep := runDoctor(t, map[string]string{"ZOHOOK_NATS_URL": s.ClientURL(), "ZOHOOK_RULES": writeFile(t, "r.yaml", doctorRules)})
	if c := line(t, rep, "nats"); c.Status != checkOK {
		t.Fatalf("nats: %+v", c)
	}
	if c := line(t, rep, "jetstream"); c.Status != checkFail || !strings.Contains(c.Fix, "nats-server -js") {
		t.Fatalf("jetstream: %+v\n%s", c, dump(rep))
	}
}

func TestReplicasCheck(t *testing.T) {
	for _, c := range []struct {
		servers  int
		replicas map[string]int
		status   string
		want     string
	}{
		{1, map[string]int{"ZOHOOK_WORK": 1, "KV_zohook_journal": 1}, checkOK, "every stream and bucket has 1 replica(s); 1 NATS server(s) known"},
		{3, map[string]int{"ZOHOOK_WORK": 3, "KV_zohook_journal": 3}, checkOK, "3 replica(s)"},
		{3, map[string]int{"ZOHOOK_WORK": 1, "KV_zohook_journal": 1}, checkWarn, "losing one server loses what it stores → worker setup -apply -stream-replicas 3"},
		{3, map[string]int{"ZOHOOK_WORK": 3, "ZOHOOK_DLQ": 1}, checkWarn, "1 replica(s): ZOHOOK_DLQ; 3 replica(s): ZOHOOK_WORK"},
		{1, map[string]int{"ZOHOOK_WORK": 3}, checkFail, "ZOHOOK_WORK with 3 replicas, but the connection knows 1 NATS server(s)"},
	} {
		got := replicasCheck(c.servers, c.replicas)
		if got.Status != c.status || !strings.Contains(got.Detail+" → "+got.Fix, c.want) {
			t.Errorf("%d servers %v: %+v, want %s %q", c.servers, c.replicas, got, c.status, c.want)
		}
	}
}

// Channel states the fake cannot be put in quickly (expiry passing, a
// token that differs) are judged by the same function.
func TestChannelsVerdict(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ok := channels.Status{ChannelID: "7000000001", Module: "Deals", Events: []string{"Deals.all"}, NotifyURL: doctorNotifyURL,
		Expiry: now.Add(100 * time.Hour), AtZoho: true, InBucket: true, TokenMatches: true}
	mod := func(f func(*channels.Status)) []channels.Status {
		s := ok
		f(&s)
		return []channels.Status{s}
	}
	for _, c := range []struct {
		name   string
		sts    []channels.Status
		url    string
		status string
		want   string
	}{
		{"fine", []channels.Status{ok}, doctorNotifyURL, checkOK, "Deals: 7000000001, expires in 100h → " + doctorNotifyURL},
		{"url unknown", []channels.Status{ok}, "", checkWarn, "-notify-url not given"},
		{"expired", mod(func(s *channels.Status) { s.Expiry = now.Add(-time.Minute) }), doctorNotifyURL, checkFail, "expired at 2026-12-01T11:59:00Z"},
		{"expiring", mod(func(s *channels.Status) { s.Expiry = now.Add(3 * time.Hour) }), doctorNotifyURL, checkWarn, "expires in 3h → renewal seems to fail"},
		{"token differs", mod(func(s *channels.Status) { s.TokenMatches = false }), doctorNotifyURL, checkFail, "refuses its notifications with 401"},
		{"events lacking", mod(func(s *channels.Status) { s.Events = []string{"Deals.create"} }), doctorNotifyURL, checkFail, "lacks Deals.edit"},
		{"only in the bucket", mod(func(s *channels.Status) { s.AtZoho = false }), doctorNotifyURL, checkFail, "no channel at Zoho"},
	} {
		got := channelsVerdict([]string{"Deals.edit"}, c.sts, c.url, now)
		if got.Status != c.status || !strings.Contains(got.Detail+" → "+got.Fix, c.want) {
			t.Errorf("%s: %+v, want %s %q", c.name, got, c.status, c.want)
		}
	}
}

// The scopes a rules file needs come from its actions and triggers.
func TestNeededScopes(t *testing.T) {
	env := writeFile(t, "r.yaml", doctorRules+`  - name: lookup
    on: { source: crm.workflow, module: Contacts, connection: eu }
    load_record: true
    steps:
      - action: crm.coql
        with: { query: "select id from Contacts where id = 1" }
`)
	d := &doctor{o: DoctorOptions{Rules: env}}
	d.checkRules()
	if d.set == nil {
		t.Fatalf("rules: %+v", d.checks)
	}
	var got []string
	needs, _ := neededScopes(d.set, "default")
	for _, n := range needs {
		got = append(got, n.String())
	}
	want := []string{"ZohoCRM.notifications.READ", "ZohoCRM.notifications.CREATE", "ZohoCRM.notifications.UPDATE", "ZohoCRM.notifications.DELETE",
		"ZohoCRM.modules.<module>.UPDATE", "ZohoBooks.<entity>.READ"}
	if !slices.Equal(got, want) {
		t.Fatalf("default needs %v, want %v", got, want)
	}
	got = nil
	needs, _ = neededScopes(d.set, "eu")
	for _, n := range needs {
		got = append(got, n.String())
	}
	for _, w := range []string{"ZohoCRM.modules.contacts.READ", "ZohoCRM.coql.READ", "ZohoCRM.modules.<module>.READ"} {
		if !slices.Contains(got, w) {
			t.Errorf("eu needs %v, lacks %s", got, w)
		}
	}
}

// Every connection of the -config file is checked: a secret its entry
// names but the environment lacks fails that connection's line only.
func TestDoctorConfigFileConnections(t *testing.T) {
	env := startLayout(t)
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	cfg := writeFile(t, "zohook.yaml", `connections:
  acme-in:
    dc: in
    client_id: 1000.YYYYYYYY
    client_secret: {env: ACME_CLIENT_SECRET}
    refresh_token: {env: ACME_REFRESH_TOKEN}
`)
	vars := map[string]string{"ZOHOOK_NATS_URL": env.Embedded.ClientURL(), "ZOHOOK_RULES": writeFile(t, "r.yaml", doctorRules),
		"ZOHOOK_CONFIG": cfg, "ACME_CLIENT_SECRET": "s3cret",
		zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret, zoho.EnvRefreshToken: cr.RefreshToken,
		zoho.EnvAccountsURL: fake.URL(), zoho.EnvBooksOrgID: cr.OrgID}
	_, rep := runDoctor(t, vars)
	if c := line(t, rep, "config"); c.Status != checkOK || !strings.Contains(c.Detail, "1 connection(s)") {
		t.Fatalf("config: %+v", c)
	}
	c := line(t, rep, "connection acme-in")
	if c.Status != checkFail || !strings.Contains(c.Detail, "refresh_token") || strings.Contains(c.Detail, "s3cret") {
		t.Fatalf("connection acme-in: %+v\n%s", c, dump(rep))
	}
	if c := line(t, rep, "connection default"); c.Status != checkOK {
		t.Fatalf("connection default: %+v", c)
	}
	for _, ch := range rep.Checks {
		if strings.HasSuffix(ch.Name, " acme-in") && ch.Name != "connection acme-in" {
			t.Errorf("a broken connection was checked at Zoho: %+v", ch)
		}
	}
}
