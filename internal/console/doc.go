// Package console is zohook's web console: every event, what the rules did
// with it, dead letters and replay, and the health of the fleet, as
// server-rendered pages (html/template, assets embedded with go:embed, no
// JavaScript toolchain, no CDN) and the same as a small JSON API. It is
// served on a process's admin listener under /console/: `receiver -dev`
// always serves it, a worker with -console (see internal/app/console.go).
// Everything it shows it reads from NATS, so any worker can serve it.
//
// # Pages
//
//   - /console/events: newest first, live (server-sent events), filtered
//     by source, connection, module, operation, record, outcome and time,
//     searched by event or record id, paged with cursors.
//   - /console/events/{id}: the envelope (secrets redacted), the rules that
//     matched and why the others did not (rules.Set.Explain with the
//     journaled record snapshot), each step's journal state (done, refused,
//     in doubt, not run) with its Zoho exchanges (the request as sent and
//     Zoho's answer), every run and attempt, timings.
//   - /console/dead-letters: rule, step, error, attempts; replay one;
//     replay a selection or every match of a filter after a preview ("This
//     will replay N events"); resolve an in-doubt step (done or resend) as
//     `worker dlq replay -in-doubt` does.
//   - /console/health: partitions and the worker serving each, backlog and
//     the oldest waiting event, dead letters, notification channels, rules
//     version and the last reload with its problems and warnings, the Zoho
//     rate-limit budget left.
//
// # JSON API
//
// Same listener, same authentication; add ?pretty for indented JSON.
//
//	GET  /console/api/events?source=&connection=&module=&operation=&record=&status=&since=&until=&q=&before=&after=&limit=
//	     → {"events":[EventSummary...], "older":SEQ, "newer":SEQ, "via":"index|streams|id", "loaded":bool}
//	     status: waiting|done|skipped|retrying|dead_lettered|rate_limited|held, or a handler
//	     detail (no_rule, condition_false, self_caused, replayed, failed); since/until:
//	     RFC 3339, 2026-12-01T10:00 (UTC) or a duration back from now (2h, 7d);
//	     q: an event id, else a record id; pages: before=<older> / after=<newer>.
//	GET  /console/api/events/stream?(same filters, or id=)   server-sent events: "event" (an EventSummary), "reset"
//	GET  /console/api/events/{id}                             → EventDetail
//	GET  /console/api/dead-letters?rule=&step=&module=&error= → {"dead_letters":[...], "matching":N, "total":N}
//	POST /console/api/dead-letters/replay  {"ids":[...]} or {"all":true,"filter":{...}}
//	     with "dry_run":true → {"would_replay":N, "preview":{...}}; then with "expect":N → {"replayed":[...]}
//	     (409 and nothing sent when the selection no longer counts N)
//	POST /console/api/dead-letters/{id}/replay               → {"replayed":[id]}
//	POST /console/api/dead-letters/{id}/resolve  {"decision":"done"|"resend"}
//	GET  /console/api/health                                  → Health
//
// # Security
//
// Outside -dev every request needs the console password (HTTP Basic with
// any user name, or "Authorization: Bearer <password>"), compared in
// constant time. Every state-changing action is a POST; a POST must come
// from the console's own origin (Sec-Fetch-Site / Origin against Host, Go's
// http.CrossOriginProtection) and carry the form token (forms) or be JSON.
// Pages send a strict Content-Security-Policy (scripts only from the
// console itself; no inline script). Secrets never reach an answer:
// secret-named fields (token, *_secret, password, signature, ...) are
// redacted in envelopes, record snapshots, step outputs and Zoho
// exchanges, and the process's known secrets (Zoho credentials, the
// configuration file's tokens and hook secrets, the password) are replaced
// wherever they would appear, also HTML-, JSON- or URL-escaped.
//
// # The index
//
// Listing 30 days of history newest first with filters cannot read the
// stream per page: JetStream reads forward, and a filter on an outcome is
// not a subject. The console keeps an in-memory Index instead:
//
//   - Fed by two ordered consumers (ephemeral, flow-controlled, resumed by
//     nats.go from the last sequence after a disconnect): one on
//     ZOHOOK_HISTORY from its first event, or from the last IndexEvents
//     events when it holds more; one on ZOHOOK_OUTCOMES from the time of
//     the first indexed event. They keep following both streams: the index
//     is live, and every change is pushed to the pages' server-sent event
//     streams.
//   - One row per event id (its latest appearance in the history; a replay
//     moves it to the top), joined with the latest outcome record of that
//     appearance (outcome records name the work-stream sequence, which the
//     history's Nats-Stream-Source header carries). An outcome that arrives
//     before its event waits in a bounded map.
//   - Rows are kept in history order, about 124 bytes each (measured by
//     TestIndexMemoryPerEvent): an event id in 16 bytes, a numeric record id
//     in 8, the low-cardinality strings (source, connection, module,
//     operation, outcome, detail) as 2-byte codes. "Newest first" is a walk
//     from the end, a page cursor is a history sequence (binary search), a
//     time range two binary searches; a filter compares codes, so even a
//     rare one (1% of 100,000 events) walks the whole index in a few
//     milliseconds. Event ids are a hash map lookup.
//   - Bounded: at most IndexEvents rows (default 500,000, about 62 MB);
//     beyond, the oldest leave the index (not the stream), and what the
//     history's retention removes leaves it too.
//   - Record lookups use the record-id subject token when the index does
//     not hold the whole history: events are stored under
//     zoho.<source>.<connection>.<module>.<operation>.<partition>.<record>
//     and outcome records under zohook.outcome.<outcome>.<source>.<connection>.<module>.<operation>.<record>,
//     so two subject-filtered ordered consumers read exactly that record's
//     messages over the whole 30 days.
//
// The event page reads the rest on demand: the envelope by its history
// sequence (a direct get), the journal entry (zohook_journal, one key per
// event), the dead letter (ZOHOOK_DLQ, one subject per event), and the
// event's outcome records by the record's subject.
//
// BenchmarkListPages measures 20 pages of a 100,000-event history.
package console
