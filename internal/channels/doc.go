// Package channels keeps the CRM notification channels (Zoho's "watch"
// subscriptions, API.md §5) that zohook's rules need enabled, so they never
// silently expire, and lets the receiver verify their tokens.
//
// Map of the package:
//
//   - needed.go: NeededEvents derives the "Module.op" events from the rules.
//   - manager.go: Manager.Sync (create, renew, repair, trim channels) and Run
//     (periodic Sync under a fleet lease so one worker does it at a time).
//   - store.go: the KV bucket (default "zohook_channels") holding one entry per
//     channel: connection, module and the channel's token.
//   - verifier.go: TokenVerifier, the receiver's in-memory view of that bucket
//     kept fresh by a KV watch (no KV round trip per callback).
//   - metrics.go: Prometheus metrics shared by the managers of all connections.
//
// Channel layout: one channel per connection and module, with a stable numeric
// id derived from both (ChannelID), so a restart or another worker finds the
// same channels, and one module can be renewed, repaired or dropped alone.
package channels
