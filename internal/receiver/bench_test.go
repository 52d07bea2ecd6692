package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/receiver"
)

// BenchmarkIngest measures, in one run and on the same embedded JetStream:
//   - raw: sync JetStream publishes of an envelope-sized message with a
//     unique Nats-Msg-Id, from `clients` goroutines (the ceiling), and
//   - http: CRM notifications POSTed over real HTTP to the receiver, which
//     parses, verifies, validates and publishes (one record per request).
//
// It reports both rates and http/raw, the figure to compare across machines.
//
//	go test -run '^$' -bench Ingest -benchtime 20000x ./internal/receiver/
func BenchmarkIngest(b *testing.B) {
	const clients = 16
	env := eventstest.Start(b)
	srv, err := receiver.New(receiver.Config{
		Publisher: events.NewPublisher(env.JS, env.Stream),
		CRMTokens: receiver.NewStaticTokens([]string{token}),
	})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Shutdown(context.Background())
	url := "http://" + l.Addr().String() + "/zoho/crm/notify"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}

	sampleEnv, _ := json.Marshal(&events.Envelope{Version: 1, ID: "x", Source: events.SourceCRMNotify, Connection: "default",
		Module: "Deals", Operation: "update", RecordID: "5725767000000524157", ReceivedAt: time.Now(), Raw: notification(nil)})

	var seq atomic.Int64
	parallel := func(n int, fn func(i int64) error) time.Duration {
		var wg sync.WaitGroup
		var left atomic.Int64
		left.Store(int64(n))
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					if err := fn(seq.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}

	b.ResetTimer()
	rawDur := parallel(b.N, func(i int64) error {
		msg := &nats.Msg{Subject: fmt.Sprintf("zoho.crm.notify.default.Deals.update.%d", i%4), Data: sampleEnv, Header: nats.Header{}}
		msg.Header.Set("Nats-Msg-Id", fmt.Sprintf("raw-%d", i))
		_, err := env.JS.PublishMsg(context.Background(), msg)
		return err
	})
	httpDur := parallel(b.N, func(i int64) error {
		body := notification(func(m map[string]any) {
			m["ids"] = []any{fmt.Sprintf("%d", 5725767000000000000+i)}
			m["server_time"] = 1718117126473 + i
		})
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
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
	b.StopTimer()
	raw := float64(b.N) / rawDur.Seconds()
	ingest := float64(b.N) / httpDur.Seconds()
	b.ReportMetric(raw, "raw_publish/s")
	b.ReportMetric(ingest, "http_ingest/s")
	b.ReportMetric(ingest/raw, "ingest/raw")
}

// encodingPublisher does what events.Publisher does before the network (one
// json.Marshal per envelope) and stores nothing: BenchmarkCRMNotifyHandler
// then measures the receiver's own CPU per request, without NATS.
type encodingPublisher struct{}

func (encodingPublisher) Publish(_ context.Context, envs []*events.Envelope) ([]events.PublishResult, error) {
	out := make([]events.PublishResult, len(envs))
	for i, e := range envs {
		if _, err := json.Marshal(e); err != nil {
			return nil, err
		}
		out[i] = events.PublishResult{ID: e.ID}
	}
	return out, nil
}

// notify1KiB is the load tools' body (bench/notify-1k.json: 1 KiB, 56
// affected_fields) with a record id and server_time of its own.
func notify1KiB(tb testing.TB) func(i int64) []byte {
	tb.Helper()
	tmpl, err := os.ReadFile("../../bench/notify-1k.json")
	if err != nil {
		tb.Fatal(err)
	}
	tmpl = bytes.TrimSpace(bytes.ReplaceAll(tmpl, []byte("__TOKEN__"), []byte(token)))
	return func(i int64) []byte {
		b := bytes.Replace(tmpl, []byte("__ID__"), strconv.AppendInt(nil, 5725767000100000000+i, 10), 1)
		return bytes.Replace(b, []byte("__SERVER_TIME__"), strconv.AppendInt(nil, 1764410000000+i, 10), 1)
	}
}

// BenchmarkCRMNotifyHandler is the receiver's CPU per CRM notification
// (the 1 KiB body of the load tools) from request to answer, envelope
// encoding included, NATS excluded; profile it with
//
//	go test -run '^$' -bench CRMNotifyHandler -cpuprofile /tmp/recv.prof ./internal/receiver/
func BenchmarkCRMNotifyHandler(b *testing.B) {
	srv, err := receiver.New(receiver.Config{
		Publisher: encodingPublisher{},
		CRMTokens: receiver.NewStaticTokens([]string{token}),
	})
	if err != nil {
		b.Fatal(err)
	}
	body := notify1KiB(b)
	bodies := make([][]byte, 1024)
	for i := range bodies {
		bodies[i] = body(int64(i))
	}
	h := srv.Handler()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/zoho/crm/notify", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}
