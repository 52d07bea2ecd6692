package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// WorkerOptions are the worker's settings (flags / ZOHOOK_* env).
type WorkerOptions struct {
	Rules         string
	Concurrency   int
	MaxDeliver    int
	AckWait       time.Duration
	PinnedTTL     time.Duration
	CRMRate       string
	CRMBurst      int
	BooksRate     string
	BooksBurst    int
	RatePatience  time.Duration
	EventTimeout  time.Duration
	TokenRetry    time.Duration
	MetricsAddr   string
	ShutdownGrace time.Duration
	LogFormat     string
	LogLevel      string
	NATS          NATSOptions
	Background    BackgroundOptions
	// ConfigFile: optional YAML with Zoho connections (see README).
	ConfigFile string
	// Getenv reads ZOHOOK_ZOHO_*; default os.Getenv.
	Getenv func(string) string
	// started is set once the worker consumes (readiness); nil without ops endpoints.
	started *atomic.Bool
	// ZohoOverride replaces the environment's Zoho connection (-dev's fake).
	ZohoOverride *zoho.Config
}

// Register adds the worker's flags to fs.
func (o *WorkerOptions) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Rules, "rules", "rules.yaml", "rules `file` (hot-reloaded)")
	o.registerTuning(fs)
	fs.StringVar(&o.ConfigFile, "config", "", "optional YAML `file` with Zoho connections (see README)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":9090", "listen `address` for /healthz, /readyz and /metrics; empty for none")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long in-flight events may finish before they are released for redelivery")
	fs.StringVar(&o.LogFormat, "log-format", "json", "json or text")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	o.Background.register(fs)
	o.NATS.Register(fs, false)
}

func (o *WorkerOptions) registerTuning(fs *flag.FlagSet) {
	fs.StringVar(&o.CRMRate, "crm-rate", "50000/24h", "client-side CRM call limit shared by all workers, per connection (`N/period`; 0 = off); raise it to your edition's credits")
	fs.IntVar(&o.CRMBurst, "crm-burst", 1000, "CRM calls allowed at once before -crm-rate paces them")
	fs.StringVar(&o.BooksRate, "books-rate", "90/1m", "client-side Books call limit shared by all workers, per connection (`N/period`); keep rate×period + -books-burst within Zoho's 100 per minute per organization")
	fs.IntVar(&o.BooksBurst, "books-burst", 10, "Books calls allowed at once before -books-rate paces them")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "events handled at once (events of one record always run in order)")
	fs.IntVar(&o.MaxDeliver, "max-deliver", events.DefaultMaxDeliver, "deliveries of one event before it is dead-lettered")
	fs.DurationVar(&o.AckWait, "ack-wait", events.DefaultAckWait, "redelivery timeout of an unacknowledged event (kept alive while it runs)")
	fs.DurationVar(&o.PinnedTTL, "pinned-ttl", events.DefaultPinnedTTL, "how long a silent worker process keeps its partitions before another takes them over")
	fs.DurationVar(&o.RatePatience, "rate-limit-patience", 10*time.Minute, "how long an event waits in-process for a Zoho rate limit to clear before it is retried later")
	fs.DurationVar(&o.EventTimeout, "event-timeout", 5*time.Minute, "longest one attempt at an event may take")
	fs.DurationVar(&o.TokenRetry, "token-retry", time.Minute, "after a failed access-token refresh, how long every worker waits before one tries again (events wait meanwhile); Zoho allows 10 refreshes per 10 minutes per refresh token")
}

// RunWorker connects to NATS and runs the worker until ctx ends.
func RunWorker(ctx context.Context, o WorkerOptions, stderr io.Writer) error {
	log, err := NewLogger(stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	// Check what the operator can fix before waiting for NATS.
	if _, err := rules.Load(o.Rules); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	if _, err := zohoActors(o, slog.New(slog.DiscardHandler), nil); err != nil {
		return err
	}
	bb, err := OpenBackbone(ctx, o.NATS, "zohook-worker", false, log)
	if err != nil {
		return err
	}
	defer bb.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.MetricsAddr != "" {
		o.started = &atomic.Bool{}
		stop, err := serveOps(o.MetricsAddr, bb, reg, log, o.started)
		if err != nil {
			return err
		}
		defer stop()
	}
	return runWorkerOn(ctx, bb, o, log, reg)
}

// runWorkerOn runs the worker on an open backbone (shared by -dev).
func runWorkerOn(ctx context.Context, bb *Backbone, o WorkerOptions, log *slog.Logger, reg *prometheus.Registry) error {
	p, err := buildPipeline(ctx, bb, o, log, reg)
	if err != nil {
		return err
	}
	ccfg := events.ConsumerConfig{MaxDeliver: o.MaxDeliver, AckWait: o.AckWait, PinnedTTL: o.PinnedTTL}
	if err := reg.Register(newBacklogCollector(bb.JS, bb.Stream, ccfg, p.dlq, log)); err != nil {
		return err
	}
	runner, err := worker.NewRunner(worker.Config{
		JS:                bb.JS,
		Stream:            bb.Stream,
		Consumer:          ccfg,
		Handler:           worker.Chain(p.handler, worker.Log(log), worker.Recover(log), worker.Timeout(o.EventTimeout)),
		DeadLetter:        p.dlq,
		Observer:          p.observer,
		Concurrency:       o.Concurrency,
		RateLimitPatience: o.RatePatience,
		ShutdownGrace:     o.ShutdownGrace,
		Logger:            log,
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := startBackground(wctx, bb, o, p, log, reg); err != nil {
		return err
	}
	go func() {
		if err := p.watcher.Run(wctx); err != nil && wctx.Err() == nil {
			log.Error("rules watcher stopped; rules will no longer reload", "err", err)
		}
	}()
	if o.started != nil {
		// Ready only now: the journal, loop guard and DLQ exist and rules loaded.
		o.started.Store(true)
	}
	return runner.Run(ctx)
}

// serveOps serves /healthz, /readyz and /metrics for the worker.
func serveOps(addr string, bb *Backbone, reg *prometheus.Registry, log *slog.Logger, started *atomic.Bool) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		err := bb.Ready(r.Context())
		if err == nil && !started.Load() {
			err = errors.New("worker starting: opening its stores")
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"error\":%q}\n", err.Error())
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ops server", "err", err)
		}
	}()
	log.Info("worker ops endpoints", "addr", l.Addr().String())
	return func() { _ = srv.Close() }, nil
}
