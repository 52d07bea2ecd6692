// Package rulescmd implements `worker rules check|schema|test`, the tools
// rule authors use to validate rules.yaml, to give editors its schema, and
// to see and test, without sending anything, which rules an event matches
// and the exact Zoho calls they would make.
//
// Map of the package:
//
//   - rulescmd.go: Run (sub-command dispatch, flags, help), check, schema,
//     the dry run (test --event).
//   - event.go:    reading EVENT.json: a zohook Event or a raw Zoho CRM
//     notification callback body.
//   - callback.go: a callback as Zoho POSTs it, run through the receiver in
//     process (no listener, no NATS), into the events the worker would see.
//   - wire.go:     the executor of dry runs and tests: zohook's defaults,
//     then zoho.PlanAction (the client's own request building); printing
//     requests as sent.
//   - dryrun.go:   evaluate (every rule's verdict, steps and requests for
//     one event) and the report's text and JSON forms.
//   - ruletest.go: rule test files (*.test.yaml): cases, expectations,
//     comparison and diffs.
//   - whatif.go:   test -history: a candidate rules file against the
//     events of the history stream, compared rule by rule.
package rulescmd
