package app

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
)

// kvOptions returns the settings every NATS KV bucket of this process uses:
// its logger, and zohook_nats_kv_retried_calls_total, which counts the calls
// NATS needed retries for (a node down, a leader election). Failed calls
// there mean work waited on NATS or failed because of it. A receiver that
// runs a worker in-process shares one registry, hence the reuse.
func kvOptions(reg prometheus.Registerer, log *slog.Logger) (events.KVOptions, error) {
	o := events.KVOptions{Logger: log}
	if reg == nil {
		return o, nil
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zohook_nats_kv_retried_calls_total",
		Help: "NATS KV calls that needed more than one attempt, by bucket, operation and outcome (ok: a retry succeeded; failed: gave up).",
	}, []string{"bucket", "op", "outcome"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return o, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return o, err
		}
		c = existing
	}
	o.Retried = func(bucket, op string, _ int, err error) {
		outcome := "ok"
		if err != nil {
			outcome = "failed"
		}
		c.WithLabelValues(bucket, op, outcome).Inc()
	}
	return o, nil
}
