package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
)

// Prefix is where the console lives on the admin listener.
const Prefix = "/console/"

// RuleSource yields the rules in force; *rules.Watcher implements it.
type RuleSource interface {
	Current() *rules.Set
}

// RulesStatus is the rules file's state as the worker's watcher last saw it.
type RulesStatus struct {
	File       string    `json:"file"`
	Version    string    `json:"version"`
	Rules      int       `json:"rules"`
	Warnings   []string  `json:"warnings,omitempty"`
	LastReload time.Time `json:"last_reload,omitzero"`
	// LastError is the last reload's failure ("" when it succeeded): the
	// previous rules (Version) keep running.
	LastError string   `json:"last_error,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

// RateLimit is one client-side Zoho rate limit the workers share.
type RateLimit struct {
	Name       string        `json:"name"` // the limiter's key: crm-<connection>, books-<connection>
	API        string        `json:"api"`
	Connection string        `json:"connection"`
	Limit      int           `json:"limit"` // 0: unlimited
	Per        time.Duration `json:"per_ns"`
	Burst      int           `json:"burst"`
}

// Channel is a CRM notification channel zohook keeps (never its token).
type Channel struct {
	ChannelID  string    `json:"channel_id"`
	Connection string    `json:"connection"`
	Module     string    `json:"module"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	// Expiry at Zoho; zero when this process does not know it (the worker
	// holding the channels lease renews channels and knows their expiry).
	Expiry time.Time `json:"expiry,omitzero"`
}

// Config configures a Console.
type Config struct {
	JS       jetstream.JetStream   // required
	Stream   events.StreamConfig   // as stored in NATS
	Consumer events.ConsumerConfig // as stored in NATS
	Journal  *worker.Journal       // required
	DLQ      *worker.DLQ           // required
	// Rules explain events (why a rule matched or not); nil: no
	// explanations.
	Rules RuleSource
	// RulesStatus reports the last reload; optional.
	RulesStatus func() RulesStatus
	// Rates are the configured shared rate limits (their state is read
	// from RateBucket, default fleet.DefaultRateBucket).
	Rates      []RateLimit
	RateBucket string
	// Channels lists the notification channels; optional.
	Channels func(ctx context.Context) ([]Channel, error)
	// Password for HTTP Basic (any user name) or Bearer authentication.
	// Required unless Dev.
	Password string
	// Dev serves without authentication (receiver -dev, on loopback).
	Dev bool
	// Secrets are values that must never appear in an answer (tokens,
	// client secrets, the password): replaced by [REDACTED] wherever they
	// would, on top of the redaction of secret-named fields.
	Secrets []string
	// IndexEvents bounds the in-memory index (default DefaultIndexEvents).
	IndexEvents int
	Logger      *slog.Logger
}

// Console serves the web console and its JSON API.
type Console struct {
	cfg          Config
	log          *slog.Logger
	ix           *Index
	h            http.Handler
	outcomeStart chan time.Time
	scrub        *scrubber
	csrfKey      []byte
	// stopped closes when Run's context ends: live streams end with it,
	// so the admin listener's shutdown does not wait for open pages.
	stopped chan struct{}

	runOnce sync.Once
}

// New checks cfg and returns a console; Run feeds its index.
func New(cfg Config) (*Console, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.DLQ == nil {
		return nil, errors.New("console: JS, Journal and DLQ are required")
	}
	if !cfg.Dev && cfg.Password == "" {
		return nil, errors.New("console: a password is required outside -dev (ZOHOOK_CONSOLE_PASSWORD or -console-password-file)")
	}
	cfg.Stream = cfg.Stream.WithDefaults()
	cfg.Consumer = cfg.Consumer.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	secrets := cfg.Secrets
	if cfg.Password != "" {
		secrets = append(secrets, cfg.Password)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, ix: NewIndex(cfg.IndexEvents), outcomeStart: make(chan time.Time, 1),
		scrub: newScrubber(secrets), csrfKey: randomKey(), stopped: make(chan struct{})}
	c.h = c.routes()
	return c, nil
}

// Run feeds the index from NATS until ctx ends.
func (c *Console) Run(ctx context.Context) {
	c.runOnce.Do(func() {
		defer close(c.stopped)
		var wg sync.WaitGroup
		wg.Go(func() { c.feedHistory(ctx) })
		wg.Go(func() { c.feedOutcomes(ctx) })
		wg.Go(func() { c.trimLoop(ctx) })
		wg.Wait()
	})
}

// Index is the console's event index.
func (c *Console) Index() *Index { return c.ix }

// ServeHTTP serves everything under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.h.ServeHTTP(w, r) }
