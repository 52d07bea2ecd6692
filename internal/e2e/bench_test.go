package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const benchRules = `
version: 1
rules:
  - name: deal-stage-note
    on: { source: crm.notify, module: Deals, operation: update }
    record: { fields: [Deal_Name, Stage, Amount] }
    when: record.Stage == "Closed Won"
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "won: ${record.Amount}" } }
`

// BenchmarkEndToEnd: CRM notifications POSTed over HTTP to the receiver →
// JetStream → worker (rules engine, journal, loop guard) → fake Zoho (no
// latency) and back, one event per Deal. It reports events/s from the first
// POST to the last completed rule, Zoho calls per event, and the raw
// JetStream publish rate measured in the same run for scale.
//
//	go test -run '^$' -bench EndToEnd -benchtime 2000x ./internal/e2e/
func BenchmarkEndToEnd(b *testing.B) {
	ctx := context.Background()
	fake := zohotest.NewServer()
	defer fake.Close()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fake.CRMInsert("Deals", map[string]any{"Deal_Name": fmt.Sprintf("Deal %d", i), "Stage": "Closed Won", "Amount": 100 + i})
	}
	env := eventstest.Start(b)
	const token = "bench-token"
	srv, _ := receiver.New(receiver.Config{Publisher: events.NewPublisher(env.JS, env.Stream), CRMTokens: receiver.NewStaticTokens([]string{token})})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(l) }()
	defer srv.Shutdown(ctx)
	url := "http://" + l.Addr().String() + "/zoho/crm/notify"

	cr := fake.Credentials()
	client, _ := zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		AccountsURL: fake.URL(), BooksOrgID: cr.OrgID})
	set, err := rules.Parse("bench.yaml", []byte(benchRules))
	if err != nil {
		b.Fatal(err)
	}
	journal, _ := worker.OpenJournal(ctx, env.JS, worker.JournalConfig{})
	loops, _ := engine.OpenLoopGuard(ctx, env.JS, engine.LoopGuardConfig{})
	eng, _ := engine.New(engine.Config{Rules: fixedRules{set}, Actors: engine.StaticActors{"default": client},
		Loops: loops, Logger: slog.New(slog.DiscardHandler)})
	var done atomic.Int64
	allDone := make(chan struct{})
	runner, _ := worker.NewRunner(worker.Config{JS: env.JS, Stream: env.Stream, Journal: journal, Concurrency: 16,
		Handler: worker.HandlerFunc(func(ctx context.Context, m *worker.Message) error {
			err := eng.Handle(ctx, m)
			if err == nil && done.Add(1) == int64(b.N) {
				close(allDone)
			}
			return err
		})})
	rctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { _ = runner.Run(rctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	// Baseline in the same run: raw sync JetStream publishes of 512 B to a
	// file-backed stream of its own, 16 publishers.
	if _, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	raw := rate(b.N, 16, func(i int) error {
		_, err := env.JS.Publish(ctx, "bench.raw", make([]byte, 512))
		return err
	})

	fake.ResetCalls()
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	// NATS messages per event: exact where times are noisy. The server
	// counts every message clients send (publishes, KV requests, acks) and
	// every one it delivers (events, answers).
	before, _ := env.Embedded.Server().Varz(nil)
	b.ResetTimer()
	start := time.Now()
	rate(b.N, 16, func(i int) error {
		body, _ := json.Marshal(map[string]any{"server_time": 1764400000000 + i, "module": "Deals", "ids": []string{ids[i]},
			"operation": "update", "affected_fields": []string{"Stage"}, "channel_id": "1000000068001", "token": token})
		resp, err := httpc.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	select {
	case <-allDone:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events completed", done.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	after, _ := env.Embedded.Server().Varz(nil)
	calls := 0
	for _, c := range fake.Calls() {
		if c.Path != "/oauth/v2/token" {
			calls++
		}
	}
	eps := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(eps, "events/s")
	b.ReportMetric(float64(calls)/float64(b.N), "zoho_calls/event")
	b.ReportMetric(raw, "raw_publish/s")
	b.ReportMetric(eps/raw, "e2e/raw")
	b.ReportMetric(float64(after.InMsgs-before.InMsgs)/float64(b.N), "nats_in_msgs/event")
	b.ReportMetric(float64(after.OutMsgs-before.OutMsgs)/float64(b.N), "nats_out_msgs/event")
}

// rate runs fn n times from c goroutines and returns calls per second.
func rate(n, c int, fn func(i int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		panic(err)
	}
	return float64(n) / time.Since(start).Seconds()
}
