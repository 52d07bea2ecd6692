// Package tracing sets up OpenTelemetry tracing for zohook and holds the
// few helpers the rest of the code shares: starting spans (free when
// tracing is off), carrying the W3C trace context in NATS message headers,
// and putting trace_id on log lines about an event.
//
// Tracing is off unless an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT); see
// Setup. Off, Start returns the context it was given and a no-op span
// without allocating, and nothing is injected into or read from messages.
//
// This package imports only the standard library, OpenTelemetry and the
// NATS client: every zohook package may import it, it imports none of
// them.
//
// The spans zohook makes (see docs for the full list):
//
//	POST /zoho/crm/notify            server    receiver, one per callback
//	└─ publish <stream>              producer  events, one per stored event
//	   └─ handle <source>            consumer  worker, one per handler run
//	      ├─ GET /crm/v8/Deals/{id}  client    zoho, one per HTTP attempt
//	      └─ rule <name>             internal  engine, one per matched rule
//	         └─ step <action>        internal  engine, one per step
//	            └─ PUT /crm/v8/Deals/{id}  client
package tracing
