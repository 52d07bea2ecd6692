package app

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
)

// backlogCollector exports the partitions' backlog and the dead-letter
// count, read from JetStream at scrape time. Readings are cached briefly:
// each one is a request per partition, and several scrapers (or a fast
// scrape interval) should not multiply them.
type backlogCollector struct {
	js    jetstream.JetStream
	scfg  events.StreamConfig
	ccfg  events.ConsumerConfig
	dlq   *worker.DLQ
	log   *slog.Logger
	cache time.Duration

	mu      sync.Mutex
	at      time.Time
	backlog []worker.PartitionBacklog
	dead    uint64
	deadOK  bool

	pending, ackPending, oldest, dlqEvents *prometheus.Desc
}

var _ prometheus.Collector = (*backlogCollector)(nil)

func newBacklogCollector(js jetstream.JetStream, scfg events.StreamConfig, ccfg events.ConsumerConfig, dlq *worker.DLQ, log *slog.Logger) *backlogCollector {
	return &backlogCollector{js: js, scfg: scfg, ccfg: ccfg, dlq: dlq, log: log, cache: 5 * time.Second,
		pending: prometheus.NewDesc("zohook_events_pending", "Events stored and not yet delivered to a worker, by partition.",
			[]string{"partition"}, nil),
		ackPending: prometheus.NewDesc("zohook_events_ack_pending", "Events delivered and not yet acknowledged (running, waiting for a retry, or held behind an earlier event of their record), by partition.",
			[]string{"partition"}, nil),
		oldest: prometheus.NewDesc("zohook_events_oldest_waiting_seconds", "Age of the oldest event not yet done (pending or ack pending), by partition; 0 when there is none: how late the partition runs.",
			[]string{"partition"}, nil),
		dlqEvents: prometheus.NewDesc("zohook_dead_letters", "Dead letters waiting in ZOHOOK_DLQ.", nil, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.oldest
	ch <- c.dlqEvents
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= c.cache {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if bl, err := worker.Backlog(ctx, c.js, c.scfg, c.ccfg); err == nil {
			c.backlog = bl
		} else {
			// Leave the series out rather than report stale numbers as fresh.
			c.log.Debug("backlog metrics", "err", err)
			c.backlog = nil
		}
		c.dead, c.deadOK = 0, false
		if c.dlq != nil {
			if n, err := c.dlq.Count(ctx); err == nil {
				c.dead, c.deadOK = n, true
			}
		}
		c.at = time.Now()
	}
	for _, b := range c.backlog {
		if b.Missing {
			continue
		}
		p := strconv.Itoa(b.Partition)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(b.Pending), p)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(b.AckPending), p)
		age := 0.0
		if !b.OldestWaiting.IsZero() {
			age = time.Since(b.OldestWaiting).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, p)
	}
	if c.deadOK {
		ch <- prometheus.MustNewConstMetric(c.dlqEvents, prometheus.GaugeValue, float64(c.dead))
	}
}
