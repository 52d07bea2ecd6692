package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/reconcile"
	"github.com/zohook/zohook/internal/zoho"
)

// BackgroundOptions configure the worker's singleton jobs: keeping CRM
// notification channels alive and reconciling missed changes. Each runs in
// one worker process at a time (a lease in NATS KV).
type BackgroundOptions struct {
	NotifyURL          string
	ChannelInterval    time.Duration
	ReconcileModules   config.StringList
	ReconcileInterval  time.Duration
	ReconcileWHFailure bool
	ReconcileNoDeletes bool
}

func (o *BackgroundOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.NotifyURL, "notify-url", "", "public `URL` of the receiver's /zoho/crm/notify; when set, the worker keeps the CRM notification channels the rules need subscribed and renewed")
	fs.DurationVar(&o.ChannelInterval, "channel-interval", time.Hour, "how often channels are checked and renewed")
	fs.Var(&o.ReconcileModules, "reconcile-modules", "comma-separated CRM `modules` to reconcile (find changes no notification delivered); empty = off")
	fs.DurationVar(&o.ReconcileInterval, "reconcile-interval", reconcile.DefaultInterval, "how often reconciliation runs")
	fs.BoolVar(&o.ReconcileWHFailure, "reconcile-webhook-failures", false, "also replay Zoho's workflow-webhook failure log")
	fs.BoolVar(&o.ReconcileNoDeletes, "reconcile-skip-deletions", false, "do not reconcile deleted records (for a Zoho user that may not read the recycle bin)")
}

// startBackground starts the channel managers and reconciliation jobs of
// every connection; they stop with ctx.
func startBackground(ctx context.Context, bb *Backbone, o WorkerOptions, p *pipeline, log *slog.Logger, reg prometheus.Registerer) error {
	bg := o.Background
	if bg.NotifyURL == "" && len(bg.ReconcileModules) == 0 && !bg.ReconcileWHFailure {
		return nil
	}
	var chMetrics *channels.Metrics
	var rcMetrics *reconcile.Metrics
	var err error
	for name, a := range p.actors {
		client, ok := a.(*zoho.Client)
		if !ok {
			continue
		}
		conn := name
		if bg.NotifyURL != "" {
			if chMetrics == nil {
				if chMetrics, err = channels.NewMetrics(reg); err != nil {
					return err
				}
			}
			m, err := channels.NewManager(ctx, bb.JS, client.CRM, channels.Config{Connection: conn, NotifyURL: bg.NotifyURL,
				Interval: bg.ChannelInterval, Replicas: bb.Stream.Replicas, Metrics: chMetrics, Logger: log, KV: p.kv})
			if err != nil {
				return fmt.Errorf("channels %s: %w", conn, err)
			}
			lease, err := fleet.NewLease(bb.JS, "channels-"+events.Token(conn), fleet.DefaultHolderID(), 30*time.Second,
				fleet.WithLeaseLogger(log), fleet.WithLeaseKV(p.kv))
			if err != nil {
				return err
			}
			go runSingleton(ctx, log, "channels "+conn, func(ctx context.Context) error {
				return m.Run(ctx, lease, func() []string { return channels.NeededEvents(p.watcher.Current().Rules(), conn, log) })
			})
		}
		if len(bg.ReconcileModules) > 0 || bg.ReconcileWHFailure {
			if rcMetrics == nil {
				if rcMetrics, err = reconcile.NewMetrics(reg); err != nil {
					return err
				}
			}
			job, err := reconcile.NewJob(ctx, bb.JS, client.CRM, events.NewPublisher(bb.JS, bb.Stream), p.seen, reconcile.Config{
				Connection: conn, Modules: bg.ReconcileModules, Interval: bg.ReconcileInterval,
				WebhookFailures: bg.ReconcileWHFailure, SkipDeletions: bg.ReconcileNoDeletes, Metrics: rcMetrics, Logger: log, KV: p.kv})
			if err != nil {
				return fmt.Errorf("reconcile %s: %w", conn, err)
			}
			lease, err := fleet.NewLease(bb.JS, "reconcile-"+events.Token(conn), fleet.DefaultHolderID(), 30*time.Second,
				fleet.WithLeaseLogger(log), fleet.WithLeaseKV(p.kv))
			if err != nil {
				return err
			}
			go runSingleton(ctx, log, "reconcile "+conn, func(ctx context.Context) error { return job.Run(ctx, lease) })
		}
	}
	return nil
}

// runSingleton keeps a leased job running until ctx ends; a lost lease or an
// error is logged and the job competes for the lease again.
func runSingleton(ctx context.Context, log *slog.Logger, name string, run func(ctx context.Context) error) {
	for ctx.Err() == nil {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, fleet.ErrLeaseLost) {
			log.Warn("background job stopped; restarting", "job", name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}
