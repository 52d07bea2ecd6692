package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/app"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// clusterNode is one nats-server process of the test cluster.
type clusterNode struct {
	name, url string
	p         *proc
}

// startCluster runs three nats-server nodes as processes of their own (the
// natsnode binary), on loopback, routed to each other, each with its own
// JetStream store, so that one can be SIGKILLed.
func startCluster(t *testing.T) []*clusterNode {
	t.Helper()
	const size = 3
	routePorts := make([]string, size)
	var routes []string
	for i := range routePorts {
		_, routePorts[i], _ = strings.Cut(freeAddr(t), ":")
		routes = append(routes, "nats-route://127.0.0.1:"+routePorts[i])
	}
	nodes := make([]*clusterNode, size)
	for i := range nodes {
		_, port, _ := strings.Cut(freeAddr(t), ":")
		name := fmt.Sprintf("n%d", i+1)
		nodes[i] = &clusterNode{name: name, url: "nats://127.0.0.1:" + port,
			p: startProc(t, "natsnode", nil, "-name", name, "-port", port, "-cluster-port", routePorts[i],
				"-routes", strings.Join(routes, ","), "-store", t.TempDir())}
	}
	for _, n := range nodes {
		waitFor(t, "node "+n.name+" ready", 20*time.Second, func() bool { return strings.Contains(n.p.out.String(), "ready nats://") }, n.p)
	}
	return nodes
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

// A three-node NATS cluster, the events stream on three replicas, the real
// receiver and worker binaries connected to all three nodes. While
// notifications pour in, the node leading the events stream is SIGKILLed:
// every notification answered 2xx is processed exactly once (one Books
// invoice per event id), whatever the others were answered.
func TestClusterNodeLostDuringIngest(t *testing.T) {
	// This test found a stall: a journal write sent just before the node
	// died got no answer, and only the 5-minute event timeout ended the
	// wait, while in-progress acks kept JetStream from redelivering. KV
	// calls are now bounded per attempt and retried (events.BoundKV).
	const total, records, senders = 400, 50, 8
	nodes := startCluster(t)
	urls := clusterURLs(nodes)
	ctx := context.Background()

	// An R3 stream can be created only once the cluster has a meta leader
	// (about 5 s after start): retry until then.
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	scfg := events.StreamConfig{Replicas: 3}
	waitFor(t, "the R3 layout", 60*time.Second, func() bool {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := app.EnsureLayout(c, js, scfg, e2eConsumers, events.CreateMissing)
		return err == nil
	})

	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	rulesFile := writeRules(t, chaosRules(demo.BooksContactID, demo.BooksItemID))
	const token = "cluster-notify-token-5rT"
	addr := freeAddr(t)
	recv := startProc(t, "receiver", []string{"ZOHOOK_CRM_NOTIFY_TOKENS=" + token},
		"-addr", addr, "-nats-url", urls, "-stream-replicas", "3", "-ack-wait", "2s", "-pinned-ttl", "2s", "-publish-timeout", "15s", "-log-format", "text")
	w := startProc(t, "worker", zohoEnv(fake), "-nats-url", urls, "-rules", rulesFile,
		"-admin-addr", "127.0.0.1:0", "-books-rate", "0", "-concurrency", "16",
		"-log-format", "text", "-log-level", "info", "-shutdown-grace", "5s")
	base := "http://" + addr
	// Both processes create their R3 streams and buckets at start; the node
	// is lost during ingest, not during that setup.
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
	for ref, c := range invoicesByRef(fake, demo.OrgID) {
		if c != 1 {
			t.Errorf("event %s has %d invoices", ref, c)
		}
	}
	w.stop(t)
	recv.stop(t)
}
