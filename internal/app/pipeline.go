package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// pipeline is everything the worker needs besides the runner.
type pipeline struct {
	handler  worker.Handler
	observer worker.Observer
	dlq      *worker.DLQ
	watcher  *rules.Watcher
}

// buildPipeline loads the rules (refusing to start on a broken file),
// connects the Zoho client(s), and opens the journal, loop guard and DLQ.
func buildPipeline(ctx context.Context, bb *Backbone, o WorkerOptions, log *slog.Logger, reg *prometheus.Registry) (*pipeline, error) {
	set, err := rules.Load(o.Rules)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	actors, err := zohoActors(o, log)
	if err != nil {
		return nil, err
	}
	journal, err := worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{Replicas: bb.Stream.Replicas, TTL: bb.Stream.MaxAge})
	if err != nil {
		return nil, err
	}
	loops, err := engine.OpenLoopGuard(ctx, bb.JS, engine.LoopGuardConfig{Replicas: bb.Stream.Replicas})
	if err != nil {
		return nil, err
	}
	dlq, err := worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{Replicas: bb.Stream.Replicas}, events.NewPublisher(bb.JS, bb.Stream))
	if err != nil {
		return nil, err
	}
	p := &pipeline{dlq: dlq}
	var eng *engine.Engine
	p.watcher = rules.NewWatcher(o.Rules, set, rules.WithLogger(log),
		rules.OnReload(func(s *rules.Set, err error) { eng.RulesReloaded(s, err) }))
	eng, err = engine.New(engine.Config{Rules: p.watcher, Actors: actors, Journal: journal, Loops: loops, Logger: log, Registry: reg})
	if err != nil {
		return nil, err
	}
	eng.RulesReloaded(set, nil)
	p.handler, p.observer = eng, eng.Observer()
	return p, nil
}

// zohoActors builds the Zoho client of each connection: "default" from
// ZOHOOK_ZOHO_* (or, in -dev without credentials, the fake Zoho), and every
// connection of the configuration file.
func zohoActors(o WorkerOptions, log *slog.Logger) (engine.StaticActors, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	configs := map[string]zoho.Config{}
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
		c, err := zoho.NewClient(cfg, zoho.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("zoho connection %q: %w", name, err)
		}
		log.Info("zoho connection", "name", name, "config", cfg)
		actors[name] = c
	}
	return actors, nil
}

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
