package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// clusterNode is one nats-server process of the test cluster.
type clusterNode struct {
	name, url string
	monitor   string // http://host:port of its monitoring endpoint
	p         *proc
}

// natsRoles are the NKey users of deploy/nats/users.conf for one test: a
// fresh key pair per role, the seeds in files (what -nats-nkey takes), the
// public keys in the environment the node configurations read.
type natsRoles struct {
	seeds map[events.Role]string // role → seed file
	env   []string               // ZOHOOK_NATS_<ROLE>_NKEY=<public key>
}

// newNATSRoles makes the key pairs of every role in events.Roles.
func newNATSRoles(t *testing.T) *natsRoles {
	t.Helper()
	dir := t.TempDir()
	r := &natsRoles{seeds: map[events.Role]string{}}
	for _, role := range events.Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		file := filepath.Join(dir, string(role)+".nk")
		if err := os.WriteFile(file, append(seed, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		r.seeds[role] = file
		r.env = append(r.env, roleKeyEnv(role)+"="+pub)
	}
	return r
}

// roleKeyEnv is the environment variable users.conf reads role's public
// key from.
func roleKeyEnv(role events.Role) string {
	return "ZOHOOK_NATS_" + strings.ToUpper(string(role)) + "_NKEY"
}

// connect opens a NATS connection as role.
func (r *natsRoles) connect(t *testing.T, urls string, role events.Role) *nats.Conn {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(r.seeds[role])
	if err != nil {
		t.Fatal(err)
	}
	// Permission violations come back as errors of the calls; the default
	// handler would print them too.
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nc, err := nats.Connect(urls, opt, quiet, nats.MaxReconnects(-1), nats.Name("e2e-"+string(role)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// clusterConfigs are the node configurations the cluster tests start from:
// the files deploy/compose.yaml runs.
func clusterConfigs() []string {
	var out []string
	for i := 1; i <= 3; i++ {
		out = append(out, filepath.Join(repoRoot(), "deploy", "nats", fmt.Sprintf("n%d.conf", i)))
	}
	return out
}

// startCluster runs three nats-server nodes as processes of their own (the
// natsnode binary) from deploy/nats/n1.conf … n3.conf, with the users and
// permissions of deploy/nats/users.conf; only the listen addresses (free
// loopback ports), the routes between them and the store directories
// differ from the files. One can be SIGKILLed.
func startCluster(t *testing.T) ([]*clusterNode, *natsRoles) {
	t.Helper()
	roles := newNATSRoles(t)
	confs := clusterConfigs()
	routePorts := make([]string, len(confs))
	var routes []string
	for i := range routePorts {
		_, routePorts[i], _ = strings.Cut(freeAddr(t), ":")
		routes = append(routes, "nats-route://127.0.0.1:"+routePorts[i])
	}
	nodes := make([]*clusterNode, len(confs))
	for i, conf := range confs {
		_, port, _ := strings.Cut(freeAddr(t), ":")
		monitor := freeAddr(t)
		_, httpPort, _ := strings.Cut(monitor, ":")
		nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i+1), url: "nats://127.0.0.1:" + port, monitor: "http://" + monitor,
			p: startProc(t, "natsnode", roles.env, "-config", conf, "-host", "127.0.0.1", "-port", port, "-cluster-port", routePorts[i],
				"-http-port", httpPort, "-routes", strings.Join(routes, ","), "-store", t.TempDir())}
	}
	for _, n := range nodes {
		waitFor(t, "node "+n.name+" ready", 20*time.Second, func() bool { return strings.Contains(n.p.out.String(), "ready nats://") }, n.p)
	}
	// What compose.yaml's healthcheck waits for: /healthz answers 200 once
	// JetStream runs and the cluster elected its meta leader; JetStream API
	// requests sent before then may never be answered.
	for _, n := range nodes {
		waitFor(t, "node "+n.name+" healthy", 60*time.Second, httpReady(n.monitor+"/healthz"), n.p)
	}
	return nodes, roles
}

// setupLayout runs `worker setup -apply` as the admin user, as the one-shot
// setup service of deploy/compose.yaml does before any receiver starts (a
// receiver's user may not create streams). A fresh R3 cluster needs a few
// seconds to elect its meta leader: retried until then, as compose's
// restart policy retries the service.
func setupLayout(t *testing.T, urls string, roles *natsRoles, args ...string) {
	t.Helper()
	args = append([]string{"setup", "-apply", "-nats-url", urls, "-nats-nkey", roles.seeds[events.RoleAdmin]}, args...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		cmd := exec.Command(filepath.Join(binDir, "worker"), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker setup -apply: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
}

func clusterURLs(nodes []*clusterNode) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url
	}
	return strings.Join(urls, ",")
}

// httpReady reports whether GET url answers 200.
func httpReady(url string) func() bool {
	return func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// notifyPoster posts CRM notifications to a receiver the way Zoho does and
// keeps the event ids of every 2xx answer.
type notifyPoster struct {
	url, token string
	client     *http.Client
	mu         sync.Mutex
	accepted   map[string]bool
	statuses   map[int]int
}

func newNotifyPoster(base, token string) *notifyPoster {
	return &notifyPoster{url: base + "/zoho/crm/notify", token: token, accepted: map[string]bool{}, statuses: map[int]int{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

// post sends notification i (one Deal) once and returns the status (0 when
// the connection failed).
func (p *notifyPoster) post(i int, record string) int {
	body, _ := json.Marshal(map[string]any{"server_time": 1764400000000 + i, "module": "Deals", "ids": []string{record},
		"operation": "update", "affected_fields": []string{"Stage"}, "channel_id": "1000000068001", "token": p.token})
	resp, err := p.client.Post(p.url, "application/json", bytes.NewReader(body))
	if err != nil {
		p.count(0)
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p.count(resp.StatusCode)
	if resp.StatusCode/100 == 2 {
		var out struct {
			EventIDs []string `json:"event_ids"`
		}
		_ = json.Unmarshal(raw, &out)
		p.mu.Lock()
		for _, id := range out.EventIDs {
			p.accepted[id] = true
		}
		p.mu.Unlock()
	}
	return resp.StatusCode
}

func (p *notifyPoster) count(code int) {
	p.mu.Lock()
	p.statuses[code]++
	p.mu.Unlock()
}

func (p *notifyPoster) acceptedIDs() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]bool, len(p.accepted))
	for k := range p.accepted {
		out[k] = true
	}
	return out
}

// A three-node NATS cluster started from deploy/nats (the compose kit's
// node configurations, users and permissions), the layout created at three
// replicas by `worker setup -apply` as the admin user, the real receiver
// and worker binaries connected to all three nodes as the receiver and
// worker users. While
// notifications pour in, the node leading the events stream is SIGKILLed:
// every notification answered 2xx is processed exactly once (one Books
// invoice per event id), whatever the others were answered.
func TestClusterNodeLostDuringIngest(t *testing.T) {
	// This test found a stall: a journal write sent just before the node
	// died got no answer, and only the 5-minute event timeout ended the
	// wait, while in-progress acks kept JetStream from redelivering. KV
	// calls are now bounded per attempt and retried (events.BoundKV).
	const total, records, senders = 400, 50, 8
	nodes, roles := startCluster(t)
	urls := clusterURLs(nodes)
	ctx := context.Background()

	// The layout at three replicas, created by the admin user; the receiver
	// and the worker then run as their own users, which may not create it.
	setupLayout(t, urls, roles, "-stream-replicas", "3", "-ack-wait", e2eConsumers.AckWait.String(), "-pinned-ttl", e2eConsumers.PinnedTTL.String())
	js, _ := jetstream.New(roles.connect(t, urls, events.RoleAdmin))
	scfg := events.StreamConfig{Replicas: 3}

	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	rulesFile := writeRules(t, chaosRules(demo.BooksContactID, demo.BooksItemID))
	const token = "cluster-notify-token-5rT"
	addr := freeAddr(t)
	recv := startProc(t, "receiver", []string{"ZOHOOK_CRM_NOTIFY_TOKENS=" + token},
		"-addr", addr, "-nats-url", urls, "-nats-nkey", roles.seeds[events.RoleReceiver], "-stream-replicas", "3", "-ack-wait", "2s", "-pinned-ttl", "2s", "-publish-timeout", "15s", "-log-format", "text")
	w := startProc(t, "worker", zohoEnv(fake), "-nats-url", urls, "-nats-nkey", roles.seeds[events.RoleWorker], "-rules", rulesFile,
		"-admin-addr", "127.0.0.1:0", "-books-rate", "0", "-concurrency", "16",
		"-log-format", "text", "-log-level", "info", "-shutdown-grace", "5s")
	base := "http://" + addr
	// Both processes wait until they see the layout and open their buckets;
	// the node is lost during ingest, not during that start.
	waitFor(t, "receiver ready", 30*time.Second, httpReady(base+"/readyz"), recv)
	// The worker's /readyz turns 200 once NATS and the stream are there,
	// before its journal, loop guard and DLQ exist: wait for it to consume.
	waitFor(t, "worker consuming", 60*time.Second, func() bool { return strings.Contains(w.out.String(), "worker consuming") }, w)

	poster := newNotifyPoster(base, token)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= total {
					return
				}
				poster.post(k, fmt.Sprintf("57257670001%08d", k%records))
				time.Sleep(10 * time.Millisecond) // a steady flow rather than one burst
			}
		}()
	}

	// A third of the way in, SIGKILL the node leading the stream.
	waitFor(t, "a third of the notifications stored", 30*time.Second, func() bool { return len(poster.acceptedIDs()) >= total/3 }, recv)
	st, err := js.Stream(ctx, scfg.WithDefaults().Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.Cluster.Leader
	for _, n := range nodes {
		if n.name == leader {
			n.p.kill()
			t.Logf("SIGKILLed stream leader %s after %d accepted events", leader, len(poster.acceptedIDs()))
		}
	}
	wg.Wait()

	accepted := poster.acceptedIDs()
	t.Logf("answers: %v; %d events accepted", poster.statuses, len(accepted))
	if len(accepted) < total/2 {
		t.Fatalf("only %d of %d notifications were stored: the cluster did not keep serving", len(accepted), total)
	}
	missing := func() []string {
		byRef := invoicesByRef(fake, demo.OrgID)
		var out []string
		for id := range accepted {
			if byRef[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		var logs []string
		for _, line := range strings.Split(w.out.String(), "\n") {
			if !strings.Contains(line, "zoho call") {
				logs = append(logs, line)
			}
		}
		var cons []string
		for p := range scfg.WithDefaults().Partitions {
			c, err := js.Consumer(ctx, scfg.WithDefaults().Name, fmt.Sprintf("workers-p%d", p))
			if err != nil {
				cons = append(cons, fmt.Sprintf("p%d: %v", p, err))
				continue
			}
			ci, err := c.Info(ctx)
			if err != nil {
				cons = append(cons, fmt.Sprintf("p%d: %v", p, err))
				continue
			}
			cons = append(cons, fmt.Sprintf("p%d: leader %s pending %d ack-pending %d waiting %d redelivered %d groups %+v",
				p, ci.Cluster.Leader, ci.NumPending, ci.NumAckPending, ci.NumWaiting, ci.NumRedelivered, ci.PriorityGroups))
		}
		t.Fatalf("%d accepted events never processed (e.g. %v)\nconsumers:\n%s\nworker log without its zoho calls:\n%s\nworker goroutines in zohook code:\n%s",
			len(m), m[:min(len(m), 5)], strings.Join(cons, "\n"), strings.Join(logs[max(0, len(logs)-30):], "\n"), w.stacks())
	}
	time.Sleep(2 * time.Second) // any late redelivery would show as a double
	// Each process ran as its own NATS user: it never needed more.
	for _, p := range []*proc{recv, w} {
		if strings.Contains(strings.ToLower(p.out.String()), "permissions violation") {
			t.Errorf("%s hit a NATS permissions violation as its role's user:\n%s", filepath.Base(p.cmd.Path), tail(p.out.String(), 30))
		}
	}
	for ref, c := range invoicesByRef(fake, demo.OrgID) {
		if c != 1 {
			t.Errorf("event %s has %d invoices", ref, c)
		}
	}
	w.stop(t)
	recv.stop(t)
}
