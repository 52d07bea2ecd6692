// Package events is zohook's durable backbone: the event envelope, the
// JetStream subjects, stream and consumer setup, publishing with
// de-duplication, and an embedded NATS server for single-machine use.
//
// Map of the package:
//
//   - envelope.go: Envelope (versioned JSON), Source, deterministic IDs.
//   - subject.go:  the subject scheme zoho.<source>.<connection>.<module>.<operation>.<partition>.
//   - stream.go:   StreamConfig with defaults; EnsureStream creates or updates it idempotently.
//   - publish.go:  Publisher: publish a batch, return only after JetStream acknowledged every event.
//   - consume.go:  ConsumerConfig and EnsureConsumer for durable pull consumers.
//   - kv.go:       OpenKV and BoundKV: KV buckets whose calls are bounded per attempt and
//     retried while the cluster recovers (every package's KV access goes through it).
//   - connect.go:  Connect to an existing NATS cluster (credentials, NKey, TLS).
//   - embedded.go: an in-process nats-server with JetStream for -dev, tests and single-node installs.
//
// The package knows nothing of Zoho's API: a Zoho callback arrives here
// already decoded into an Envelope by the receiver.
package events
