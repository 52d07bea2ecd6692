// Package zoho is zohook's client for the Zoho CRM v8 and Zoho Books v3 APIs,
// shaped like google/go-github: one Client with service fields (CRM, Books),
// methods (ctx, args..., *Options) (*T, *Response, error), typed errors and
// iter.Seq2 iterators. It never talks to anything but the configured Zoho
// hosts (or the fake in zohotest).
//
// Map of the package:
//
//   - config.go:        Config, the DC table (us eu in au jp ca cn sa), ConfigFromEnv, Validate, redacting String/LogValue.
//   - token.go:         OAuth (consent URL, code exchange, refresh, revoke), Token, TokenSource, Refresher
//     (cache, refresh 5 min before expiry, one shared in-flight refresh, Invalidate-if-current).
//   - client.go:        Client, options, Response/PageInfo/PageContext, the request loop: limiter → token →
//     HTTP → 401 INVALID_TOKEN/AUTHENTICATION_FAILURE/Books 57 → invalidate + retry once; 429/5xx/network →
//     RetryPolicy (exponential, full jitter, Retry-After / X-Rate-Limit-Reset honoured); path safety.
//   - errors.go:        Error, RecordError, BatchError, TokenError, PathError, InputError, ConfigError and
//     IsRetryable / IsRateLimited / IsAuth / IsNotFound.
//   - crm.go:           records: Create/Update/Upsert/Delete (chunks of 100, results in input order),
//     GetRecord, ListRecords, Records (walks pages, switches to page_token at 2,000), SearchRecords.
//   - coql.go:          COQL and COQLAll (LIMIT/OFFSET paging up to 100,000 rows).
//   - deleted.go:       ListDeleted / DeletedRecords (GET /{module}/deleted: type, page numbers,
//     If-Modified-Since), DeletedRecord.
//   - attachments.go:   AddAttachment (multipart "file"), AttachLink, ListAttachments, Download, Delete.
//   - notifications.go: Channel, Enable/Update(PUT)/Patch/DisableEvents/DisableChannels/ListChannels.
//   - books.go:         Books Create/Get/Update/Delete/ListRecords/Records on any entity, child collections.
//   - raw.go:           CRM.Raw / Books.Raw for any endpoint under the API base.
//   - actions.go:       RunAction / ActionNames / Actions: the generic layer the rules engine drives.
//   - plan.go:          PlanAction: the requests RunAction would send, built by the same code, sent nowhere.
//   - exchange.go:      Exchange and the recorder: each HTTP attempt as sent and answered (no header, no token).
//   - debug.go:         request/response debug logging with secrets redacted.
//
// # Batch errors
//
// Create/Update/Upsert/Delete and the notification writes return every
// per-record result in input order. If at least one record failed they ALSO
// return a *BatchError (Failed lists index, code, message); a request-level
// failure returns *Error. CRM's "400 with data[]" (every record failed) is
// reported per record, not as *Error.
//
// # Actions (RunAction)
//
// Inputs come from YAML/expressions: numbers may be int, int64, float64 or
// json.Number; ids strings or numbers; lists may be YAML lists or
// comma-separated strings. An unknown input, a missing required input (*) or a
// badly typed one gives *InputError{Action, Input} before any request. Output
// numbers are int64 or float64. On a partial batch failure the output is
// returned together with the *BatchError.
//
//	action               inputs                                                  output
//	crm.create_record    module*, data* (map | list of maps), trigger,           {id, ids, data: [per-record results]}
//	                     duplicate_check_fields, upsert (bool)
//	crm.get_record       module*, id*, fields                                    {record}
//	crm.get_records      module*, fields*, page, per_page, page_token, sort_by,  {data, info}
//	                     sort_order, all (bool: every page), max_records
//	crm.update_record    module*, data*, id (or ids inside a list of data),      {id, ids, data}
//	                     trigger
//	crm.remove_record    module*, id or ids (one required), wf_trigger           {ids, data}
//	crm.add_attachment   module*, id*, file_name, content | content_base64 | url,{id, data}
//	                     title (file_name required unless url)
//	crm.get_attachments  module*, id*, fields, page, per_page                    {data, info}
//	crm.coql             query*, all (bool)                                      {data, info}
//	crm.raw_request      method*, path*, query, headers, json, form, files       {status, headers, body}
//	books.raw_request    ([{name, file_name, content | content_base64}]),        (body: JSON value, text, or
//	                     response_type (json|text|binary), timeout (Go duration   base64 when binary)
//	                     or seconds), max_retries, retry_delay, exponential,
//	                     retry_all_errors, debug; books adds organization_id
//	books.create_record  entity*, data*, parent_type, parent_id,                 Books' decoded answer
//	                     organization_id, query                                  (e.g. {invoice: {invoice_number…}})
//	books.get_record     entity*, id*, parent_type, parent_id, organization_id, query
//	books.get_records    entity*, page, per_page, search (filters), all, max_records, parent_*, organization_id, query
//	                                                                             one page as Books returns it, or with
//	                                                                             all: {<entity>: [...], page_context}
//	books.update_record  entity*, id*, data*, parent_type, parent_id, organization_id, query
//	books.remove_record  entity*, id*, parent_type, parent_id, organization_id, query
//
// trigger: absent = [] (no Zoho automation fires: loop-safe, G10); a list =
// exactly those; the string "all" = omit the key (Zoho runs everything).
// wf_trigger defaults to false for the same reason.
package zoho
