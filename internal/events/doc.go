// Package events is zohook's durable backbone: the event envelope, the
// JetStream subjects, stream and consumer setup, publishing with
// de-duplication, and an embedded NATS server for single-machine use.
//
// Map of the package:
//
//   - envelope.go: Envelope (versioned JSON), Source, deterministic IDs.
//   - subject.go:  the subject scheme zoho.<source>.<connection>.<module>.<operation>.<partition>.
//   - stream.go:   the work stream (interest, never dropped), the history that sources it,
//     their defaults and LayoutOptions.Validate.
//   - ensure.go:   the layout's one owner: EnsureMode (create missing, apply, look up only),
//     Difference reports, EnsureEventStreams (work → history → source consumer → partitions).
//   - layout1.go:  zohook's first layout (stream ZOHOOK_EVENTS): finding it, retiring it, its backlog.
//   - publish.go:  Publisher: publish a batch, return only after JetStream acknowledged every event.
//   - consume.go:  the pinned pull consumer of each partition.
//   - depth.go:    MaxDepth, the JSON nesting bound of a stored event.
//   - errors.go:   sentinel errors (ErrFull, ErrUnsupportedVersion, ...), checked with errors.Is.
//   - auth.go:     roles (admin, worker, receiver), their NATS permissions and NKey seeds.
//   - kv.go:       OpenKV and BoundKV: KV buckets whose calls are bounded per attempt and
//     retried while the cluster recovers (every package's KV access goes through it).
//   - connect.go:  Connect to an existing NATS cluster (credentials, NKey, TLS).
//   - embedded.go: an in-process nats-server with JetStream for -dev, tests and single-node
//     installs; it requires the NKey users of auth.go.
//
// The package knows nothing of Zoho's API: a Zoho callback arrives here
// already decoded into an Envelope by the receiver.
package events
