// Package rulescmd implements `worker rules check|test`, the tools rule
// authors use to validate rules.yaml and to see, without sending anything,
// which rules an event matches and the exact Zoho calls they would make.
//
// Map of the package:
//
//   - rulescmd.go: Run (sub-command dispatch, flags, help), check, test.
//   - event.go:    reading EVENT.json: a zohook Event or a raw Zoho CRM
//     notification callback body.
package rulescmd
