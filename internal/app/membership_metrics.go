package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/worker"
)

// membershipCollector exports who serves the partitions, read from the
// members bucket (worker.MembersSpec) at scrape time: the live worker
// processes, the partitions each one says it consumes, and the partitions
// no live worker holds. Every worker reads the same bucket, so every
// worker exports the same figures: dashboards and alerts take max or min
// over them.
//
// Register it on a worker's registry:
//
//	reg.MustRegister(newMembershipCollector(bb.JS, bb.Stream.Partitions, log))
type membershipCollector struct {
	js         jetstream.JetStream
	bucket     string
	partitions int
	log        *slog.Logger
	cache      time.Duration

	mu   sync.Mutex
	at   time.Time
	read *membershipReading // nil: the last read failed (series left out)

	live, partitionsDesc, held, unserved *prometheus.Desc
}

var _ prometheus.Collector = (*membershipCollector)(nil)

// membershipReading is one read of the members bucket.
type membershipReading struct {
	held     map[string]int // member name → partitions it holds
	unserved int
}

// memberHeartbeat is the part of a member's heartbeat (worker.Membership's
// value in the members bucket) this collector reads.
type memberHeartbeat struct {
	Name  string `json:"name"`
	Holds []int  `json:"holds"`
}

func newMembershipCollector(js jetstream.JetStream, partitions int, log *slog.Logger) *membershipCollector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &membershipCollector{js: js, bucket: worker.DefaultMembersBucket, partitions: partitions, log: log, cache: 5 * time.Second,
		live: prometheus.NewDesc("zohook_workers_live",
			"Worker processes alive in the members bucket (a heartbeat within its TTL).", nil, nil),
		partitionsDesc: prometheus.NewDesc("zohook_partitions",
			"Partitions of the work stream.", nil, nil),
		held: prometheus.NewDesc("zohook_partitions_held",
			"Partitions a live worker says it consumes, by worker (its -name, default host-pid).", []string{"member"}, nil),
		unserved: prometheus.NewDesc("zohook_partitions_unserved",
			"Partitions of the work stream that no live worker holds: their events wait until one does.", nil, nil),
	}
}

func (c *membershipCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.live
	ch <- c.partitionsDesc
	ch <- c.held
	ch <- c.unserved
}

func (c *membershipCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= c.cache {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r, err := c.readMembers(ctx)
		if err != nil {
			// Leave the series out rather than report stale numbers as fresh.
			c.log.Debug("membership metrics", "err", err)
		}
		c.read, c.at = r, time.Now()
	}
	ch <- prometheus.MustNewConstMetric(c.partitionsDesc, prometheus.GaugeValue, float64(c.partitions))
	if c.read == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(len(c.read.held)))
	for name, n := range c.read.held {
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(c.unserved, prometheus.GaugeValue, float64(c.read.unserved))
}

// readMembers reads every live member's heartbeat.
func (c *membershipCollector) readMembers(ctx context.Context) (*membershipReading, error) {
	kv, err := c.js.KeyValue(ctx, c.bucket)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	r := &membershipReading{held: map[string]int{}}
	served := make(map[int]bool, c.partitions)
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // left or expired since the listing
		}
		if err != nil {
			_ = keys.Stop()
			return nil, err
		}
		var hb memberHeartbeat
		if json.Unmarshal(e.Value(), &hb) != nil || hb.Name == "" {
			continue
		}
		n := 0
		for _, p := range hb.Holds {
			if p >= 0 && p < c.partitions {
				served[p] = true
				n++
			}
		}
		r.held[hb.Name] += n
	}
	r.unserved = c.partitions - len(served)
	return r, nil
}
