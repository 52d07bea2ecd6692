package app

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The receiver with an in-process worker opens KV buckets for both on one
// registry: the second kvOptions must count into the same metric, not fail.
func TestKVRetryMetricCountsOutcomesOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := kvOptions(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kvOptions(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("second kvOptions on the same registry: %v", err)
	}
	a.Retried("zohook_journal", "put", 3, nil)
	b.Retried("zohook_journal", "put", 2, nil)
	b.Retried("zohook_seen", "update", 7, errors.New("nats: timeout"))
	want := `
# HELP zohook_nats_kv_retried_calls_total NATS KV calls that needed more than one attempt, by bucket, operation and outcome (ok: a retry succeeded; failed: gave up).
# TYPE zohook_nats_kv_retried_calls_total counter
zohook_nats_kv_retried_calls_total{bucket="zohook_journal",op="put",outcome="ok"} 2
zohook_nats_kv_retried_calls_total{bucket="zohook_seen",op="update",outcome="failed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "zohook_nats_kv_retried_calls_total"); err != nil {
		t.Fatal(err)
	}
	if a.Logger == nil {
		t.Fatal("kvOptions must pass the process logger to the buckets")
	}
}
