// Package e2e holds end-to-end tests that run zohook's real binaries as
// subprocesses (built once per test run, with natsnode for cluster nodes)
// against an embedded NATS server or a three-node cluster and the fake Zoho
// over HTTP.
//
// Map of the package:
//
//   - harness_test.go:   TestMain (builds worker, receiver, natsnode), processes, waits, stack dumps.
//   - scenarios_test.go: every rule of the example rules.yaml through the real receiver and worker.
//   - crash_test.go:     the worker SIGKILLed while Zoho creates the invoice: exactly one invoice.
//   - chaos_test.go:     1,000 events, the worker SIGKILLed 8 times at random points.
//   - faults_test.go:    NATS down, Zoho 429/5xx/timeouts, permanent 400, refused token refresh, Books rate limit.
//   - cluster_test.go:   three nats-server processes, the stream leader SIGKILLed during ingest.
//   - fleet_test.go:     two workers, takeover, one shared token.
//   - loop_test.go:      a rule updating its own Deal runs once through Zoho's notifications.
//   - bench_test.go:     BenchmarkEndToEnd (events/s, Zoho calls per event, raw publish baseline).
//   - natsnode/:         a nats-server cluster node as a process of its own.
package e2e
