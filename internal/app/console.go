package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/console"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// ConsolePasswordEnv holds the console password (HTTP Basic with any user
// name, or a Bearer token). -console-password-file reads it from a file
// instead; there is deliberately no flag with the password itself (it
// would show in `ps`).
const ConsolePasswordEnv = "ZOHOOK_CONSOLE_PASSWORD"

// ConsoleOptions are the worker's console flags. `receiver -dev` always
// serves the console (without a password, on its loopback admin listener).
type ConsoleOptions struct {
	Enabled      bool
	PasswordFile string
	IndexEvents  int
}

// Register adds the console flags to fs.
func (o *ConsoleOptions) Register(fs *flag.FlagSet) {
	fs.BoolVar(&o.Enabled, "console", false, "serve the web console (events, dead letters and replay, health) and its JSON API at /console/ on -admin-addr; needs "+ConsolePasswordEnv+" or -console-password-file")
	fs.StringVar(&o.PasswordFile, "console-password-file", "", "`file` holding the console password (else "+ConsolePasswordEnv+")")
	fs.IntVar(&o.IndexEvents, "console-index-events", console.DefaultIndexEvents, "most events the console's in-memory index holds (about 130 bytes each); older ones stay in the history and record lookups still find them")
}

// consolePassword reads the password: the file wins over the environment.
func consolePassword(co ConsoleOptions, getenv func(string) string) (string, error) {
	if co.PasswordFile != "" {
		b, err := os.ReadFile(co.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("-console-password-file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(pw) == "" {
			return "", fmt.Errorf("-console-password-file %s is empty", co.PasswordFile)
		}
		return pw, nil
	}
	return getenv(ConsolePasswordEnv), nil
}

// serveConsole mounts the console on the admin listener when the worker
// asks for it (co.Enabled) or in -dev (dev), and returns its URL ("" when
// it is not served). It must be called after admin.start. The console
// reads everything from NATS (the index follows the history and outcome
// streams); the rules it explains events with are the worker's file (o.Rules),
// watched as the worker watches it. secrets are values that must never
// appear in its answers besides those it finds itself (the Zoho
// credentials and the configuration file's secrets).
func serveConsole(ctx context.Context, admin *adminServer, bb *Backbone, o WorkerOptions, co ConsoleOptions, dev bool, reg prometheus.Gatherer, log *slog.Logger, secrets ...string) (string, error) {
	if !co.Enabled && !dev {
		return "", nil
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	password, err := consolePassword(co, getenv)
	if err != nil {
		return "", err
	}
	if admin == nil || admin.addr == "" {
		if dev {
			log.Warn("console not served: it needs the admin listener (-admin-addr)")
			return "", nil
		}
		return "", &UsageError{Err: errors.New("-console needs an admin listener: set -admin-addr")}
	}
	if password == "" {
		if !dev {
			return "", &UsageError{Err: fmt.Errorf("-console needs a password: set %s or -console-password-file", ConsolePasswordEnv)}
		}
		if !loopback(admin.addr) {
			log.Warn("console not served: without "+ConsolePasswordEnv+" it is only served on a loopback admin listener", "admin_addr", admin.addr)
			return "", nil
		}
	} else if len(password) < 12 {
		log.Warn("the console password is short; use at least 12 random characters")
	}
	c, err := newConsole(ctx, bb, o, co, dev, password, reg, log, secrets)
	if err != nil {
		return "", err
	}
	go c.Run(ctx)
	admin.mux.Handle(console.Prefix, c)
	url := "http://" + admin.addr + console.Prefix
	log.Info("web console", "url", url, "password", password != "")
	return url, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// newConsole builds the console of a process connected to bb.
func newConsole(ctx context.Context, bb *Backbone, o WorkerOptions, co ConsoleOptions, dev bool, password string, reg prometheus.Gatherer, log *slog.Logger, secrets []string) (*console.Console, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	journal, err := worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{Replicas: bb.Stream.Replicas, TTL: worker.JournalTTL(bb.Stream.HistoryMaxAge), Holder: "console"})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	dlq, err := worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{Replicas: bb.Stream.Replicas}, events.NewPublisher(bb.JS, bb.Stream))
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var file *config.File
	if o.ConfigFile != "" {
		if file, err = config.LoadFile(o.ConfigFile); err != nil {
			return nil, err
		}
	}
	cfg := console.Config{
		JS: bb.JS, Stream: bb.Stream, Consumer: bb.Consumer, Journal: journal, DLQ: dlq,
		Rates: consoleRates(o, file), Channels: consoleChannels(bb.JS, reg),
		Password: password, Dev: dev, IndexEvents: co.IndexEvents, Logger: log.With("component", "console"),
		Secrets: append(consoleSecrets(o, file, getenv), secrets...),
	}
	if o.Rules != "" {
		if set, err := rules.Load(o.Rules); err == nil {
			st := &rulesState{}
			st.loaded(set, nil)
			w := rules.NewWatcher(o.Rules, set, rules.OnReload(st.loaded))
			go func() {
				if err := w.Run(ctx); err != nil && ctx.Err() == nil {
					log.Warn("console: rules watcher stopped", "err", err)
				}
			}()
			cfg.Rules, cfg.RulesStatus = w, func() console.RulesStatus { return st.status(w.Current()) }
		} else {
			log.Warn("console: rules not loaded; events are shown without rule explanations", "file", o.Rules, "err", err)
		}
	}
	return console.New(cfg)
}

// rulesState remembers the last reload the console's watcher saw (the
// worker's watcher watches the same file and sees the same).
type rulesState struct {
	mu       sync.Mutex
	at       time.Time
	err      error
	problems []string
}

func (s *rulesState) loaded(_ *rules.Set, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at, s.err, s.problems = time.Now().UTC(), err, nil
	var le *rules.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			s.problems = append(s.problems, p.String())
		}
	}
}

func (s *rulesState) status(set *rules.Set) console.RulesStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := console.RulesStatus{LastReload: s.at, Problems: s.problems}
	if s.err != nil {
		st.LastError = s.err.Error()
	}
	if set != nil {
		st.File, st.Version, st.Rules = set.File(), set.Version(), len(set.Rules())
		for _, w := range set.Warnings() {
			st.Warnings = append(st.Warnings, w.String())
		}
	}
	return st
}

// consoleRates lists the shared rate limits the worker's flags and the
// configuration file set, per connection (as zohoActors builds them).
func consoleRates(o WorkerOptions, file *config.File) []console.RateLimit {
	conns := map[string]connRates{"default": {}}
	if file != nil {
		for name, c := range file.Connections {
			conns[name] = connRates{crm: c.CRMRate, books: c.BooksRate}
		}
	}
	var out []console.RateLimit
	for name, r := range conns {
		for _, api := range []struct {
			name, rate, fallback string
			burst                int
		}{{"crm", r.crm, o.CRMRate, o.CRMBurst}, {"books", r.books, o.BooksRate, o.BooksBurst}} {
			spec := api.rate
			if spec == "" {
				spec = api.fallback
			}
			limit, per, err := fleet.ParseRate(spec)
			if err != nil || limit <= 0 {
				continue // unlimited: no shared state
			}
			out = append(out, console.RateLimit{Name: api.name + "-" + events.Token(name), API: api.name, Connection: name, Limit: limit, Per: per, Burst: api.burst})
		}
	}
	return out
}

// consoleChannels reads the channels from their bucket (never the token)
// and their expiry from this process's metrics when it renews them.
func consoleChannels(js jetstream.JetStream, reg prometheus.Gatherer) func(ctx context.Context) ([]console.Channel, error) {
	return func(ctx context.Context) ([]console.Channel, error) {
		kv, err := js.KeyValue(ctx, channels.DefaultBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		lister, err := kv.ListKeys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer func() { _ = lister.Stop() }()
		expiry := channelExpiry(reg)
		var out []console.Channel
		for k := range lister.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue
			}
			// Decoded without the token field: it cannot reach a page.
			var v struct {
				ChannelID  string    `json:"channel_id"`
				Connection string    `json:"connection"`
				Module     string    `json:"module"`
				CreatedAt  time.Time `json:"created_at"`
			}
			if json.Unmarshal(e.Value(), &v) != nil || v.ChannelID == "" {
				continue
			}
			conn := v.Connection
			if conn == "" {
				conn = "default"
			}
			out = append(out, console.Channel{ChannelID: v.ChannelID, Connection: conn, Module: v.Module, CreatedAt: v.CreatedAt, Expiry: expiry[v.ChannelID]})
		}
		return out, nil
	}
}

// channelExpiry reads zohook_channel_expiry_timestamp_seconds from reg.
func channelExpiry(reg prometheus.Gatherer) map[string]time.Time {
	out := map[string]time.Time{}
	if reg == nil {
		return out
	}
	mfs, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "zohook_channel_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel" && m.GetGauge().GetValue() > 0 {
					out[l.GetValue()] = time.Unix(int64(m.GetGauge().GetValue()), 0).UTC()
				}
			}
		}
	}
	return out
}

// consoleSecrets are the process's secrets the console must never show:
// the Zoho credentials (environment, -dev's fake, configuration file) and
// the file's notification tokens and hook secrets.
func consoleSecrets(o WorkerOptions, file *config.File, getenv func(string) string) []string {
	var out []string
	for _, k := range []string{zoho.EnvClientSecret, zoho.EnvRefreshToken, ConsolePasswordEnv} {
		if v := getenv(k); v != "" {
			out = append(out, v)
		}
	}
	for _, t := range strings.Split(getenv("ZOHOOK_CRM_NOTIFY_TOKENS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	if z := o.ZohoOverride; z != nil {
		out = append(out, z.ClientSecret, z.RefreshToken)
	}
	if file == nil {
		return out
	}
	add := func(s config.Secret) {
		if v, err := s.Resolve(getenv); err == nil && v != "" {
			out = append(out, v)
		}
	}
	for _, c := range file.Connections {
		add(c.ClientSecret)
		add(c.RefreshToken)
		for _, t := range c.CRMNotifyTokens {
			add(t)
		}
	}
	for _, hooks := range []map[string]config.Hook{file.Hooks.CRMWorkflow, file.Hooks.Books} {
		for _, h := range hooks {
			add(h.Secret)
		}
	}
	return out
}

// printConsoleBanner adds the console to -dev's banner.
func printConsoleBanner(w io.Writer, url string) {
	if url == "" {
		return
	}
	fmt.Fprintf(w, "  console    %s   (events live, each event's rules, steps and Zoho calls, dead letters and replay, health)\n\n", url)
}
