package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/tracing"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// WorkerOptions are the worker's settings (flags / ZOHOOK_* env).
type WorkerOptions struct {
	Rules         string
	Concurrency   int
	MaxDeliver    int
	Name          string
	CRMRate       string
	CRMBurst      int
	BooksRate     string
	BooksBurst    int
	RatePatience  time.Duration
	EventTimeout  time.Duration
	TokenRetry    time.Duration
	AdminAddr     string
	ShutdownGrace time.Duration
	LogFormat     string
	LogLevel      string
	NATS          NATSOptions
	Background    BackgroundOptions
	// Console: -console, the web console on the admin listener.
	Console ConsoleOptions
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
	fs.StringVar(&o.Name, "name", "", "this worker's `name` among the workers sharing the partitions (worker status shows it); default host-pid")
	o.registerTuning(fs)
	fs.StringVar(&o.ConfigFile, "config", "", "optional YAML `file` with Zoho connections (see README)")
	fs.StringVar(&o.AdminAddr, "admin-addr", DefaultWorkerAdminAddr, "admin listen `address` for /healthz, /readyz and /metrics (loopback by default: bind another address only behind a firewall); empty for none")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long in-flight events may finish before they are released for redelivery")
	fs.StringVar(&o.LogFormat, "log-format", "json", "json or text")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	o.Background.register(fs)
	o.Console.Register(fs)
	o.NATS.Register(fs, false)
}

func (o *WorkerOptions) registerTuning(fs *flag.FlagSet) {
	fs.StringVar(&o.CRMRate, "crm-rate", "50000/24h", "client-side CRM call limit shared by all workers, per connection (`N/period`; 0 = off); raise it to your edition's credits")
	fs.IntVar(&o.CRMBurst, "crm-burst", 1000, "CRM calls allowed at once before -crm-rate paces them")
	fs.StringVar(&o.BooksRate, "books-rate", "90/1m", "client-side Books call limit shared by all workers, per connection (`N/period`); keep rate×period + -books-burst within Zoho's 100 per minute per organization")
	fs.IntVar(&o.BooksBurst, "books-burst", 10, "Books calls allowed at once before -books-rate paces them")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "events handled at once (events of one record always run in order)")
	fs.IntVar(&o.MaxDeliver, "max-deliver", events.DefaultMaxDeliver, "failed runs of one event before it is dead-lettered (a release at shutdown is not a failure)")
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
	stopTracing, err := tracing.Setup(ctx, tracing.Options{ServiceName: "zohook-worker", Version: BuildVersion("worker").Version, Logger: log})
	if err != nil {
		return err
	}
	defer stopTracing()
	for _, w := range zoho.TokenRetryWarnings(o.TokenRetry) {
		log.Warn(w)
	}
	// Check what the operator can fix before waiting for NATS.
	if o.Console.Enabled {
		getenv := o.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if pw, err := consolePassword(o.Console, getenv); err != nil {
			return err
		} else if pw == "" {
			return &UsageError{Err: fmt.Errorf("-console needs a password: set %s or -console-password-file", ConsolePasswordEnv)}
		}
	}
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
	// The layout is the receiver's (or `worker setup`'s): wait for it.
	if err := AwaitLayout(ctx, bb, log, 24*time.Hour); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.started = &atomic.Bool{}
	admin := newAdmin(reg, func(ctx context.Context) error {
		if err := bb.Ready(ctx); err != nil {
			return err
		}
		if !o.started.Load() {
			return errors.New("worker starting: opening its stores")
		}
		return nil
	})
	stopAdmin, err := admin.start(o.AdminAddr, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	if _, err := serveConsole(ctx, admin, bb, o, o.Console, false, reg, log); err != nil {
		return err
	}
	return runWorkerOn(ctx, bb, o, log, reg)
}

// runWorkerOn runs the worker on an open backbone (shared by -dev).
func runWorkerOn(ctx context.Context, bb *Backbone, o WorkerOptions, log *slog.Logger, reg *prometheus.Registry) error {
	p, err := buildPipeline(ctx, bb, o, log, reg)
	if err != nil {
		return err
	}
	ccfg := bb.Consumer
	ccfg.MaxDeliver = o.MaxDeliver
	if err := reg.Register(newBacklogCollector(bb.JS, bb.Stream, ccfg, p.dlq, log)); err != nil {
		return err
	}
	if err := reg.Register(newMembershipCollector(bb.JS, bb.Stream.Partitions, log)); err != nil {
		return err
	}
	members, err := worker.Join(ctx, bb.JS, p.name, bb.Stream.Partitions, p.kv, log)
	if err != nil {
		return err
	}
	runner, err := worker.NewRunner(worker.Config{
		JS:                bb.JS,
		Stream:            bb.Stream,
		Consumer:          ccfg,
		Journal:           p.journal,
		Members:           members,
		Outcomes:          worker.NewOutcomes(bb.JS, p.name, log),
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
