package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/reconcile"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// pipeline is everything the worker needs besides the runner.
type pipeline struct {
	handler  worker.Handler
	observer worker.Observer
	dlq      *worker.DLQ
	journal  *worker.Journal
	name     string // this worker's member name
	watcher  *rules.Watcher
	actors   engine.StaticActors
	seen     *reconcile.Seen
	kv       events.KVOptions // for the background jobs' buckets
}

// buildPipeline loads the rules (refusing to start on a broken file),
// connects the Zoho client(s), and opens the journal, loop guard and DLQ.
func buildPipeline(ctx context.Context, bb *Backbone, o WorkerOptions, log *slog.Logger, reg *prometheus.Registry) (*pipeline, error) {
	set, err := rules.Load(o.Rules)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	kvo, err := kvOptions(reg, log)
	if err != nil {
		return nil, err
	}
	actors, err := zohoActors(o, log, &fleetDeps{ctx: ctx, js: bb.JS, replicas: bb.Stream.Replicas, reg: reg, kv: kvo, tokenRetry: o.TokenRetry})
	if err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = worker.DefaultMemberName()
	}
	journal, err := retryOpen(ctx, log, "journal", func(ctx context.Context) (*worker.Journal, error) {
		return worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{Replicas: bb.Stream.Replicas, TTL: worker.JournalTTL(bb.Stream.HistoryMaxAge), KV: kvo, Holder: name})
	})
	if err != nil {
		return nil, err
	}
	loops, err := retryOpen(ctx, log, "loop guard", func(ctx context.Context) (*engine.LoopGuard, error) {
		return engine.OpenLoopGuard(ctx, bb.JS, engine.LoopGuardConfig{Replicas: bb.Stream.Replicas, KV: kvo})
	})
	if err != nil {
		return nil, err
	}
	dlq, err := retryOpen(ctx, log, "dead-letter stream", func(ctx context.Context) (*worker.DLQ, error) {
		return worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{Replicas: bb.Stream.Replicas}, events.NewPublisher(bb.JS, bb.Stream))
	})
	if err != nil {
		return nil, err
	}
	seen, err := retryOpen(ctx, log, "seen store", func(ctx context.Context) (*reconcile.Seen, error) {
		return reconcile.OpenSeen(ctx, bb.JS, reconcile.SeenConfig{Replicas: bb.Stream.Replicas, KV: kvo, History: bb.Stream.HistoryName})
	})
	if err != nil {
		return nil, err
	}
	p := &pipeline{dlq: dlq, journal: journal, name: name, actors: actors, seen: seen, kv: kvo}
	var eng *engine.Engine
	p.watcher = rules.NewWatcher(o.Rules, set, rules.WithLogger(log),
		rules.OnReload(func(s *rules.Set, err error) { eng.RulesReloaded(s, err) }))
	eng, err = engine.New(engine.Config{Rules: p.watcher, Actors: actors, Loops: loops, Logger: log, Registry: reg})
	if err != nil {
		return nil, err
	}
	eng.RulesReloaded(set, nil)
	p.handler, p.observer = eng, eng.Observer()
	return p, nil
}

// fleetDeps lets the Zoho clients of every worker process share one access
// token and one rate limit per API through NATS KV. nil (preflight checks)
// gives plain in-process clients.
type fleetDeps struct {
	ctx      context.Context
	js       jetstream.JetStream
	replicas int
	// tokenRetry: the fleet's wait after a refused token refresh (0 = fleet default).
	tokenRetry time.Duration
	reg        prometheus.Registerer
	kv         events.KVOptions // every bucket's bounds, logger and retry metric
	waits      *prometheus.HistogramVec
}

// connRates are the client-side rate limits of one connection.
type connRates struct{ crm, books string }

// zohoActors builds the Zoho client of each connection: "default" from
// ZOHOOK_ZOHO_* (or, in -dev without credentials, the fake Zoho), and every
// connection of the configuration file.
func zohoActors(o WorkerOptions, log *slog.Logger, fd *fleetDeps) (engine.StaticActors, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	configs := map[string]zoho.Config{}
	rates := map[string]connRates{}
	if o.ConfigFile != "" {
		f, err := config.LoadFile(o.ConfigFile)
		if err != nil {
			return nil, err
		}
		for name, c := range f.Connections {
			zc, err := connectionConfig(name, c, getenv)
			if err != nil {
				return nil, err
			}
			configs[name] = zc
			rates[name] = connRates{crm: c.CRMRate, books: c.BooksRate}
		}
	}
	env, err := zoho.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if o.ZohoOverride != nil {
		env = *o.ZohoOverride
	}
	if _, inFile := configs["default"]; env.HasCredentials() || !inFile {
		configs["default"] = env
	}
	actors := engine.StaticActors{}
	for name, cfg := range configs {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("zoho connection %q: %w", name, err)
		}
		r := rates[name]
		if r.crm == "" {
			r.crm = o.CRMRate
		}
		if r.books == "" {
			r.books = o.BooksRate
		}
		opts, err := fd.clientOptions(name, cfg, r, o.CRMBurst, o.BooksBurst, log)
		if err != nil {
			return nil, fmt.Errorf("zoho connection %q: %w", name, err)
		}
		c, err := zoho.NewClient(cfg, append(opts, zoho.WithLogger(log))...)
		if err != nil {
			return nil, fmt.Errorf("zoho connection %q: %w", name, err)
		}
		log.Info("zoho connection", "name", name, "config", cfg, "crm_rate", r.crm, "books_rate", r.books)
		actors[name] = c
	}
	return actors, nil
}

// clientOptions: the shared token source and the shared limiters.
func (fd *fleetDeps) clientOptions(conn string, cfg zoho.Config, r connRates, crmBurst, booksBurst int, log *slog.Logger) ([]zoho.Option, error) {
	crmLimit, crmPer, err := fleet.ParseRate(r.crm)
	if err != nil {
		return nil, fmt.Errorf("crm rate: %w", err)
	}
	booksLimit, booksPer, err := fleet.ParseRate(r.books)
	if err != nil {
		return nil, fmt.Errorf("books rate: %w", err)
	}
	if fd == nil {
		return nil, nil // preflight: the values are valid, nothing to share yet
	}
	topts := []fleet.TokenOption{fleet.WithConnection(conn), fleet.WithTokenReplicas(fd.replicas), fleet.WithTokenLogger(log), fleet.WithTokenKV(fd.kv)}
	if fd.tokenRetry > 0 {
		topts = append(topts, fleet.WithFailureBackoff(fd.tokenRetry))
	}
	ts, err := fleet.NewTokenSource(fd.ctx, fd.js, zoho.NewOAuth(cfg, nil), topts...)
	if err != nil {
		return nil, err
	}
	key := events.Token(conn)
	crm, err := fleet.NewRateLimiter(fd.ctx, fd.js, "crm-"+key, crmLimit, crmPer, fleet.WithBurst(crmBurst), fleet.WithRateLogger(log), fleet.WithRateKV(fd.kv))
	if err != nil {
		return nil, err
	}
	// A token bucket lets burst + rate×period through in one period: that
	// sum, not the rate alone, must stay within Zoho's window limit.
	books, err := fleet.NewRateLimiter(fd.ctx, fd.js, "books-"+key, booksLimit, booksPer, fleet.WithBurst(booksBurst), fleet.WithRateLogger(log), fleet.WithRateKV(fd.kv))
	if err != nil {
		return nil, err
	}
	return []zoho.Option{zoho.WithTokenSource(ts),
		zoho.WithCRMLimiter(fd.timed("crm", crm)), zoho.WithBooksLimiter(fd.timed("books", books))}, nil
}

// timed records how long calls waited for the shared rate limit.
func (fd *fleetDeps) timed(api string, l zoho.Limiter) zoho.Limiter {
	if fd.reg == nil {
		return l
	}
	if fd.waits == nil {
		fd.waits = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zohook_rate_limit_wait_seconds", Help: "Time Zoho calls waited for the client-side (fleet-wide) rate limit, by API.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"api"})
		fd.reg.MustRegister(fd.waits)
	}
	obs := fd.waits.WithLabelValues(api)
	return limiterFunc(func(ctx context.Context) error {
		start := time.Now()
		err := l.Wait(ctx)
		obs.Observe(time.Since(start).Seconds())
		return err
	})
}

type limiterFunc func(ctx context.Context) error

func (f limiterFunc) Wait(ctx context.Context) error { return f(ctx) }

// connectionConfig turns a configuration-file connection into a client
// configuration, resolving its secrets.
func connectionConfig(name string, c config.Connection, getenv func(string) string) (zoho.Config, error) {
	secret, err := c.ClientSecret.Resolve(getenv)
	if err != nil {
		return zoho.Config{}, fmt.Errorf("connections.%s.client_secret: %w", name, err)
	}
	refresh, err := c.RefreshToken.Resolve(getenv)
	if err != nil {
		return zoho.Config{}, fmt.Errorf("connections.%s.refresh_token: %w", name, err)
	}
	dc := c.DC
	if dc == "" {
		dc = "us"
	}
	return zoho.Config{ClientID: c.ClientID, ClientSecret: secret, RefreshToken: refresh, Scopes: c.Scopes, DC: dc,
		AccountsURL: c.AccountsURL, APIURL: c.APIURL, BooksURL: c.BooksURL, BooksOrgID: c.BooksOrgID}, nil
}

// retryOpen creates a store, retrying for up to a minute: on a cluster that
// is electing leaders (a node just died, or a fresh R3 start) creation can
// time out for several seconds, and a worker should wait, not exit.
func retryOpen[T any](ctx context.Context, log *slog.Logger, what string, open func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(time.Minute)
	for wait := 250 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := open(actx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return v, err
		}
		log.Warn("creating a NATS store failed; retrying", "store", what, "err", err)
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
	}
}
