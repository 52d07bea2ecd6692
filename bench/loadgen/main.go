// Command loadgen measures zohook's receiver over real HTTP: it POSTs Zoho
// CRM notifications (one unique record and server_time each, so none is a
// duplicate) from many concurrent connections and reports requests/s,
// latency percentiles and errors. With -nats-url it first measures raw
// JetStream synchronous publishes against the same NATS server, in the same
// run, and prints the receiver/raw ratio: the figure that travels between
// machines. With -pids it reports the peak RSS (VmHWM) of those processes.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080/zoho/crm/notify -token zohook-dev-token \
//	    -c 64 -n 20000 -nats-url nats://127.0.0.1:4222 -pids 1234,5678
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type config struct {
	url         string
	token       string
	module      string
	conc        int
	n           int
	natsURL     string
	rawSubject  string
	rawSize     int
	pids        string
	timeout     time.Duration
	serverStart int64
	idsFile     string
	ids         []string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "http://127.0.0.1:8080/zoho/crm/notify", "receiver notification URL")
	flag.StringVar(&cfg.token, "token", "zohook-dev-token", "CRM notification channel token the receiver accepts")
	flag.StringVar(&cfg.module, "module", "Leads", "CRM module named in the notifications (pick one no rule acts on to measure ingest alone)")
	flag.IntVar(&cfg.conc, "c", 64, "concurrent connections")
	flag.IntVar(&cfg.n, "n", 20000, "notifications to send")
	flag.StringVar(&cfg.natsURL, "nats-url", "", "NATS URL: measure raw JetStream sync publishes first (same count and concurrency) and print the ratio")
	flag.StringVar(&cfg.rawSubject, "raw-subject", "loadgen.raw", "subject of the raw baseline (a file-storage stream LOADGEN_RAW is created for it and deleted after)")
	flag.IntVar(&cfg.rawSize, "raw-size", 512, "payload bytes of each raw publish")
	flag.StringVar(&cfg.pids, "pids", "", "comma-separated pids whose peak RSS (VmHWM) to report at the end, e.g. receiver,worker")
	flag.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.Int64Var(&cfg.serverStart, "server-time", time.Now().UnixMilli(), "server_time of the first notification (later ones add 1); unique per run so JetStream de-duplicates nothing")
	flag.StringVar(&cfg.idsFile, "ids", "", "`file` of record ids (one per line, e.g. from bench/fakezoho -ids) to name in turn instead of new ids")
	flag.Parse()
	if cfg.idsFile != "" {
		b, err := os.ReadFile(cfg.idsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		cfg.ids = strings.Fields(string(b))
	}
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.conc < 1 || cfg.n < 1 {
		return errors.New("-c and -n must be positive")
	}
	var raw *result
	if cfg.natsURL != "" {
		r, err := rawPublish(ctx, cfg)
		if err != nil {
			return fmt.Errorf("raw JetStream baseline: %w", err)
		}
		raw = &r
		fmt.Fprintf(out, "raw JetStream sync publish: %s\n", r)
	}
	// For scripts timing what follows the ingest (bench/separate.sh: end
	// to end events/s): when the first notification went out.
	fmt.Fprintf(out, "ingest start (unix s): %.6f\n", float64(time.Now().UnixNano())/1e9)
	recv := ingest(cfg)
	fmt.Fprintf(out, "receiver ingest over HTTP:  %s\n", recv)
	if len(recv.errs) > 0 {
		fmt.Fprintf(out, "  errors: %s\n", recv.errSummary())
	}
	if raw != nil && raw.rate() > 0 {
		fmt.Fprintf(out, "ratio receiver/raw: %.2f\n", recv.rate()/raw.rate())
	}
	if cfg.pids != "" {
		for _, p := range strings.Split(cfg.pids, ",") {
			p = strings.TrimSpace(p)
			hwm, rss, err := peakRSS(p)
			if err != nil {
				fmt.Fprintf(out, "pid %s: %v\n", p, err)
				continue
			}
			fmt.Fprintf(out, "pid %s: peak RSS (VmHWM) %s, current RSS %s\n", p, hwm, rss)
		}
	}
	if recv.ok == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

// result is one measured run.
type result struct {
	ok      int
	elapsed time.Duration
	lat     []time.Duration // successful requests only
	errs    map[string]int
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) String() string {
	failed := 0
	for _, n := range r.errs {
		failed += n
	}
	return fmt.Sprintf("%d ok, %d failed in %s: %.0f/s, p50 %s p90 %s p99 %s max %s",
		r.ok, failed, r.elapsed.Round(time.Millisecond), r.rate(),
		r.pct(0.50).Round(10*time.Microsecond), r.pct(0.90).Round(10*time.Microsecond),
		r.pct(0.99).Round(10*time.Microsecond), r.pct(1).Round(10*time.Microsecond))
}

func (r result) errSummary() string {
	keys := make([]string, 0, len(r.errs))
	for k := range r.errs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, r.errs[k])
	}
	return strings.Join(parts, "; ")
}

// measure runs fn n times from c goroutines and collects latencies.
func measure(n, c int, fn func(i int) error) result {
	var next atomic.Int64
	var mu sync.Mutex
	res := result{errs: map[string]int{}, lat: make([]time.Duration, 0, n)}
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, n/c+1)
			localErr := map[string]int{}
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				t0 := time.Now()
				if err := fn(i); err != nil {
					localErr[err.Error()]++
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, local...)
			for k, v := range localErr {
				res.errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// ingest POSTs cfg.n notifications, each naming one new record.
func ingest(cfg config) result {
	client := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{
		MaxIdleConns: cfg.conc, MaxIdleConnsPerHost: cfg.conc, MaxConnsPerHost: cfg.conc}}
	defer client.CloseIdleConnections()
	return measure(cfg.n, cfg.conc, func(i int) error {
		id := strconv.FormatInt(5725767000100000000+int64(i), 10)
		if len(cfg.ids) > 0 {
			id = cfg.ids[i%len(cfg.ids)]
		}
		body, _ := json.Marshal(map[string]any{
			"server_time": cfg.serverStart + int64(i), "module": cfg.module,
			"ids": []string{id}, "operation": "update",
			"affected_fields": []map[string][]string{{id: {"Phone"}}},
			"channel_id":      "1000000068001", "resource_uri": "https://www.zohoapis.com/crm/v8/" + cfg.module, "token": cfg.token,
		})
		resp, err := client.Post(cfg.url, "application/json", bytes.NewReader(body))
		if err != nil {
			var ue interface{ Timeout() bool }
			if errors.As(err, &ue) && ue.Timeout() {
				return errors.New("timeout")
			}
			return errors.New("connection error")
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
}

// rawPublish measures synchronous JetStream publishes (each waits for the
// stream's ack, as the receiver does) to a file-storage stream of its own.
func rawPublish(ctx context.Context, cfg config) (result, error) {
	nc, err := nats.Connect(cfg.natsURL)
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}
	const stream = "LOADGEN_RAW"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{cfg.rawSubject},
		Storage: jetstream.FileStorage}); err != nil {
		return result{}, err
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), stream) }()
	payload := bytes.Repeat([]byte("x"), cfg.rawSize)
	return measure(cfg.n, cfg.conc, func(i int) error {
		_, err := js.Publish(ctx, cfg.rawSubject, payload)
		return err
	}), nil
}

// peakRSS reads VmHWM and VmRSS of a process from /proc (Linux).
func peakRSS(pid string) (hwm, rss string, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		case "VmRSS":
			rss = strings.TrimSpace(v)
		}
	}
	if hwm == "" {
		return "", "", fmt.Errorf("no VmHWM in /proc/%s/status", pid)
	}
	return hwm, rss, nil
}
