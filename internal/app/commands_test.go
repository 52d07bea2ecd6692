package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

func natsEnv(env *eventstest.Env, more map[string]string) func(string) string {
	vars := map[string]string{"ZOHOOK_NATS_URL": env.Embedded.ClientURL()}
	for k, v := range more {
		vars[k] = v
	}
	return func(k string) string { return vars[k] }
}

// joinMember joins the members bucket as name (the workers' own code) and
// reports holding what it is assigned, as a worker's runner does.
func joinMember(t *testing.T, env *eventstest.Env, name string) (*worker.Membership, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := worker.Join(ctx, env.JS, name, env.Stream.Partitions, events.KVOptions{}, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return m, cancel
}

// waitHolds waits until the members bucket shows every member holding
// what it was assigned.
func waitHolds(t *testing.T, env *eventstest.Env, want map[string][]int) {
	t.Helper()
	waitUntil(t, "member heartbeats with their partitions", func() bool {
		ms, err := worker.ReadMembers(context.Background(), env.JS)
		if err != nil || len(ms) != len(want) {
			return false
		}
		for _, m := range ms {
			if !slices.Equal(m.Holds, want[m.Name]) {
				return false
			}
		}
		return true
	})
}

// `worker status` names the worker holding each partition (not NATS's pin
// id) and lists the workers with their partition counts.
func TestStatusShowsWorkerNames(t *testing.T) {
	env := startLayout(t) // 4 partitions
	getenv := natsEnv(env, nil)
	code, out, errs := runWorkerMain(t, getenv, "status")
	if code != ExitOK || !strings.Contains(out, "workers: none alive") {
		t.Fatalf("status without workers: %d\n%s%s", code, out, errs)
	}
	// Two workers: each holds its share (p mod 2), as a runner reports it.
	assign := worker.Assign([]string{"alpha", "beta"}, env.Stream.Partitions)
	for _, name := range []string{"alpha", "beta"} {
		m, _ := joinMember(t, env, name)
		m.SetHeld(assign[name])
	}
	want := map[string][]int{"alpha": assign["alpha"], "beta": assign["beta"]}
	waitHolds(t, env, want)
	code, out, errs = runWorkerMain(t, getenv, "status")
	if code != ExitOK {
		t.Fatalf("status: %d %s", code, errs)
	}
	for _, line := range []string{"WORKER", "alpha", "beta"} {
		if !strings.Contains(out, line) {
			t.Errorf("status lacks %q:\n%s", line, out)
		}
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && (f[0] == "0" || f[0] == "1" || f[0] == "2" || f[0] == "3") {
			rows[f[0]] = f[5] // HELD BY
		}
	}
	if rows["0"] != "alpha" || rows["1"] != "beta" || rows["2"] != "alpha" || rows["3"] != "beta" {
		t.Fatalf("held by %v:\n%s", rows, out)
	}
	if !strings.Contains(out, "2 (0,2)") || !strings.Contains(out, "2 (1,3)") {
		t.Fatalf("partition counts missing:\n%s", out)
	}
	code, out, _ = runWorkerMain(t, getenv, "status", "-json")
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); code != ExitOK || err != nil {
		t.Fatalf("status -json: %d %v %s", code, err, out)
	}
	if len(st.Workers) != 2 || st.Workers[0].Name != "alpha" || st.Workers[0].Partitions != 2 || !slices.Equal(st.Workers[1].Holds, []int{1, 3}) ||
		st.Partitions[2].HeldBy != "alpha" || st.Partitions[3].HeldBy != "beta" {
		t.Fatalf("status -json: %+v", st)
	}
}

// `replay -dry-run` counts per subject and publishes nothing; a replay
// reports progress on stderr and a summary; -json has one shape for both.
func TestReplayDryRunProgressAndJSON(t *testing.T) {
	env := startLayout(t)
	ctx := context.Background()
	pub := events.NewPublisher(env.JS, env.Stream)
	var envs []*events.Envelope
	for i, op := range []string{"update", "update", "create"} {
		envs = append(envs, &events.Envelope{ID: "ev-replay-" + op + string(rune('a'+i)), Source: events.SourceCRMNotify, Connection: "default",
			Module: "Deals", Operation: op, RecordID: "57257670000005241" + string(rune('0'+i)), ReceivedAt: time.Now().UTC()})
	}
	envs = append(envs, &events.Envelope{ID: "ev-replay-contact", Source: events.SourceCRMNotify, Connection: "default",
		Module: "Contacts", Operation: "update", RecordID: "5725767000000999", ReceivedAt: time.Now().UTC()})
	if _, err := pub.Publish(ctx, envs); err != nil {
		t.Fatal(err)
	}
	getenv := natsEnv(env, nil)
	history := func() uint64 {
		s, err := env.JS.Stream(ctx, env.Stream.HistoryName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	waitUntil(t, "the history sourced the events", func() bool { return history() == 4 })

	code, out, errs := runWorkerMain(t, getenv, "replay", "-since", "1h", "-dry-run")
	if code != ExitOK || !strings.Contains(out, "4 event(s) would be re-published") || !strings.Contains(out, "nothing was published") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"zoho.crm.notify.default.deals.update     2", "zoho.crm.notify.default.deals.create     1", "zoho.crm.notify.default.contacts.update  1"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errs, "read") {
		t.Errorf("a dry run shows no progress: %s", errs)
	}
	time.Sleep(200 * time.Millisecond) // a published event would be sourced by now
	if got := history(); got != 4 {
		t.Fatalf("the dry run published: history has %d", got)
	}

	code, out, errs = runWorkerMain(t, getenv, "replay", "-since", "1h", "-subject", "zoho.crm.notify.*.deals.>", "-dry-run", "-json")
	var rj replayJSON
	if err := json.Unmarshal([]byte(out), &rj); code != ExitOK || err != nil || !rj.DryRun || rj.Events != 3 ||
		rj.BySubject["zoho.crm.notify.default.deals.update"] != 2 || rj.Subject != "zoho.crm.notify.*.deals.>" || rj.Since.IsZero() {
		t.Fatalf("dry run -json: %d %v %s %s", code, err, out, errs)
	}

	code, out, errs = runWorkerMain(t, getenv, "replay", "-since", "1h", "-subject", "zoho.crm.notify.*.contacts.>")
	if code != ExitOK || !strings.Contains(out, "1 event(s) re-published") || !strings.Contains(out, "zoho.crm.notify.default.contacts.update  1") {
		t.Fatalf("replay: %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "replay: 1 of 1 history message(s) read, 1 event(s) re-published") {
		t.Fatalf("no progress on stderr: %q", errs)
	}
	waitUntil(t, "the replayed event reached the history", func() bool { return history() == 5 })
}

// `worker auth token` uses the fleet's shared token when NATS caches a
// valid one (no refresh spent), spends one refresh (shared) otherwise,
// and says which.
func TestAuthTokenUsesTheFleetsToken(t *testing.T) {
	env := startLayout(t)
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	cr := fake.Credentials()
	zenv := map[string]string{zoho.EnvClientID: cr.ClientID, zoho.EnvClientSecret: cr.ClientSecret, zoho.EnvRefreshToken: cr.RefreshToken,
		zoho.EnvAccountsURL: fake.URL()}
	getenv := natsEnv(env, zenv)
	before := fake.TokenRefreshes()
	code, out, errs := runWorkerMain(t, getenv, "auth", "token")
	if code != ExitOK || !strings.Contains(out, "This spent one of Zoho's 10 refreshes per 10 minutes") || !strings.Contains(out, "shared with the workers") ||
		fake.TokenRefreshes() != before+1 || !strings.Contains(out, "scope:      ZohoBooks.fullaccess.all") {
		t.Fatalf("first auth token: %d (%d refreshes)\n%s%s", code, fake.TokenRefreshes()-before, out, errs)
	}
	code, out, errs = runWorkerMain(t, getenv, "auth", "token")
	if code != ExitOK || !strings.Contains(out, "the fleet's shared token, cached in NATS (no refresh spent") || fake.TokenRefreshes() != before+1 {
		t.Fatalf("second auth token: %d (%d refreshes)\n%s%s", code, fake.TokenRefreshes()-before, out, errs)
	}
	// -refresh checks the refresh token itself, spending one.
	code, out, _ = runWorkerMain(t, getenv, "auth", "token", "-refresh")
	if code != ExitOK || !strings.Contains(out, "This spent one of Zoho's 10 refreshes") || fake.TokenRefreshes() != before+2 {
		t.Fatalf("auth token -refresh: %d\n%s", code, out)
	}
	// NATS out of reach: it says so, then spends one.
	zenv["ZOHOOK_NATS_URL"] = closedPort(t)
	code, out, errs = runWorkerMain(t, func(k string) string { return zenv[k] }, "auth", "token")
	if code != ExitOK || !strings.Contains(errs, "cannot reach NATS at") || !strings.Contains(errs, "one refresh was spent") ||
		strings.Contains(out, "shared with the workers") || fake.TokenRefreshes() != before+3 {
		t.Fatalf("auth token without NATS: %d\n%s%s", code, out, errs)
	}
}
