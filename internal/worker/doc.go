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
//   - runner.go:     Runner: pinned partition consumers acquired and released as the
//     membership changes, the takeover fence, per-record lanes, keep-alives.
//   - membership.go: heartbeats in KV zohook_workers and the assignment (sorted names,
//     partition p to name p mod N); written here rather than taken from orbit.go/pcgroups
//     (see the README: its groups copy every event into a second stream).
//   - members_read.go: ReadMembers for worker status and the console.
//   - failure.go:    Failure: which rule, step and action an error belongs to.
//   - outcomes.go:   OutcomeRecord, published after each handler run (stream ZOHOOK_OUTCOMES).
//   - lanes.go:      the per-record ordering state machine.
//   - journal.go:    the step journal (KV zohook_journal): what was done for an event.
//   - journal_layout1.go: carrying a first-layout journal (a key per step) over to an entry.
//   - dlq.go:        the dead-letter stream ZOHOOK_DLQ: store, list, replay, count.
//   - replay.go:     republishing history from the history stream, in order per record.
//   - backlog.go:    per-partition backlog read from the consumers (worker status, metrics).
package worker
