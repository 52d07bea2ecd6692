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
package worker
