package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// The deploy kit (deploy/): alerts, dashboard, Prometheus and compose
// files. These tests check that what the files name exists: the metrics and
// labels a running receiver and worker export, the files compose mounts,
// the jobs Prometheus scrapes.

func deployPath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot(), "deploy"}, parts...)...)
}

// alertRules is deploy/prometheus/alerts.yaml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// grafanaDashboard is the part of deploy/grafana/zohook.json the checks read.
type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name        string      `json:"name"`
			Expr        string      `json:"expr"`
			TitleFormat string      `json:"titleFormat"`
			Datasource  *grafanaRef `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

type grafanaRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Datasource *grafanaRef `json:"datasource"`
	Targets    []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *grafanaRef `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// promQuery is one PromQL expression of the kit, with the labels its
// templates (legend, annotations) use.
type promQuery struct {
	where, expr string
	templates   []string
}

func readAlerts(t *testing.T) alertRules {
	t.Helper()
	b, err := os.ReadFile(deployPath("prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var a alertRules
	if err := yaml.UnmarshalWithOptions(b, &a, yaml.Strict()); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	return a
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(deployPath("grafana", "zohook.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("zohook.json: %v", err)
	}
	return d
}

// kitQueries lists every PromQL expression of alerts.yaml and zohook.json.
func kitQueries(t *testing.T) []promQuery {
	t.Helper()
	var qs []promQuery
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			var tmpl []string
			for _, a := range r.Annotations {
				tmpl = append(tmpl, a)
			}
			qs = append(qs, promQuery{where: "alerts.yaml " + r.Alert + r.Record, expr: r.Expr, templates: tmpl})
		}
	}
	d := readDashboard(t)
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, promQuery{where: fmt.Sprintf("zohook.json panel %q target %s", p.Title, tg.RefID), expr: tg.Expr, templates: []string{tg.LegendFormat}})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := grafanaLabelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("zohook.json variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		// label_values(sel, label): sel must carry label.
		qs = append(qs, promQuery{where: "zohook.json variable " + v.Name, expr: "max by (" + m[2] + ") (" + m[1] + ")"})
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, promQuery{where: "zohook.json annotation " + a.Name, expr: a.Expr, templates: []string{a.TitleFormat}})
		}
	}
	return qs
}

// promJobs are the job names deploy/prometheus/prometheus.yml scrapes.
func promJobs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(deployPath("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, s := range cfg.ScrapeConfigs {
		jobs = append(jobs, s.JobName)
	}
	return jobs
}

// exported maps each series name a process exports to the label names its
// series carry.
type exported map[string]map[string]bool

// scrape reads a /metrics page into e.
func (e exported) scrape(t *testing.T, url string) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	add := func(name string, labels []string) {
		if e[name] == nil {
			e[name] = map[string]bool{}
		}
		for _, l := range labels {
			e[name][l] = true
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			switch {
			case m.Histogram != nil:
				add(name+"_bucket", append(slices.Clone(labels), "le"))
				add(name+"_sum", labels)
				add(name+"_count", labels)
			case m.Summary != nil:
				add(name, append(slices.Clone(labels), "quantile"))
				add(name+"_sum", labels)
				add(name+"_count", labels)
			default:
				add(name, labels)
			}
		}
	}
	return nil
}

// targetLabels are added by Prometheus to every series it scrapes; up is
// the series it writes for every target itself.
var targetLabels = map[string]bool{"job": true, "instance": true}

var jobMatcher = regexp.MustCompile(`\bjob\s*(=~|=|!=|!~)\s*"([^"]*)"`)

// missingNames returns, for every query, the metrics and labels it names
// that e does not hold.
func missingNames(qs []promQuery, e exported, jobs []string) []string {
	var problems []string
	for _, q := range qs {
		refs, err := parsePromRefs(q.expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v in %q", q.where, err, q.expr))
			continue
		}
		if len(refs.Metrics) == 0 {
			problems = append(problems, fmt.Sprintf("%s: names no metric: %q", q.where, q.expr))
		}
		known := map[string]bool{}
		for l := range targetLabels {
			known[l] = true
		}
		for m, labels := range refs.Metrics {
			have, ok := e[m]
			if m == "up" {
				have, ok = targetLabels, true
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: metric %s is exported by neither the receiver nor the worker", q.where, m))
				continue
			}
			for l := range have {
				known[l] = true
			}
			for _, l := range labels {
				if !have[l] && !targetLabels[l] && l != "__name__" {
					problems = append(problems, fmt.Sprintf("%s: metric %s has no label %s (it has %v)", q.where, m, l, sortedKeys(have)))
				}
			}
		}
		for _, l := range refs.Grouping {
			if !known[l] {
				problems = append(problems, fmt.Sprintf("%s: groups or matches by label %s that none of its metrics has", q.where, l))
			}
		}
		// What the result carries: after an aggregation by (...), those
		// labels only.
		kept := known
		if refs.aggregates() && !refs.Without {
			kept = map[string]bool{}
			for _, l := range refs.By {
				kept[l] = true
			}
		}
		for _, tmpl := range q.templates {
			for _, m := range templateLabels.FindAllStringSubmatch(tmpl, -1) {
				if !kept[m[1]] {
					problems = append(problems, fmt.Sprintf("%s: template %q uses label %s that the result does not carry", q.where, tmpl, m[1]))
				}
			}
		}
		for _, m := range jobMatcher.FindAllStringSubmatch(q.expr, -1) {
			for _, j := range strings.Split(m[2], "|") {
				if !slices.Contains(jobs, j) {
					problems = append(problems, fmt.Sprintf("%s: job %q is not a job of prometheus.yml (%v)", q.where, j, jobs))
				}
			}
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The receiver and a worker run as compose.yaml runs them: on the NATS
// cluster of deploy/nats, the layout made by `worker setup -apply` as the
// admin user, each process as its own NATS user, metrics on the admin
// listeners. With an event handled, a rules reload, channels kept, a
// reconciliation run and NATS paused for a few seconds (KV calls retried),
// every metric and label the alerts and the dashboard name must be on one
// of the two /metrics pages.
func TestDeployKitNamesOnlyExportedMetrics(t *testing.T) {
	qs := kitQueries(t)
	jobs := promJobs(t)
	if len(qs) < 20 {
		t.Fatalf("only %d queries found in alerts.yaml and zohook.json", len(qs))
	}

	start := time.Now()
	nodes, roles := startCluster(t)
	urls := clusterURLs(nodes)
	setupLayout(t, urls, roles, "-stream-replicas", "3")
	t.Logf("cluster up and layout created in %s", time.Since(start).Round(time.Millisecond))

	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	// Two changes older than reconciliation's settle time: a Deal whose
	// notification the receiver gets (reconciliation finds it already
	// seen) and a Lead nobody notified (reconciliation publishes it; no
	// rule handles Leads, so it is skipped).
	changed := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	const crmTime = "2006-01-02T15:04:05-07:00" // as Zoho CRM writes Modified_Time
	oldDeal := fake.CRMInsert("Deals", map[string]any{"Deal_Name": "Older deal", "Stage": "Qualification", "Modified_Time": changed.Format(crmTime)})
	fake.CRMInsert("Leads", map[string]any{"Last_Name": "Unnotified", "Company": "Kiyomi", "Modified_Time": changed.Format(crmTime)})
	rules := chaosRules(demo.BooksContactID, demo.BooksItemID)
	rulesFile := writeRules(t, rules)
	const token = "deploy-kit-notify-token-9Qw"
	addr, recvAdmin, workerAdmin := freeAddr(t), freeAddr(t), freeAddr(t)
	recv := startProc(t, "receiver", []string{"ZOHOOK_CRM_NOTIFY_TOKENS=" + token},
		"-addr", addr, "-admin-addr", recvAdmin, "-nats-url", urls, "-nats-nkey", roles.seeds[events.RoleReceiver],
		"-stream-replicas", "3", "-log-format", "text")
	base := "http://" + addr
	waitFor(t, "receiver ready", 60*time.Second, httpReady(base+"/readyz"), recv)
	waitFor(t, "receiver admin listener", 10*time.Second, httpReady("http://"+recvAdmin+"/readyz"), recv)
	// The public port serves callbacks and health, never metrics.
	if resp, err := http.Get(base + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("the receiver's public port serves /metrics")
		}
	}
	post := func(module, op, id string, serverTime int64) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"server_time": serverTime, "module": module, "ids": []string{id},
			"operation": op, "channel_id": "1000000068001", "token": token})
		resp, err := http.Post(base+"/zoho/crm/notify", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("notification %s %s answered %d", module, id, resp.StatusCode)
		}
	}
	// Events handled end to end (receiver and worker counters, Zoho calls,
	// rate-limit waits), one not acted on (no rule for Leads inserts).
	post("Deals", "update", oldDeal, changed.UnixMilli())
	post("Deals", "update", demo.DealID, time.Now().UnixMilli())
	post("Leads", "insert", demo.LeadID, time.Now().UnixMilli())

	// The first channel subscription is refused once: a renewal failure.
	fake.Inject(zohotest.Fault{Method: http.MethodPost, PathPrefix: "/crm/v8/actions/watch", Status: http.StatusBadRequest, Times: 1})
	w := startProc(t, "worker", zohoEnv(fake), "-nats-url", urls, "-nats-nkey", roles.seeds[events.RoleWorker],
		"-admin-addr", workerAdmin, "-rules", rulesFile, "-log-format", "text", "-shutdown-grace", "5s",
		"-notify-url", base+"/zoho/crm/notify", "-channel-interval", "2s", "-reconcile-modules", "Deals,Leads")
	waitFor(t, "worker ready", 60*time.Second, httpReady("http://"+workerAdmin+"/readyz"), w)
	waitFor(t, "the invoices", 30*time.Second, func() bool { return len(fake.BooksRecords(demo.OrgID, "invoices")) >= 2 }, w)
	// A rules reload.
	if err := os.WriteFile(rulesFile, []byte(rules+"\n# reloaded\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rules reloaded", 20*time.Second, func() bool { return strings.Contains(w.out.String(), "rules reloaded") }, w)
	// NATS paused: KV calls in flight (heartbeats, journal) time out and are
	// retried, which is what zohook_nats_kv_retried_calls_total counts.
	for _, n := range nodes {
		_ = n.p.cmd.Process.Signal(syscall.SIGSTOP)
	}
	time.Sleep(5 * time.Second)
	for _, n := range nodes {
		_ = n.p.cmd.Process.Signal(syscall.SIGCONT)
	}

	t.Logf("events handled, rules reloaded, NATS paused and resumed after %s", time.Since(start).Round(time.Millisecond))
	var problems []string
	var e exported
	deadline := time.Now().Add(60 * time.Second)
	for {
		e = exported{}
		err := e.scrape(t, "http://"+recvAdmin+"/metrics")
		if err == nil {
			err = e.scrape(t, "http://"+workerAdmin+"/metrics")
		}
		if err != nil {
			problems = []string{err.Error()}
		} else {
			problems = missingNames(qs, e, jobs)
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("scraped after %s", time.Since(start).Round(time.Millisecond))
	if len(problems) > 0 {
		t.Errorf("the deploy kit names what neither /metrics exports:\n%s\nexported: %v\n--- worker log (tail) ---\n%s",
			strings.Join(problems, "\n"), sortedKeys(e), tail(w.out.String(), 40))
	}
	// The check itself fails on a wrong name, a wrong label and a wrong job.
	for _, bad := range []promQuery{
		{where: "bad metric", expr: `max(zohook_events_pendin)`},
		{where: "bad label", expr: `sum(rate(zohook_receiver_requests_total{status="503"}[5m]))`},
		{where: "bad grouping", expr: `sum by (partition) (zohook_dead_letters)`},
		{where: "bad legend", expr: `sum by (route) (rate(zohook_receiver_requests_total[5m]))`, templates: []string{"{{code}}"}},
		{where: "bad annotation", expr: `max(zohook_events_oldest_waiting_seconds) > 600`, templates: []string{"partition {{ $labels.partition }}"}},
		{where: "bad job", expr: `up{job="zohook-workers"}`},
	} {
		if p := missingNames([]promQuery{bad}, e, jobs); len(p) == 0 {
			t.Errorf("%s %q: not reported", bad.where, bad.expr)
		}
	}
	w.stop(t)
	recv.stop(t)
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// promtool (Debian's prometheus package) checks the rules and the
// Prometheus configuration and runs the alerts' unit tests
// (deploy/prometheus/alerts.test.yaml). Without promtool the test is
// skipped, except in CI (CI set), where .ci/run installs it.
func TestDeployPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is missing: CI must install it (.ci/run: apt-get install -y prometheus)")
		}
		t.Skip("promtool not installed (Debian: apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts.test.yaml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = deployPath("prometheus")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The alerts the README lists and the issue asks for are all there, each
// with a severity and a summary.
func TestDeployAlertsComplete(t *testing.T) {
	var names []string
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s lacks a severity or a summary", r.Alert)
			}
		}
	}
	for _, want := range []string{"ZohookEventsLate", "ZohookDeadLetters", "ZohookReceiverUnavailable", "ZohookChannelExpiring",
		"ZohookRulesInvalid", "ZohookNATSKVFailing", "ZohookReconcileStale", "ZohookWorkStreamFilling", "ZohookPartitionsUnserved", "ZohookNoWorker"} {
		if !slices.Contains(names, want) {
			t.Errorf("alerts.yaml lacks %s", want)
		}
	}
}

// The dashboard is one Grafana can provision: unique panel ids, panels
// inside the 24-column grid and not overlapping, every query on the
// datasource variable, and a panel for each thing the issue lists.
func TestDeployDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatal("dashboard without uid or title")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	var exprs strings.Builder
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s does not use the datasource variable", p.Title, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			exprs.WriteString(tg.Expr + "\n")
		}
	}
	// What issue 16 asks the dashboard to show, by the metric showing it.
	for what, metric := range map[string]string{
		"ingest rate and answer codes": "zohook_receiver_requests_total", "publish latency": "zohook_receiver_publish_duration_seconds_bucket",
		"backlog per partition": "zohook_events_pending", "oldest waiting event per partition": "zohook_events_oldest_waiting_seconds",
		"events by outcome": "zohook_worker_events_total", "Zoho calls by status": "zohook_zoho_calls_total",
		"Zoho call latency": "zohook_zoho_call_duration_seconds_bucket", "rate-limit waits": "zohook_rate_limit_wait_seconds",
		"dead letters": "zohook_dead_letters", "channel expiry": "zohook_channel_expiry_timestamp_seconds",
		"rules reloads": "zohook_rules_reloads_total", "KV retries": "zohook_nats_kv_retried_calls_total",
		"stream fullness": "zohook_stream_max_bytes", "partitions served": "zohook_partitions_unserved",
	} {
		if !strings.Contains(exprs.String(), metric) {
			t.Errorf("the dashboard does not show %s (%s)", what, metric)
		}
	}
}

// compose.yaml refers only to files that exist, keeps secrets out (env
// files and secret files only), gives each zohook process its own role's
// NKey seed, starts the nodes from deploy/nats, and Prometheus scrapes the
// services and ports it runs the admin listeners on.
func TestDeployComposeReferences(t *testing.T) {
	b, err := os.ReadFile(deployPath("compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		EnvFile     any               `yaml:"env_file"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Secrets     []string          `yaml:"secrets"`
		Ports       []string          `yaml:"ports"`
		DependsOn   any               `yaml:"depends_on"`
	}
	var c struct {
		Services map[string]service `yaml:"services"`
		Secrets  map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	// Merge keys (<<: *zohook) with keys of the service's own override
	// them, as in compose; the parser calls that a duplicate without this.
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.AllowDuplicateMapKey()); err != nil {
		t.Fatal(err)
	}
	exists := func(what, rel string) {
		p := filepath.Join(deployPath(), rel)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %s does not exist", what, rel)
		}
	}
	secretish := regexp.MustCompile(`(?i)(secret|token|password|seed|_key$|refresh)`)
	for name, s := range c.Services {
		var envFiles []string
		switch v := s.EnvFile.(type) {
		case string:
			envFiles = []string{v}
		case []any:
			for _, f := range v {
				envFiles = append(envFiles, fmt.Sprint(f))
			}
		}
		for _, f := range envFiles {
			// The real env files are made from the committed examples.
			exists(name+" env_file", f+".example")
		}
		for k, v := range s.Environment {
			if secretish.MatchString(k) && !strings.HasPrefix(v, "/run/secrets/") {
				t.Errorf("service %s sets %s in compose.yaml: secrets belong in an env file", name, k)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				exists(name+" volume", src)
			}
		}
		if strings.HasPrefix(s.Image, "zohook") {
			seed := s.Environment["ZOHOOK_NATS_NKEY"]
			if len(s.Secrets) != 1 || seed != "/run/secrets/"+s.Secrets[0] {
				t.Errorf("service %s: mounts secrets %v and uses seed %q: want exactly its own role's seed", name, s.Secrets, seed)
			}
			if s.Environment["ZOHOOK_STREAM_REPLICAS"] != "3" {
				t.Errorf("service %s: ZOHOOK_STREAM_REPLICAS %q, want 3", name, s.Environment["ZOHOOK_STREAM_REPLICAS"])
			}
			role := map[string]string{"receiver": "receiver", "worker": "worker"}[s.Command[0]]
			if len(s.Command) > 1 && s.Command[1] == "setup" {
				role = "admin"
				if !slices.Contains(s.Command, "-apply") || !slices.Contains(s.Command, "-stream-replicas") {
					t.Errorf("service %s: %v does not apply the layout at three replicas", name, s.Command)
				}
			}
			if want := "nats-" + role + ".nk"; len(s.Secrets) == 1 && s.Secrets[0] != want {
				t.Errorf("service %s (%s) mounts %s, want %s", name, s.Command[0], s.Secrets[0], want)
			}
		}
		if strings.HasPrefix(s.Image, "nats:") {
			if len(s.Command) != 2 || s.Command[0] != "-c" || s.Command[1] != "/etc/nats/"+name+".conf" {
				t.Errorf("NATS service %s runs %v, want -c /etc/nats/%s.conf", name, s.Command, name)
			}
			exists(name+" config", filepath.Join("nats", name+".conf"))
		}
	}
	for name, s := range c.Secrets {
		if !strings.HasPrefix(s.File, "./secrets/") {
			t.Errorf("secret %s is read from %s, not deploy/secrets/ (git-ignored)", name, s.File)
		}
	}
	// What Prometheus scrapes is what compose runs, on the admin ports.
	pb, err := os.ReadFile(deployPath("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(pb, &pc); err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := strings.Cut(target, ":")
				s, ok := c.Services[host]
				if !ok {
					t.Errorf("prometheus.yml job %s scrapes %s: no such service", sc.JobName, target)
					continue
				}
				if s.Environment["ZOHOOK_ADMIN_ADDR"] != ":"+port {
					t.Errorf("prometheus.yml scrapes %s but the service's admin listener is %q", target, s.Environment["ZOHOOK_ADMIN_ADDR"])
				}
				scraped[host] = true
			}
		}
	}
	receivers, workers := 0, 0
	for name, s := range c.Services {
		if !strings.HasPrefix(s.Image, "zohook") || s.Command[0] == "worker" && len(s.Command) > 1 {
			continue
		}
		switch s.Command[0] {
		case "receiver":
			receivers++
		case "worker":
			workers++
		}
		if !scraped[name] {
			t.Errorf("service %s is not scraped by prometheus.yml", name)
		}
	}
	if receivers != 2 || workers != 2 {
		t.Errorf("%d receivers and %d workers, want 2 and 2", receivers, workers)
	}
	// No literal secret: nothing in the file looks like an NKey seed or a
	// Zoho token.
	if m := regexp.MustCompile(`\bSU[A-Z2-7]{50,}|1000\.[0-9a-f]{32}`).Find(b); m != nil {
		t.Errorf("compose.yaml holds what looks like a secret: %.12s…", m)
	}
	if bytes.Contains(b, []byte("GF_SECURITY_ADMIN_PASSWORD:")) {
		t.Error("compose.yaml sets Grafana's password")
	}
}
