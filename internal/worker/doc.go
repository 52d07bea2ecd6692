// Package worker consumes events from JetStream and runs a Handler on each,
// Watermill-style: the Handler is wrapped by small middlewares (recover,
// timeout, logging) and the Runner owns delivery semantics: per-record order,
// bounded concurrency, in-progress acks, ack after success, nak with backoff
// on retryable errors, and terminal handling (dead letter) otherwise.
//
// Map of the package:
//
//   - handler.go:    Message, Handler, Middleware, the error classification.
//   - middleware.go: Recover, Timeout, Log (their order is tested).
//   - runner.go:     Runner: pinned partition consumers, per-record lanes.
//   - lanes.go:      the per-record ordering state machine.
//   - journal.go:    the step journal (KV zohook_journal): what was done for an event.
//   - dlq.go:        the dead-letter stream ZOHOOK_DLQ: store, list, replay, count.
//   - replay.go:     republishing history from the events stream.
//   - backlog.go:    per-partition backlog read from the consumers (worker status, metrics).
package worker
