// Package receiver is zohook's HTTP front door: it accepts Zoho callbacks,
// verifies and validates them, turns each into one event per record, and
// answers 2xx only after JetStream has stored every one of them.
//
// Map of the package:
//
//   - server.go:    Server (echo), routes, health, readiness, metrics, shutdown.
//   - ingest.go:    the path every source shares: body limit, content type,
//     decode, publish, JSON answer.
//   - crmnotify.go: POST /zoho/crm/notify, the CRM Notifications API callback,
//     decoded once (the stored body is the received one minus its token).
//   - crmdecode.go: its decoder, json.Unmarshal written out by hand (that was
//     ~20% of the receiver's CPU per request); a differential fuzz target
//     holds it to encoding/json's results and errors.
//   - jsonscan.go:  byte-level walks over JSON (the members of an object,
//     checked as json.Valid would; the end of a value, string literals).
//   - secrets.go:   no configured secret is ever stored: a body carrying one
//     outside its credential field is refused (400).
//   - hooks.go:     CRM workflow webhooks and Books webhooks (token or HMAC signature).
//   - validate.go:  validator/v10 rules on decoded callbacks (module and field names).
//   - verify.go:    token verification (constant time).
//   - tracing.go:   the callback's span (a no-op handler chain while tracing is off).
//   - errors.go:    the JSON error bodies and their typed errors.
//   - metrics.go:   Prometheus collectors, one registry per Server.
package receiver
