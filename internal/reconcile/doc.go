// Package reconcile finds CRM changes that no webhook delivered (Zoho
// outages, an expired channel, zohook down beyond Zoho's retries) and
// publishes them, exactly once, into the events stream.
//
// Map of the package:
//
//   - seen.go: Seen, what was already received: the record's last crm.notify
//     event in the history stream (the receiver marks nothing: the history
//     holds every event), or a mark in the KV bucket "zohook_seen"
//     (connection.module.record → time) the job writes for what it
//     publishes (MarkSeen). The job skips a change not newer than both.
//   - job.go: Job.RunOnce walks each module's records modified since its
//     cursor (KV bucket "zohook_reconcile"), oldest first across every page
//     (page_token past 2,000), and publishes the unseen changes; it also
//     replays Zoho's workflow-webhook failure log (UNCONFIRMED endpoint).
//     Job.Run repeats it under a fleet lease so one worker does it at a time.
//   - deleted.go: the deletions of each module since their own cursor
//     (GET /{module}/deleted, read whole: Zoho documents no order) become
//     delete events unless already received: a change seen at or after
//     deleted_time − DeleteTolerance (2 s) is the delete notification. The
//     deletions handled are remembered ("deleted-<Module>" seen entries) so
//     the same deletion listed again as "permanent" when the recycle bin is
//     emptied is not published twice.
//
// Reconciled changes are published with Source crm.notify, so the rules
// written for notifications fire, and ChannelID "reconcile" (Values carry
// Modified_Time; for deletions, Operation delete and Values deleted_time,
// type, display_name, deleted_by). Their ids derive from (connection,
// module, record id, Modified_Time), or (…, record id, "deleted",
// deleted_time): two runs, or two workers, publishing the same change give
// the same message id and JetStream stores it once. Replayed webhook
// failures are crm.workflow events for the hook named in the failed URL,
// with the record's current fields as Values.
package reconcile
