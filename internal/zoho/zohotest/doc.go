// Package zohotest is an in-memory fake of Zoho Accounts, CRM v8 and Books v3 served over real HTTP, for tests
// and for `receiver -dev`. API.md (the project's Zoho reference) is the behavioural spec; section numbers below
// refer to it. Nothing here talks to a real Zoho server.
//
// Map of the package:
//
//   - server.go: Server, options, request plumbing (latency → faults → API), shared helpers.
//   - calls.go, faults.go: call recording (Calls, CallsTo) and fault injection (Inject, ClearFaults).
//   - accounts.go: /oauth/v2/token (authorization_code, refresh_token), /oauth/v2/token/revoke, /oauth/v2/auth
//     (§1): one-time grant codes, refresh throttle, active-token cap, api_domain = URL().
//   - crm.go, criteria.go: CRM records (§2.4–2.9): insert/update/upsert/delete, get, list with page/page_token,
//     search by criteria; CRMInsert/CRMRecord/CRMRecords for seeding and inspection.
//   - coql.go: POST /crm/v8/coql (§3), a recursive-descent parser and evaluator for a real COQL subset.
//   - attachments.go: CRM attachments (§4) and the Attachment type.
//   - deleted.go: GET /crm/v8/{module}/deleted from tombstones left by API deletions and CRMDelete (a deletion
//     "in the UI": no notification); CRMEmptyRecycleBin makes them "permanent" at the purge time (UNCONFIRMED).
//   - notify.go: notification channels /crm/v8/actions/watch (§5), asynchronous §5.7 callbacks, and
//     GET /crm/v8/settings/automation/webhook_failures.
//   - books.go: Books (§8): organizations, the generic entity rule for contacts, items, invoices, estimates,
//     salesorders, customerpayments, creditnotes, purchaseorders; comments, attachment, status actions.
//   - oas.go: optional validation of CRM traffic against Zoho's OpenAPI files (WithOpenAPIValidation).
//   - demo.go: SeedDemo with fixed ids for documentation.
//
// Choices where API.md is UNCONFIRMED (all overridable where cheap):
//   - Token endpoint errors use HTTP 200 with an "error" key (WithTokenErrorStatus changes it); an unknown
//     redirect_uri gives "invalid_redirect_uri"; online (access_type≠offline) consent returns no refresh_token.
//   - Active access tokens per refresh token: 10 (WithMaxActiveTokens).
//   - CRM: a write where every record fails answers 400; GET of an unknown well-formed id answers 204, a
//     malformed id 400; list returns next_page_token whenever more_records is true; per_page > 200 → INVALID_DATA.
//   - Notifications: validation errors answer 400 (the OAS says 202); callbacks use operation insert/update/delete,
//     affected_fields is [{"<id>":["Field",…]}] for updates, and with return_affected_field_values an extra
//     affected_values [{"record_id","values"}]; resource_uri says /crm/v2/ as in Zoho's samples. Callbacks are
//     POSTed once, in order, with no retry. Writes notify regardless of "trigger"/"wf_trigger", which govern
//     workflows, not the watch API.
//   - webhook_failures (UNCONFIRMED endpoint and shape): {"webhook_failures":[{id, webhook{id,name},
//     module{api_name}, record_id, url, response_code, failure_reason, failed_time}], "info":{per_page,count,
//     page,more_records}}, filters webhook_id/from/to/page/per_page, 204 when empty; fed by RecordWebhookFailure.
//   - COQL: an empty result is 204; three or more criteria at one level without brackets is a SYNTAX_ERROR;
//     the comma form "limit offset, n" is not accepted.
//   - Books: invalid organization_id → 400 code 2; unknown id → 404 code 1002; missing required field → 400
//     code 4 "Please enter …"; bad reference (customer_id, item_id) → 400 code 2; invalid token → 401 code 57.
//   - CRM attachment upload answers 200; files over 20 MB → 413 FILE_SIZE_MORE_THAN_ALLOWED_SIZE.
//
// OpenAPI deviations handled in oas.go: oneOf is read as anyOf (Zoho's permissive schemas match several
// branches); statuses the OAS does not list are checked against all documented responses of the operation;
// the notify_url pattern is dropped; attachment upload/list request checks for attachmentUrl/ids are skipped;
// error codes documented in API.md but missing from the OAS enum (DISCRETE_PAGINATION_LIMIT_EXCEEDED, …) are
// not checked; files the vendored OAS refers to but that are not vendored (tags.json, layouts.json, …) are
// replaced by permissive stubs.
package zohotest
