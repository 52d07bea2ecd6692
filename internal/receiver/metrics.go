package receiver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	publish   prometheus.Histogram
	published *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_receiver_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zohook_receiver_request_duration_seconds",
			Help:    "HTTP request latency by route, including the JetStream publish.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "zohook_receiver_publish_duration_seconds",
			Help:    "Time from publish to JetStream's acknowledgement of every event of a request.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zohook_events_published_total",
			Help: "Events stored in JetStream by source; result=duplicate when the duplicate window absorbed it.",
		}, []string{"source", "result"}),
	}
	reg.MustRegister(m.requests, m.duration, m.publish, m.published,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
