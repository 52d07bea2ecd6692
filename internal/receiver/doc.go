// Package receiver is zohook's HTTP front door: it accepts Zoho callbacks,
// verifies and validates them, turns each into one event per record, and
// answers 2xx only after JetStream has stored every one of them.
//
// Map of the package:
//
//   - server.go:    Server (echo), routes, health, readiness, metrics, shutdown.
//   - ingest.go:    the path every source shares: body limit, content type,
//     decode, publish, JSON answer.
//   - crmnotify.go: POST /zoho/crm/notify, the CRM Notifications API callback.
//   - verify.go:    token verification (constant time).
//   - errors.go:    the JSON error bodies and their typed errors.
//   - metrics.go:   Prometheus collectors, one registry per Server.
package receiver
