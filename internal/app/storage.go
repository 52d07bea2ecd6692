package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
)

// storageWatch reports how full the work and history streams are: the
// work stream refusing events (503 to Zoho) is something to see coming.
// It exports gauges and logs a warning when the work stream passes
// storageWarnAt of its max_bytes.
type storageWatch struct {
	js  jetstream.JetStream
	s   events.StreamConfig
	log *slog.Logger

	mu       sync.Mutex
	stats    map[string][2]float64 // stream → bytes, max bytes
	warned   bool
	bytes    *prometheus.Desc
	maxBytes *prometheus.Desc
	msgs     *prometheus.Desc
	counts   map[string]float64
}

// storageWarnAt: the work stream's fill ratio that earns a warning.
const storageWarnAt = 0.8

func newStorageWatch(js jetstream.JetStream, s events.StreamConfig, log *slog.Logger) *storageWatch {
	return &storageWatch{js: js, s: s, log: log, stats: map[string][2]float64{}, counts: map[string]float64{},
		bytes:    prometheus.NewDesc("zohook_stream_bytes", "Bytes stored in a zohook stream (work: events not yet handled; history: kept for replay).", []string{"stream"}, nil),
		maxBytes: prometheus.NewDesc("zohook_stream_max_bytes", "The stream's size limit; the work stream refuses new events (503 to Zoho) when bytes reach it.", []string{"stream"}, nil),
		msgs:     prometheus.NewDesc("zohook_stream_messages", "Messages stored in a zohook stream.", []string{"stream"}, nil),
	}
}

func (w *storageWatch) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.bytes
	ch <- w.maxBytes
	ch <- w.msgs
}

func (w *storageWatch) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, st := range w.stats {
		ch <- prometheus.MustNewConstMetric(w.bytes, prometheus.GaugeValue, st[0], name)
		ch <- prometheus.MustNewConstMetric(w.maxBytes, prometheus.GaugeValue, st[1], name)
		ch <- prometheus.MustNewConstMetric(w.msgs, prometheus.GaugeValue, w.counts[name], name)
	}
}

// run refreshes the figures every 10 s until ctx ends.
func (w *storageWatch) run(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		w.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *storageWatch) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, name := range []string{w.s.Name, w.s.HistoryName} {
		st, err := w.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info := st.CachedInfo()
		w.mu.Lock()
		w.stats[name] = [2]float64{float64(info.State.Bytes), float64(info.Config.MaxBytes)}
		w.counts[name] = float64(info.State.Msgs)
		if name == w.s.Name && info.Config.MaxBytes > 0 {
			ratio := float64(info.State.Bytes) / float64(info.Config.MaxBytes)
			switch {
			case ratio >= storageWarnAt && !w.warned:
				w.warned = true
				w.log.Warn("the work stream is filling up: events wait for workers; at its limit the receiver answers 503 and Zoho retries later",
					"stream", name, "bytes", info.State.Bytes, "max_bytes", info.Config.MaxBytes, "events", info.State.Msgs)
			case ratio < storageWarnAt*0.9:
				w.warned = false
			}
		}
		w.mu.Unlock()
	}
}
