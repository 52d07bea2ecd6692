package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/tracing"
)

// ReceiverOptions are the receiver's settings (flags / ZOHOOK_* env).
type ReceiverOptions struct {
	Addr           string
	Dev            bool
	CRMTokens      config.StringList
	Connection     string
	BodyLimit      int64
	PublishTimeout time.Duration
	ShutdownGrace  time.Duration
	LogFormat      string
	LogLevel       string
	NATS           NATSOptions
	Layout         LayoutOptions
	AdminAddr      string
	Worker         WorkerOptions // used by -dev's in-process worker
	ConfigFile     string
	Getenv         func(string) string // resolves secrets named in the config file; default os.Getenv
}

// Register adds the receiver's flags to fs.
func (o *ReceiverOptions) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Addr, "addr", ":8080", "public HTTP listen `address`: Zoho callbacks, /healthz and /readyz")
	fs.StringVar(&o.AdminAddr, "admin-addr", DefaultReceiverAdminAddr, "admin listen `address` for /metrics (loopback by default: bind another address only behind a firewall); empty for none")
	fs.BoolVar(&o.Dev, "dev", false, "all in one process: embedded NATS, the receiver, an in-process worker, and a fake Zoho when no Zoho credentials are set; text logs")
	fs.Var(&o.CRMTokens, "crm-notify-tokens", "comma-separated `tokens` accepted on /zoho/crm/notify (list old and new while rotating)")
	fs.StringVar(&o.Connection, "connection", "default", "Zoho connection `name` events are attributed to")
	fs.Int64Var(&o.BodyLimit, "body-limit", 1<<20, "largest callback body in `bytes`; larger ones get 413")
	fs.DurationVar(&o.PublishTimeout, "publish-timeout", 10*time.Second, "how long to retry storing an event before answering 503")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long in-flight requests and events may finish")
	fs.StringVar(&o.LogFormat, "log-format", "", "json or text (default json, text with -dev)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.ConfigFile, "config", "", "optional YAML `file` with Zoho connections and webhook sources (see README)")
	o.NATS.Register(fs, true)
	o.Layout.Register(fs)
	fs.StringVar(&o.Worker.Rules, "rules", "rules.yaml", "rules `file` for the in-process worker of -dev")
	o.Worker.registerTuning(fs) // -dev's in-process worker
}

// RunReceiver runs the receiver (and with -dev the whole system) until ctx
// ends, then shuts down gracefully.
func RunReceiver(ctx context.Context, o ReceiverOptions, stdout, stderr io.Writer) error {
	if o.LogFormat == "" {
		o.LogFormat = map[bool]string{true: "text", false: "json"}[o.Dev]
	}
	log, err := NewLogger(stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(ctx, tracing.Options{ServiceName: "zohook-receiver", Version: BuildVersion("receiver").Version, Logger: log})
	if err != nil {
		return err
	}
	defer stopTracing()
	// Flag combinations NATS would refuse fail now, naming the flags.
	o.Layout = o.Layout.withDefaults()
	if err := o.Layout.Validate(); err != nil {
		return &UsageError{Err: err}
	}
	o.Worker.ConfigFile = o.ConfigFile
	var dev *devEnv
	if o.Dev {
		if dev, err = startDev(ctx, &o, log); err != nil {
			return err
		}
		defer dev.Close()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	var file *config.File
	if o.ConfigFile != "" {
		if file, err = config.LoadFile(o.ConfigFile); err != nil {
			return err
		}
	}
	tokens, wfHooks, booksHooks, err := receiverSources(file, o.CRMTokens, o.Getenv)
	if err != nil {
		return err
	}
	if tokens.Len() == 0 {
		log.Warn("no CRM notification tokens configured (-crm-notify-tokens or the config file): every CRM notification will be refused with 401")
	}
	bb, err := OpenBackbone(ctx, o.NATS, "zohook-receiver", true, log)
	if err != nil {
		return err
	}
	defer bb.Close()
	// The receiver owns the NATS layout: it creates what is missing and
	// warns about settings that differ from its flags, never changing them.
	if err := ownLayout(ctx, bb, o.Layout, log); err != nil {
		return err
	}
	bodyLimit := fitBodyLimit(o.BodyLimit, bb.NC.MaxPayload(), log)

	reg := prometheus.NewRegistry()
	kvo, err := kvOptions(reg, log)
	if err != nil {
		return err
	}
	// Channel tokens the worker's channel manager stored in NATS KV, then the
	// statically configured ones.
	kvTokens, err := channels.NewTokenVerifier(ctx, bb.JS, channels.VerifierConfig{Replicas: bb.Stream.Replicas, Logger: log, KV: kvo})
	if err != nil {
		return err
	}
	defer kvTokens.Close()
	// No seen mark per notification: the history stream already records
	// every change received, and reconciliation reads it there
	// (reconcile.Seen).
	srv, err := receiver.New(receiver.Config{
		Publisher: events.NewPublisher(bb.JS, bb.Stream, events.WithPublishTimeout(o.PublishTimeout)),
		Ready:     bb.Ready,
		// Static tokens first: they need no bucket read on a miss.
		CRMTokens:        anyVerifier{tokens, kvTokens},
		CRMWorkflowHooks: wfHooks,
		BooksHooks:       booksHooks,
		Connection:       o.Connection,
		BodyLimit:        bodyLimit,
		Logger:           log,
		Registry:         reg,
	})
	if err != nil {
		return err
	}
	storage := newStorageWatch(bb.JS, bb.Stream, log)
	if err := reg.Register(storage); err != nil {
		return err
	}
	go storage.run(ctx)
	admin := newAdmin(reg, bb.Ready)
	stopAdmin, err := admin.start(o.AdminAddr, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	consoleURL, err := serveConsole(ctx, admin, bb, o.Worker, ConsoleOptions{}, o.Dev, reg, log, o.CRMTokens...)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.Addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	log.Info("receiver listening", "addr", l.Addr().String())

	var workerDone chan error // stays nil (never ready) without an in-process worker
	wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	if o.Dev {
		workerDone = make(chan error, 1)
		go func() { workerDone <- runWorkerOn(wctx, bb, o.Worker, log, reg) }()
		printDevBanner(stdout, l.Addr().String(), bb, dev, o.CRMTokens[0])
		printConsoleBanner(stdout, consoleURL)
	}

	var workerErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case workerErr = <-workerDone:
		// In -dev the worker is part of the system: if it cannot run, stop
		// and say why rather than accept events nobody handles.
		if workerErr == nil {
			workerErr = errors.New("worker stopped")
		}
	}
	log.Info("shutting down: no new requests; finishing in-flight ones")
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("shutdown", "err", err)
	}
	stopWorker()
	if workerDone != nil && workerErr == nil {
		if err := <-workerDone; err != nil {
			log.Warn("in-process worker", "err", err)
		}
	}
	log.Info("receiver stopped")
	if workerErr != nil {
		return fmt.Errorf("worker: %w", workerErr)
	}
	return nil
}

// anyVerifier accepts a token any of its verifiers accepts.
type anyVerifier []receiver.ChannelTokenVerifier

func (a anyVerifier) VerifyChannelToken(ctx context.Context, channelID, token string) (string, string, bool) {
	for _, v := range a {
		if conn, module, ok := v.VerifyChannelToken(ctx, channelID, token); ok {
			return conn, module, true
		}
	}
	return "", "", false
}

// eventOverhead is room for the envelope's own fields and headers.
const eventOverhead = 16 << 10

// fitBodyLimit lowers the body limit to what the NATS server accepts in one
// event: a hook's event holds its body twice (values and raw body). Without
// it, a callback under -body-limit but over max_payload (1 MiB on a default
// nats-server) would get 503s forever; lowered, it gets a 413 and Zoho
// stops retrying something that can never be stored.
func fitBodyLimit(limit, maxPayload int64, log *slog.Logger) int64 {
	if maxPayload <= 0 {
		return limit
	}
	fit := max((maxPayload-eventOverhead)/2, 1)
	if limit <= 0 || limit > fit {
		log.Warn("-body-limit lowered to what the NATS server accepts in one event (raise max_payload to accept larger callbacks)",
			"body_limit", limit, "effective", fit, "nats_max_payload", maxPayload)
		return fit
	}
	return limit
}
