// Package reconcile finds CRM changes that no webhook delivered (Zoho
// outages, an expired channel, zohook down beyond Zoho's retries) and
// publishes them, exactly once, into the events stream.
//
// Map of the package:
//
//   - seen.go: Seen, the KV bucket "zohook_seen" (connection.module.record →
//     latest change time handled). The worker marks what it handled
//     (MarkSeen); the job skips what is marked and marks what it publishes.
//   - job.go: Job.RunOnce walks each module's records modified since its
//     cursor (KV bucket "zohook_reconcile"), oldest first across every page
//     (page_token past 2,000), and publishes the unseen changes; it also
//     replays Zoho's workflow-webhook failure log (UNCONFIRMED endpoint).
//     Job.Run repeats it under a fleet lease so one worker does it at a time.
//
// Reconciled changes are published with Source crm.notify, so the rules
// written for notifications fire, and ChannelID "reconcile" (Values carry
// Modified_Time). Their ids derive from (connection, module, record id,
// Modified_Time): two runs, or two workers, publishing the same change give
// the same message id and JetStream stores it once. Replayed webhook
// failures are crm.workflow events for the hook named in the failed URL,
// with the record's current fields as Values.
package reconcile
