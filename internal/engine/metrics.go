package engine

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// metrics are the worker's Prometheus collectors. A nil *metrics records
// nothing, so tests and tools need no registry.
type metrics struct {
	events      *prometheus.CounterVec
	eventTime   prometheus.Histogram
	matches     *prometheus.CounterVec
	steps       *prometheus.CounterVec
	zohoCalls   *prometheus.CounterVec
	zohoLatency *prometheus.HistogramVec
	reloads     *prometheus.CounterVec
	skipped     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_worker_events_total", Help: "Deliveries by outcome: acked, retried, dead_lettered, invalid.",
		}, []string{"outcome"}),
		eventTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "zohook_worker_event_duration_seconds", Help: "Time to handle one delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_rule_matches_total", Help: "Rules run, by rule.",
		}, []string{"rule"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_steps_total", Help: "Steps by action and outcome (ok, failed, journaled, recovered).",
		}, []string{"action", "outcome"}),
		zohoCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_zoho_calls_total", Help: "HTTP requests Zoho answered (retries included), by action and the HTTP status Zoho sent (0: no answer).",
		}, []string{"action", "status"}),
		zohoLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zohook_zoho_call_duration_seconds", Help: "Zoho action latency including client retries and rate-limit waits.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 16),
		}, []string{"action"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_rules_reloads_total", Help: "rules.yaml reloads by result (ok, invalid).",
		}, []string{"result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_events_skipped_total", Help: "Events not acted on, by reason (no_rule, self_caused).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.events, m.eventTime, m.matches, m.steps, m.zohoCalls, m.zohoLatency, m.reloads, m.skipped)
	return m
}

// Outcome implements worker.Observer.
func (m *metrics) Outcome(_ *worker.Message, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(outcome).Inc()
	if d > 0 {
		m.eventTime.Observe(d.Seconds())
	}
}

var _ worker.Observer = (*metrics)(nil)

func (m *metrics) step(action, outcome string) {
	if m != nil {
		m.steps.WithLabelValues(action, outcome).Inc()
	}
}

func (m *metrics) match(rule string) {
	if m != nil {
		m.matches.WithLabelValues(rule).Inc()
	}
}

func (m *metrics) skip(reason string) {
	if m != nil {
		m.skipped.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) reload(ok bool) {
	if m != nil {
		m.reloads.WithLabelValues(map[bool]string{true: "ok", false: "invalid"}[ok]).Inc()
	}
}

func (m *metrics) zohoCall(action string, err error, d time.Duration, ex []zoho.Exchange) {
	if m == nil {
		return
	}
	m.zohoLatency.WithLabelValues(action).Observe(d.Seconds())
	if len(ex) > 0 {
		// The real status of every HTTP answer (a 201 is 201), retries included.
		for _, e := range ex {
			if e.API != zoho.APIAccounts {
				m.zohoCalls.WithLabelValues(action, strconv.Itoa(e.Status)).Inc()
			}
		}
		return
	}
	status := 200
	var ze *zoho.Error
	switch {
	case err == nil:
	case errors.As(err, &ze):
		status = ze.HTTPStatus
	default:
		status = 0
	}
	m.zohoCalls.WithLabelValues(action, strconv.Itoa(status)).Inc()
}
