// Package app wires zohook's parts into the two programs, so that
// cmd/receiver and cmd/worker stay thin (flags in, Run out) and the wiring is
// testable: NATS (embedded or a cluster), the receiver, the worker, and the
// all-in-one -dev mode.
//
// Map of the package:
//
//   - receiver.go, worker.go, dev.go: the three ways to run (receiver, worker, -dev).
//   - cli.go, subcommands.go, errors.go, version.go: the command convention,
//     the operator commands and their exit codes.
//   - configfile.go, logging.go: the optional YAML file, slog setup.
//   - nats.go, layout.go, setup.go: connecting by role, the NATS layout, `worker setup`
//     (and the upgrade from the first layout, -retire-layout1).
//   - pipeline.go, background.go, channels.go: the worker's handler chain and
//     its background jobs (reconciliation, channels).
//   - admin.go, storage.go, backlog.go, kvmetrics.go, membership_metrics.go:
//     the admin listener (/healthz, /readyz, /metrics, pprof) and its gauges.
//   - console.go: the console on the admin listener.
//   - doctor.go, whatif.go: `worker doctor`, `rules test -history`.
package app
