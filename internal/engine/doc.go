// Package engine is the worker's event handler: for each event it finds the
// matching rules, loads the record once, and runs each rule's steps through
// the Zoho client with exactly-once effects.
//
// Map of the package:
//
//   - engine.go:   Engine (a worker.Handler): match, load record, run rules, classify failures.
//   - executor.go: the journaled executor: a step Zoho accepted is never sent again;
//     in-doubt steps (crash between Zoho's answer and the journal write) are resolved
//     by looking for what the first attempt created before creating again (and,
//     for deletes, whether the records are already gone).
//   - loops.go:    LoopGuard: remembers zohook's own CRM writes so the notifications they
//     cause do not trigger the rules again.
//   - metrics.go:  Prometheus collectors.
//
// It glues internal/rules (which knows nothing of Zoho or NATS) to
// internal/zoho (which knows nothing of rules) and to the worker's journal.
package engine
