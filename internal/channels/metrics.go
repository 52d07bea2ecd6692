package channels

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are shared by the managers of every connection of a process.
type Metrics struct {
	expiry        *prometheus.GaugeVec
	renewFailures *prometheus.CounterVec
	lastSync      *prometheus.GaugeVec
	changes       *prometheus.CounterVec
}

// NewMetrics registers the channel metrics on reg (nil = not exported).
// Create it once per process and pass it to every Manager.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zohook_channel_expiry_timestamp_seconds",
			Help: "When each CRM notification channel expires at Zoho (Unix seconds)."}, []string{"connection", "channel", "module"}),
		renewFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zohook_channel_renew_failures_total",
			Help: "Channel create/renew/repair calls that failed."}, []string{"connection", "module"}),
		lastSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zohook_channel_last_sync_timestamp_seconds",
			Help: "When the channels of a connection were last synced without error (Unix seconds)."}, []string{"connection"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zohook_channel_changes_total",
			Help: "Channel changes made by sync, by action (created, resubscribed, updated, renewed, disabled)."}, []string{"connection", "action"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.expiry, m.renewFailures, m.lastSync, m.changes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("channels: metrics: %w", err)
		}
	}
	return m, nil
}
