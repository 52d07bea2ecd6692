package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/authcmd"
)

// `worker doctor` answers "why is nothing happening?": every check on one
// line with ok / warn / fail / skip and what to do. It changes nothing in
// NATS's layout; the only writes are those any worker makes: an access
// token it had to refresh is shared through the fleet's token bucket.

// Check statuses.
const (
	checkOK   = "ok"
	checkWarn = "warn" // works, but deserves attention
	checkFail = "fail" // a reason why nothing (or something) is happening
	checkSkip = "skip" // could not be checked (a check it depends on failed)
)

// Check is one line of `worker doctor`.
type Check struct {
	Name   string `json:"name"`   // e.g. "nats", "layout", "token default"
	Status string `json:"status"` // ok, warn, fail or skip
	Detail string `json:"detail"` // what was found
	Fix    string `json:"fix,omitempty"`
}

// DoctorReport is `worker doctor -json`.
type DoctorReport struct {
	OK       bool    `json:"ok"` // no check failed
	Failures int     `json:"failures"`
	Warnings int     `json:"warnings"`
	Checks   []Check `json:"checks"`
}

// DoctorOptions are what doctor checks against: the worker's settings.
type DoctorOptions struct {
	NATS       NATSOptions
	Rules      string // the rules file
	ConfigFile string // the -config file ("" none)
	NotifyURL  string // the workers' -notify-url ("" unknown)
	// Late: a waiting event older than this is a warning.
	Late time.Duration
	// CheckScopes spends one refresh per connection to learn the granted
	// scopes when the token came from the fleet's cache.
	CheckScopes bool
	Getenv      func(string) string
}

const doctorSynopsis = `usage: worker doctor [-json] [flags]

Answers "why is nothing happening?": checks the configuration (credentials,
URLs, Books organization), the rules, NATS and JetStream, the NATS layout
and its replicas for the cluster size, the backlog and its oldest waiting
event, dead letters, the workers alive and that every partition is held, a
Zoho access token (the fleet's shared one when NATS caches a valid one, so
no refresh is spent), the scopes the rules need, the Books organization,
and the CRM notification channels (present, expiry, -notify-url). Each
check prints one line: ok, warn, fail (with what to do) or skip (it could
not run because an earlier check failed). Exit 1 when a check fails.

Run it with the workers' configuration (the same ZOHOOK_* variables and
-config) so it checks what they use.`

func doctorCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, o := opsFlags("doctor", doctorSynopsis, stderr)
	rulesFile := fs.String("rules", "rules.yaml", "the workers' rules `file`")
	cfgFile := fs.String("config", "", "the workers' configuration `file` with Zoho connections (see README)")
	notifyURL := fs.String("notify-url", "", "the workers' -notify-url: the `URL` CRM notification channels must point at")
	asJSON := config.ActionBool(fs, "json", "print the report as JSON: {\"ok\", \"failures\", \"warnings\", \"checks\": [{\"name\", \"status\", \"detail\", \"fix\"}]}")
	late := config.ActionDuration(fs, "late", "warn when the oldest waiting event is older than this `duration` (default 10m)")
	scopes := config.ActionBool(fs, "check-scopes", "when the token comes from the fleet's cache (which does not record scopes), spend one refresh per connection to check the granted scopes")
	if code, ok := parseCommand(fs, args, getenv, stdout, stderr, 0); !ok {
		return code
	}
	rep := RunDoctor(ctx, DoctorOptions{NATS: *o, Rules: *rulesFile, ConfigFile: *cfgFile, NotifyURL: *notifyURL,
		Late: *late, CheckScopes: *scopes, Getenv: getenv})
	if *asJSON {
		if code := writeJSON(stdout, stderr, rep); code != ExitOK {
			return code
		}
	} else {
		printDoctor(stdout, rep)
	}
	if !rep.OK {
		return ExitFailure
	}
	return ExitOK
}

func printDoctor(w io.Writer, rep *DoctorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		line := c.Detail
		if c.Fix != "" {
			line += " → " + c.Fix
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, line)
	}
	_ = tw.Flush()
	skipped := 0
	for _, c := range rep.Checks {
		if c.Status == checkSkip {
			skipped++
		}
	}
	switch {
	case rep.Failures > 0:
		fmt.Fprintf(w, "%d failed, %d warning(s), %d skipped: fix the lines marked fail first\n", rep.Failures, rep.Warnings, skipped)
	default:
		fmt.Fprintf(w, "no failure, %d warning(s), %d skipped\n", rep.Warnings, skipped)
	}
}

// doctor runs the checks in order; later checks read what earlier ones
// found.
type doctor struct {
	o      DoctorOptions
	checks []Check

	conns map[string]zoho.Config // connections whose configuration is valid
	set   *rules.Set             // nil when the rules do not load
	bb    *Backbone              // nil when NATS is out of reach
	// layoutOK: every object of the layout exists.
	layoutOK bool
}

func (d *doctor) add(name, status, detail, fix string) {
	d.checks = append(d.checks, Check{Name: name, Status: status, Detail: detail, Fix: fix})
}

// RunDoctor runs every check and returns the report.
func RunDoctor(ctx context.Context, o DoctorOptions) *DoctorReport {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Late <= 0 {
		o.Late = 10 * time.Minute
	}
	o.NATS.FailFast = true
	d := &doctor{o: o, conns: map[string]zoho.Config{}}
	d.checkRules()
	d.checkConnections()
	d.checkNATS(ctx)
	if d.bb != nil {
		defer d.bb.Close()
		d.checkLayout(ctx)
		d.checkRunning(ctx)
	}
	for _, name := range slices.Sorted(maps.Keys(d.conns)) {
		d.checkZoho(ctx, name, d.conns[name])
	}
	rep := &DoctorReport{Checks: d.checks}
	for _, c := range d.checks {
		switch c.Status {
		case checkFail:
			rep.Failures++
		case checkWarn:
			rep.Warnings++
		}
	}
	rep.OK = rep.Failures == 0
	return rep
}

func (d *doctor) checkRules() {
	set, err := rules.Load(d.o.Rules)
	if err != nil {
		detail := err.Error()
		var le *rules.LoadError
		if errors.As(err, &le) && len(le.Problems) > 0 {
			detail = fmt.Sprintf("%s: %d problem(s), the first: %s", d.o.Rules, len(le.Problems), le.Problems[0])
		}
		d.add("rules", checkFail, oneLine(detail), "worker rules check "+d.o.Rules+" lists every problem; the workers refuse to start with these rules")
		return
	}
	d.set = set
	enabled := 0
	for _, r := range set.Rules() {
		if !r.Disabled {
			enabled++
		}
	}
	if ws := set.Warnings(); len(ws) > 0 {
		d.add("rules", checkWarn, fmt.Sprintf("%s: %d rule(s), %d warning(s), the first: %s", d.o.Rules, len(set.Rules()), len(ws), oneLine(ws[0].String())),
			"worker rules check "+d.o.Rules+" explains each")
		return
	}
	detail := fmt.Sprintf("%s: %d rule(s), %d enabled, version %s, no warning", d.o.Rules, len(set.Rules()), enabled, set.Version())
	if enabled == 0 {
		d.add("rules", checkWarn, detail, "no rule is enabled: every event is handled by doing nothing")
		return
	}
	d.add("rules", checkOK, detail, "")
}

// checkConnections checks every Zoho connection the workers would build
// (zohoActors): credentials present, URLs sane, a Books organization when
// the rules use Books.
func (d *doctor) checkConnections() {
	configs := map[string]zoho.Config{}
	bad := map[string]error{}
	inFile := map[string]bool{}
	if d.o.ConfigFile != "" {
		f, err := config.LoadFile(d.o.ConfigFile)
		if err != nil {
			d.add("config", checkFail, oneLine(err.Error()), "worker config check "+d.o.ConfigFile+" reports every problem")
			return
		}
		d.add("config", checkOK, fmt.Sprintf("%s: %d connection(s)", d.o.ConfigFile, len(f.Connections)), "")
		for name, c := range f.Connections {
			inFile[name] = true
			zc, err := connectionConfig(name, c, d.o.Getenv)
			if err != nil {
				bad[name] = err
				continue
			}
			configs[name] = zc
		}
	}
	// As the workers do (zohoActors): a malformed ZOHOOK_ZOHO_* variable
	// stops them; the environment's credentials win over the file's
	// "default" connection.
	env, err := zoho.ConfigFromEnv(d.o.Getenv)
	switch {
	case err != nil:
		bad["default"] = err
		delete(configs, "default")
	case env.HasCredentials() || !inFile["default"]:
		configs["default"] = env
		delete(bad, "default")
	}
	names := slices.Sorted(maps.Keys(configs))
	for name := range bad {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		check := "connection " + name
		if err := bad[name]; err != nil {
			d.add(check, checkFail, oneLine(err.Error()), "fix the connection's entries (in "+cmp.Or(d.o.ConfigFile, "the environment")+")")
			continue
		}
		cfg := configs[name]
		if err := cfg.Validate(); err != nil {
			fix := "set the variables named"
			if inFile[name] {
				fix = "set the connection's client_id, client_secret and refresh_token in " + d.o.ConfigFile
			}
			if errors.Is(err, zoho.ErrNoCredentials) {
				fix += "; `worker auth exchange` or `worker auth login` gives a refresh token"
			}
			d.add(check, checkFail, oneLine(err.Error()), fix)
			continue
		}
		if r := d.booksRule(name); r != "" && cfg.BooksOrgID == "" {
			d.add(check, checkFail, fmt.Sprintf("rule %q uses Books but the connection has no Books organization id", r),
				"set "+zoho.EnvBooksOrgID+" (books_org_id in the -config file), or give organization_id in every Books step")
			d.conns[name] = cfg // the token and the rest can still be checked
			continue
		}
		detail := fmt.Sprintf("credentials set, data center %s, accounts server %s", cfg.DC, cfg.Accounts())
		if cfg.APIURL != "" {
			detail += ", CRM " + cfg.CRMBase("")
		}
		if cfg.BooksURL != "" {
			detail += ", Books " + cfg.BooksBase("")
		}
		if cfg.BooksOrgID != "" {
			detail += ", Books organization " + cfg.BooksOrgID
		}
		d.add(check, checkOK, detail, "")
		d.conns[name] = cfg
	}
}

// booksRule names an enabled rule running a Books step on connection conn.
func (d *doctor) booksRule(conn string) string {
	if d.set == nil {
		return ""
	}
	for _, r := range d.set.Rules() {
		if r.Disabled || !ruleForConnection(r, conn) {
			continue
		}
		for _, st := range r.Steps {
			if strings.HasPrefix(st.Action, "books.") {
				return r.Name
			}
		}
	}
	return ""
}

// ruleForConnection reports whether a rule's steps run on connection conn
// (a rule without connections runs for events of every connection).
func ruleForConnection(r *rules.Rule, conn string) bool {
	if len(r.Connections) == 0 {
		return true
	}
	for _, c := range r.Connections {
		if c == conn || (c == "" && conn == "default") {
			return true
		}
	}
	return false
}

func (d *doctor) checkNATS(ctx context.Context) {
	bb, err := OpenBackbone(ctx, d.o.NATS, "zohook-doctor", false, slog.New(slog.DiscardHandler))
	if err != nil {
		d.add("nats", checkFail, oneLine(err.Error()),
			"start NATS (or the receiver, which embeds it), or point -nats-url / ZOHOOK_NATS_URL at the cluster; check -nats-creds / -nats-nkey")
		for _, n := range []string{"jetstream", "layout", "workers"} {
			d.add(n, checkSkip, "NATS is out of reach", "")
		}
		return
	}
	servers := len(bb.NC.Servers())
	d.add("nats", checkOK, fmt.Sprintf("connected to %s (%d server(s) known)", bb.NC.ConnectedUrlRedacted(), servers), "")
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := bb.JS.AccountInfo(cctx)
	if err != nil {
		fix := "check the NATS user's permissions for $JS.API.>"
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			fix = "enable JetStream: nats-server -js (or jetstream {} in its configuration, and for the account)"
		}
		d.add("jetstream", checkFail, oneLine(err.Error()), fix)
		d.add("layout", checkSkip, "JetStream is not available", "")
		d.add("workers", checkSkip, "JetStream is not available", "")
		bb.Close()
		return
	}
	d.bb = bb
	detail := fmt.Sprintf("enabled: %d stream(s), %d bytes stored", info.Streams, info.Store)
	if info.Limits.MaxStore > 0 && float64(info.Store) > 0.9*float64(info.Limits.MaxStore) {
		d.add("jetstream", checkWarn, detail+fmt.Sprintf(", over 90%% of the account's %d bytes", info.Limits.MaxStore),
			"raise the account's JetStream storage limit, or lower -history-max-bytes (worker setup)")
		return
	}
	d.add("jetstream", checkOK, detail, "")
}

// layoutStreams names the streams of the layout (KV buckets included).
func layoutStreams(s events.StreamConfig) []string {
	names := []string{s.Name, s.HistoryName, worker.DefaultDLQStream, worker.OutcomesSpec(s.Replicas, s.HistoryMaxAge, 1<<20).Name}
	for _, b := range layoutBuckets(s) {
		names = append(names, events.KVStreamName(b.Bucket))
	}
	return names
}

func (d *doctor) checkLayout(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := checkLayout(cctx, d.bb); err != nil {
		fix := "check the NATS user's permissions"
		if errors.Is(err, events.ErrNoLayout) {
			fix = "start the receiver (it creates what is missing), or run `worker setup -apply` with the receiver's layout flags"
		}
		d.add("layout", checkFail, oneLine(err.Error()), fix)
		d.add("replicas", checkSkip, "the layout is incomplete", "")
		return
	}
	d.layoutOK = true
	s := d.bb.Stream
	d.add("layout", checkOK, fmt.Sprintf("%s (%d partitions), %s, %s and %d buckets present", s.Name, s.Partitions, s.HistoryName,
		worker.DefaultDLQStream, len(layoutBuckets(s))), "")
	replicas := map[string]int{}
	var lagging []string
	for _, n := range layoutStreams(s) {
		st, err := d.bb.JS.Stream(cctx, n)
		if err != nil {
			continue // only optional streams can be absent here: checkLayout found the rest
		}
		info := st.CachedInfo()
		replicas[n] = info.Config.Replicas
		if info.Cluster != nil {
			if info.Cluster.Leader == "" {
				lagging = append(lagging, n+": no leader")
			}
			for _, p := range info.Cluster.Replicas {
				if p.Offline || !p.Current {
					lagging = append(lagging, fmt.Sprintf("%s: replica on %s %s", n, p.Name, map[bool]string{true: "offline", false: "behind"}[p.Offline]))
				}
			}
		}
	}
	c := replicasCheck(len(d.bb.NC.Servers()), replicas)
	if c.Status == checkOK && len(lagging) > 0 {
		c.Status, c.Detail, c.Fix = checkWarn, c.Detail+"; "+strings.Join(lagging, "; "),
			"a NATS server is down or catching up: `nats server report jetstream`; zohook keeps working while a quorum is up"
	}
	d.checks = append(d.checks, c)
}

// replicasCheck compares each layout stream's replicas with the number of
// NATS servers the connection knows: more replicas than servers can never
// have a quorum; one replica on a cluster of three or more loses
// everything stored when its server is lost.
func replicasCheck(servers int, replicas map[string]int) Check {
	c := Check{Name: "replicas"}
	counts := map[int][]string{}
	maxR := 0
	for _, n := range slices.Sorted(maps.Keys(replicas)) {
		r := replicas[n]
		counts[r] = append(counts[r], n)
		maxR = max(maxR, r)
	}
	want := 1
	if servers >= 3 {
		want = 3
	}
	switch {
	case maxR > servers:
		c.Status = checkFail
		c.Detail = fmt.Sprintf("%s with %d replicas, but the connection knows %d NATS server(s): no quorum", strings.Join(counts[maxR], ", "), maxR, servers)
		c.Fix = "bring the cluster's servers back (connect with every URL in -nats-url), or lower the replicas: worker setup -apply -allow-shrink -stream-replicas " + fmt.Sprint(want)
	case len(counts) > 1:
		c.Status = checkWarn
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%d replica(s): %s", r, strings.Join(counts[r], ", ")))
		}
		c.Detail = "the layout's replicas differ: " + strings.Join(parts, "; ")
		c.Fix = fmt.Sprintf("worker setup -apply -stream-replicas %d (with the receiver's other layout flags)", want)
	case servers >= 3 && maxR < 3:
		c.Status = checkWarn
		c.Detail = fmt.Sprintf("every stream and bucket has %d replica(s) on a cluster of %d servers: losing one server loses what it stores", maxR, servers)
		c.Fix = "worker setup -apply -stream-replicas 3 (with the receiver's other layout flags)"
	default:
		c.Status = checkOK
		c.Detail = fmt.Sprintf("every stream and bucket has %d replica(s); %d NATS server(s) known", maxR, servers)
	}
	return c
}

// checkRunning checks the backlog, the dead letters, the workers and the
// partitions they hold.
func (d *doctor) checkRunning(ctx context.Context) {
	if !d.layoutOK {
		d.add("workers", checkSkip, "the layout is incomplete", "")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := readStatus(cctx, d.bb)
	if err != nil {
		d.add("backlog", checkFail, oneLine(err.Error()), "worker status shows the same; check NATS")
		return
	}
	waiting := st.Pending + uint64(st.AckPending)
	switch {
	case waiting == 0:
		d.add("backlog", checkOK, "nothing waiting", "")
	case !st.OldestWaiting.IsZero() && time.Since(st.OldestWaiting) > d.o.Late:
		worst := -1
		for _, p := range st.Partitions {
			if !p.OldestWaiting.IsZero() && p.OldestWaiting.Equal(st.OldestWaiting) {
				worst = p.Partition
			}
		}
		d.add("backlog", checkWarn, fmt.Sprintf("%d event(s) waiting (%d pending, %d ack pending), the oldest stored %s (partition %d), more than %s",
			waiting, st.Pending, st.AckPending, ago(st.OldestWaiting), worst, config.FormatDuration(d.o.Late)),
			"too few workers, or Zoho slows them down (rate limits, retries): worker status, and the log of the worker holding that partition")
	default:
		d.add("backlog", checkOK, fmt.Sprintf("%d event(s) waiting (%d pending, %d ack pending), the oldest stored %s", waiting, st.Pending, st.AckPending, ago(st.OldestWaiting)), "")
	}
	if st.DeadLetters > 0 {
		d.add("dead letters", checkWarn, fmt.Sprintf("%d dead letter(s): events whose actions did not happen", st.DeadLetters),
			"worker dlq list, then fix the cause and worker dlq replay ID (done steps are not repeated)")
	} else {
		d.add("dead letters", checkOK, "none", "")
	}
	if len(st.Workers) == 0 {
		d.add("workers", checkFail, "no worker process is alive (none has a heartbeat in "+worker.DefaultMembersBucket+")",
			"start `worker` with the same NATS flags; if workers run, their logs say why they do not reach NATS")
		d.add("partitions", checkSkip, "no worker alive", "")
		return
	}
	var parts []string
	for _, w := range st.Workers {
		parts = append(parts, fmt.Sprintf("%s (%d partitions)", w.Name, w.Partitions))
	}
	d.add("workers", checkOK, fmt.Sprintf("%d alive: %s", len(st.Workers), strings.Join(parts, ", ")), "")
	if unheld := unheldPartitions(st.Partitions); len(unheld) > 0 {
		d.add("partitions", checkFail, fmt.Sprintf("partition(s) %s of %d held by no worker: their events wait", intList(unheld), len(st.Partitions)),
			"a handover takes up to 10s: run doctor again; if it stays, the workers' logs (\"partitions assigned\")")
		return
	}
	d.add("partitions", checkOK, fmt.Sprintf("all %d held", len(st.Partitions)), "")
}

// checkZoho checks a connection at Zoho: a token, the scopes, the Books
// organization, the notification channels.
func (d *doctor) checkZoho(ctx context.Context, name string, cfg zoho.Config) {
	tokenCheck := "token " + name
	if d.bb == nil {
		// Without NATS the fleet's cached token is out of sight: a refresh
		// here could spend one of Zoho's 10 per 10 minutes for nothing.
		d.add(tokenCheck, checkSkip, "the fleet's shared token cannot be read without NATS and JetStream; no refresh was spent",
			"worker auth token -refresh checks the refresh token (spends one refresh)")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	st, ts, err := sharedToken(cctx, d.bb.JS, name, cfg, "doctor")
	if err != nil {
		d.add(tokenCheck, checkFail, oneLine(err.Error()), tokenFix(err))
		d.add("zoho "+name, checkSkip, "no access token", "")
		return
	}
	left := config.FormatDuration(time.Until(st.Token.Expiry).Round(time.Minute))
	switch {
	case st.Cached:
		d.add(tokenCheck, checkOK, "the fleet's shared token, valid for "+left+" (no refresh spent)", "")
	case st.Shared:
		d.add(tokenCheck, checkOK, "no valid token was cached: refreshed (spent one of Zoho's 10 refreshes per 10 minutes), now shared with the workers", "")
	default:
		d.add(tokenCheck, checkOK, "refreshed (spent one of Zoho's 10 refreshes per 10 minutes); "+st.Note, "")
	}
	client, err := zoho.NewClient(cfg, zoho.WithTokenSource(ts), zoho.WithHTTPClient(&http.Client{Timeout: 15 * time.Second}),
		zoho.WithRetryPolicy(zoho.RetryPolicy{MaxRetries: 1, BaseDelay: 500 * time.Millisecond, MaxDelay: time.Second}),
		zoho.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		d.add("zoho "+name, checkFail, oneLine(err.Error()), "")
		return
	}
	d.checkScopes(cctx, name, cfg, st)
	d.checkBooks(cctx, name, cfg, client)
	d.checkChannels(cctx, name, client)
}

// tokenFix says what to do about a failed token request.
func tokenFix(err error) string {
	var te *zoho.TokenError
	var re *fleet.RefreshError
	switch {
	case errors.As(err, &te) && te.Throttled():
		return "Zoho allows 10 refreshes per 10 minutes per refresh token: wait for the window to clear (the workers wait too)"
	case errors.As(err, &te) && strings.EqualFold(te.Code, "invalid_code"):
		return "the refresh token is revoked, wrong or for another client: get a new one with `worker auth login` or `worker auth exchange`"
	case errors.As(err, &te) && strings.HasPrefix(strings.ToLower(te.Code), "invalid_client"):
		return "the client id or secret is wrong for this data center: check ZOHOOK_ZOHO_CLIENT_ID / _SECRET / _DC (and multi-DC for the client)"
	case errors.As(err, &re):
		return "the fleet waits until then before refreshing again; fix the credentials meanwhile"
	}
	return "check that Zoho's accounts server is reachable from here (ZOHOOK_ZOHO_DC, ZOHOOK_ZOHO_ACCOUNTS_URL, proxies)"
}

func (d *doctor) checkScopes(ctx context.Context, name string, cfg zoho.Config, st *authcmd.SharedToken) {
	check := "scopes " + name
	needs, unchecked := neededScopes(d.set, name)
	if d.set == nil {
		d.add(check, checkSkip, "the rules do not load", "")
		return
	}
	if len(needs) == 0 {
		d.add(check, checkOK, "the rules call no Zoho API", "")
		return
	}
	var scope string
	switch {
	case st.Grant != nil:
		scope = st.Grant.Scope
	case d.o.CheckScopes:
		g, err := zoho.NewOAuth(cfg, zohoHTTP).Refresh(ctx)
		if err != nil {
			d.add(check, checkFail, oneLine(err.Error()), tokenFix(err))
			return
		}
		scope = g.Scope
	}
	if scope == "" {
		why := "the token came from the fleet's cache, which does not record scopes"
		if st.Grant != nil {
			why = "Zoho's token answer named no scope"
		}
		d.add(check, checkSkip, fmt.Sprintf("%d scope(s) needed, not checked: %s", len(needs), why),
			"-check-scopes spends one refresh to check them")
		return
	}
	granted := authcmd.ParseScopes(scope)
	missing := authcmd.MissingScopes(granted, needs)
	note := ""
	if len(unchecked) > 0 {
		note = "; raw requests not checked (" + strings.Join(unchecked, ", ") + ")"
	}
	if len(missing) > 0 {
		var parts []string
		for _, m := range missing {
			parts = append(parts, m.String()+" ("+m.Why+")")
		}
		d.add(check, checkFail, "missing: "+strings.Join(parts, ", ")+note,
			"get a refresh token with these scopes too: ZOHOOK_ZOHO_SCOPES=... worker auth login, or a self-client grant code with them and worker auth exchange")
		return
	}
	d.add(check, checkOK, fmt.Sprintf("the %d scope(s) the rules need are granted%s", len(needs), note), "")
}

// neededScopes derives the scopes the rules' steps and triggers need on
// connection conn; unchecked lists raw requests (their path decides).
func neededScopes(set *rules.Set, conn string) (needs []authcmd.ScopeNeed, unchecked []string) {
	if set == nil {
		return nil, nil
	}
	seen := map[string]bool{}
	add := func(n authcmd.ScopeNeed) {
		if k := n.String(); !seen[k] {
			seen[k] = true
			needs = append(needs, n)
		}
	}
	crm := func(op, why string) {
		add(authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "modules", Op: op, Why: why})
	}
	books := func(op, why string) { add(authcmd.ScopeNeed{Service: "ZohoBooks", Op: op, Why: why}) }
	if len(channels.NeededEvents(set.Rules(), conn, slog.New(slog.DiscardHandler))) > 0 {
		for _, op := range []string{"READ", "CREATE", "UPDATE", "DELETE"} {
			add(authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "notifications", Op: op, Why: "notification channels"})
		}
	}
	for _, r := range set.Rules() {
		if r.Disabled || !ruleForConnection(r, conn) {
			continue
		}
		if r.LoadRecord && !slices.Equal(r.Sources, []string{rules.SourceBooksWebhook}) {
			for _, m := range r.Modules {
				add(authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "modules", Sub: m, Op: "READ", Why: "rule " + r.Name + ": load_record"})
			}
		}
		for _, st := range r.Steps {
			why := fmt.Sprintf("rule %s step %d: %s", r.Name, st.Index+1, st.Action)
			switch st.Action {
			case "crm.get_record", "crm.get_records", "crm.get_attachments":
				crm("READ", why)
			case "crm.create_record", "crm.add_attachment":
				crm("CREATE", why)
			case "crm.update_record":
				crm("UPDATE", why)
			case "crm.remove_record":
				crm("DELETE", why)
			case "crm.coql":
				add(authcmd.ScopeNeed{Service: "ZohoCRM", Resource: "coql", Op: "READ", Why: why})
				crm("READ", why)
			case "books.get_record", "books.get_records":
				books("READ", why)
			case "books.create_record":
				books("CREATE", why)
			case "books.update_record":
				books("UPDATE", why)
			case "books.remove_record":
				books("DELETE", why)
			case "crm.raw_request", "books.raw_request":
				unchecked = append(unchecked, fmt.Sprintf("rule %s step %d", r.Name, st.Index+1))
			}
		}
	}
	return needs, unchecked
}

// checkBooks checks the Books organization is one of the user's, when the
// rules use Books (or an organization is configured).
func (d *doctor) checkBooks(ctx context.Context, name string, cfg zoho.Config, client *zoho.Client) {
	check := "books " + name
	if d.booksRule(name) == "" && cfg.BooksOrgID == "" {
		return // Books is not used on this connection
	}
	if cfg.BooksOrgID == "" {
		d.add(check, checkSkip, "no Books organization id (see connection "+name+")", "")
		return
	}
	res, _, err := client.Books.Raw(ctx, &zoho.RawRequest{Method: http.MethodGet, Path: "organizations"})
	if err != nil {
		d.add(check, checkFail, oneLine(err.Error()), "check the Books scopes and "+zoho.EnvBooksURL+" / the data center")
		return
	}
	body, _ := res.Body.(map[string]any)
	orgs, _ := body["organizations"].([]any)
	var known []string
	for _, o := range orgs {
		m, _ := o.(map[string]any)
		id := fmt.Sprint(m["organization_id"])
		orgName, _ := m["name"].(string)
		if id == cfg.BooksOrgID {
			if active, ok := m["is_org_active"].(bool); ok && !active {
				d.add(check, checkFail, fmt.Sprintf("organization %s (%s) is not active", id, orgName), "activate it in Zoho Books, or use another organization")
				return
			}
			d.add(check, checkOK, fmt.Sprintf("organization %s (%s) reachable", id, orgName), "")
			return
		}
		known = append(known, fmt.Sprintf("%s (%s)", id, orgName))
	}
	d.add(check, checkFail, fmt.Sprintf("organization %s is not one of this user's: %s", cfg.BooksOrgID, cmp.Or(strings.Join(known, ", "), "none")),
		"set "+zoho.EnvBooksOrgID+" (books_org_id in the -config file) to one of them")
}

// checkChannels checks the CRM notification channels the rules need:
// present at Zoho, known to the receiver, not expired, pointing at
// -notify-url.
func (d *doctor) checkChannels(ctx context.Context, name string, client *zoho.Client) {
	check := "channels " + name
	if d.set == nil {
		return
	}
	needed := channels.NeededEvents(d.set.Rules(), name, slog.New(slog.DiscardHandler))
	if len(needed) == 0 {
		d.add(check, checkOK, "no rule listens to crm.notify: no channel needed", "")
		return
	}
	if !d.layoutOK {
		d.add(check, checkSkip, "the layout is incomplete", "")
		return
	}
	conn := name
	if conn == "default" {
		conn = ""
	}
	m, err := channels.NewManager(ctx, d.bb.JS, client.CRM, channels.Config{Connection: conn, NotifyURL: cmp.Or(d.o.NotifyURL, "-"),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		d.add(check, checkFail, oneLine(err.Error()), "")
		return
	}
	sts, err := m.List(ctx)
	if err != nil {
		d.add(check, checkFail, oneLine(err.Error()), "check the ZohoCRM.notifications scopes")
		return
	}
	c := channelsVerdict(needed, sts, d.o.NotifyURL, time.Now())
	c.Name = check
	d.checks = append(d.checks, c)
}

// channelsVerdict compares the channels zohook has with the events the
// rules need.
func channelsVerdict(needed []string, sts []channels.Status, notifyURL string, now time.Time) Check {
	byModule := map[string][]string{}
	for _, e := range needed {
		mod, _, _ := strings.Cut(e, ".")
		byModule[mod] = append(byModule[mod], e)
	}
	var fails, warns, oks []string
	fix := ""
	setFix := func(f string) {
		if fix == "" {
			fix = f
		}
	}
	syncFix := "worker channels sync -notify-url URL does it now; workers run with -notify-url keep them subscribed and renewed"
	for _, mod := range slices.Sorted(maps.Keys(byModule)) {
		var ch *channels.Status
		for i := range sts {
			if strings.EqualFold(sts[i].Module, mod) && sts[i].AtZoho {
				ch = &sts[i]
			}
		}
		if ch == nil {
			fails = append(fails, fmt.Sprintf("%s: no channel at Zoho (needs %s)", mod, strings.Join(byModule[mod], ",")))
			setFix(syncFix)
			continue
		}
		var lacking []string
		for _, e := range byModule[mod] {
			if !slices.Contains(ch.Events, e) && !slices.Contains(ch.Events, mod+".all") {
				lacking = append(lacking, e)
			}
		}
		switch {
		case len(lacking) > 0:
			fails = append(fails, fmt.Sprintf("%s: channel %s lacks %s", mod, ch.ChannelID, strings.Join(lacking, ",")))
			setFix(syncFix)
		case !ch.Expiry.IsZero() && !ch.Expiry.After(now):
			fails = append(fails, fmt.Sprintf("%s: channel %s expired at %s", mod, ch.ChannelID, ch.Expiry.UTC().Format(time.RFC3339)))
			setFix(syncFix)
		case !ch.InBucket || !ch.TokenMatches:
			fails = append(fails, fmt.Sprintf("%s: channel %s's token is not the one in NATS: the receiver refuses its notifications with 401", mod, ch.ChannelID))
			setFix(syncFix)
		case notifyURL != "" && ch.NotifyURL != notifyURL:
			fails = append(fails, fmt.Sprintf("%s: channel %s points at %s, not -notify-url %s", mod, ch.ChannelID, ch.NotifyURL, notifyURL))
			setFix("worker channels sync -notify-url " + notifyURL)
		case !ch.Expiry.IsZero() && ch.Expiry.Sub(now) < channels.DefaultRenewMargin/2:
			warns = append(warns, fmt.Sprintf("%s: channel %s expires in %s", mod, ch.ChannelID, config.FormatDuration(ch.Expiry.Sub(now).Round(time.Minute))))
			setFix("renewal seems to fail: the workers' log lines from channels; worker channels sync -notify-url URL renews now")
		default:
			exp := "no expiry reported"
			if !ch.Expiry.IsZero() {
				exp = "expires in " + config.FormatDuration(ch.Expiry.Sub(now).Round(time.Minute))
			}
			oks = append(oks, fmt.Sprintf("%s: %s, %s → %s", mod, ch.ChannelID, exp, ch.NotifyURL))
		}
	}
	c := Check{Status: checkOK}
	switch {
	case len(fails) > 0:
		c.Status, c.Detail, c.Fix = checkFail, strings.Join(append(fails, warns...), "; "), fix
	case len(warns) > 0:
		c.Status, c.Detail, c.Fix = checkWarn, strings.Join(warns, "; "), fix
	case notifyURL == "":
		c.Status, c.Detail = checkWarn, strings.Join(oks, "; ")+"; -notify-url not given, so where they point was not checked"
		c.Fix = "pass the workers' -notify-url (ZOHOOK_NOTIFY_URL); without it no worker renews the channels"
	default:
		c.Detail = strings.Join(oks, "; ")
	}
	return c
}

// oneLine keeps a check's text on its line.
func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
	if len(s) > 400 {
		s = s[:399] + "…"
	}
	return s
}
