package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
)

// Actor runs Zoho actions by name; *zoho.Client implements it.
type Actor interface {
	RunAction(ctx context.Context, name string, in map[string]any) (map[string]any, error)
}

var _ Actor = (*zoho.Client)(nil)

// stepJournal is the part of an event's journal entry the executor uses.
type stepJournal interface {
	Step(ctx context.Context, key string) (*worker.StepRecord, error)
	Start(ctx context.Context, key, action string, attempts int) error
	Done(ctx context.Context, key, action string, attempts int, output map[string]any, calls json.RawMessage, write bool) error
	Refused(ctx context.Context, key, action string, attempts int, calls json.RawMessage, partial map[string]any) error
}

var _ stepJournal = (*worker.Entry)(nil)

// executor runs the steps of one event: each step at most once as far as
// Zoho is concerned.
type executor struct {
	eventID    string
	connection string
	actor      Actor
	journal    stepJournal
	loops      *LoopGuard
	log        *slog.Logger
	obs        *metrics
	// calls counts the Zoho actions this event really sent (not replayed
	// from the journal); journaled counts steps taken from the journal,
	// perRule those since the last takeJournaled.
	calls, journaled, perRule int
	// lastErr: each step's last error, for the log of a step given up.
	lastErr map[string]error
	// own: the loop guard's state of the event's record (writes to it are
	// kept there and written once at the end of the event).
	own              *RecordState
	ownModule, ownID string
}

// takeJournaled returns the steps taken from the journal since the last call.
func (x *executor) takeJournaled() int {
	n := x.perRule
	x.perRule = 0
	return n
}

// execute runs one step. A step journaled as done returns its recorded
// output without calling Zoho. A step journaled as started (the process
// died between sending it and recording Zoho's answer) is "in doubt":
// resolveInDoubt looks for what the first attempt may have created. When
// nothing can tell and the step's policy is in_doubt: dead_letter, nothing
// is sent and the event is dead-lettered with an *InDoubtError. A step
// Zoho refused is not in doubt: it is sent again without a lookup, and of
// a batch Zoho partly accepted only the refused records are sent again.
func (x *executor) execute(ctx context.Context, key, action string, in map[string]any, policy string) (map[string]any, error) {
	// Always read, even on a first delivery: an event id can come back as a
	// new message (a duplicate callback after the stream's dedupe window, a
	// replay), and its steps must not run twice.
	rec, err := x.journal.Step(ctx, key)
	if err != nil {
		return nil, err // journal unavailable: retry the event later
	}
	if rec != nil && rec.Action != action {
		// A reload gave this step id another action: what was journaled
		// under it is not this step's. Run it as a new step.
		x.log.Warn("step now runs another action than when this event ran it; treating it as a new step",
			"step", key, "journaled_action", rec.Action, "action", action)
		key += "@" + action
		if rec, err = x.journal.Step(ctx, key); err != nil {
			return nil, err
		}
	}
	if rec != nil && rec.State == worker.StepDone {
		x.log.Debug("step already done; using its journaled output", "step", key, "action", action)
		x.obs.step(action, "journaled")
		x.journaled++
		x.perRule++
		return rec.Output, nil
	}
	attempts := 1
	var partial *batchPart
	if rec != nil {
		attempts = rec.Attempts + 1
		if rec.State == worker.StepStarted {
			// In doubt: look for what the interrupted attempt may have done.
			if out, ok, err := x.resolveInDoubt(ctx, action, in, rec.At); err != nil {
				return nil, err
			} else if ok {
				x.log.Warn("in-doubt step resolved: Zoho already had its result", "step", key, "action", action)
				if err := x.journal.Done(ctx, key, action, attempts, out, nil, true); err != nil {
					return nil, err
				}
				x.obs.step(action, "recovered")
				return out, nil
			}
			in = x.safeRetryInputs(action, in)
			if policy == rules.InDoubtDeadLetter && !safeToResend(action, in) {
				x.obs.step(action, "in_doubt")
				return nil, worker.Permanent(&InDoubtError{EventID: x.eventID, Step: key, Action: action, Since: rec.At})
			}
		}
		if rec.State == worker.StepRefused && rec.Output != nil {
			// Zoho accepted part of a batch before: send only the rest.
			if partial = splitBatch(in, rec.Output); partial != nil {
				x.log.Info("batch partly accepted earlier; sending only the records Zoho refused", "step", key,
					"accepted", len(partial.kept), "resending", len(partial.resend))
				in = partial.inputs
			}
		}
	}
	in = withDefaults(action, in)
	marked := !readOnly(action, in)
	if marked {
		// Mark the step before sending it: if we die before recording the
		// answer, the next delivery knows the call may have reached Zoho.
		// Reads need no mark: repeating them changes nothing.
		if err := x.journal.Start(ctx, key, action, attempts); err != nil {
			return nil, err
		}
	}
	var exch zoho.Exchanges
	start := time.Now()
	out, err := x.actor.RunAction(zoho.WithExchanges(ctx, &exch), action, in)
	x.calls++
	x.obs.zohoCall(action, err, time.Since(start), exch.List())
	calls := callsJSON(exch.List())
	if partial != nil {
		out = partial.merge(out)
	}
	if err != nil {
		x.obs.step(action, "failed")
		var be *zoho.BatchError
		switch {
		case marked && errors.As(err, &be) && !be.AllFailed():
			// Zoho created (or changed) some records and refused others:
			// journal the per-record results so a later attempt (a replay
			// after fixing the data) sends only the refused ones.
			jctx, cancel := afterZoho(ctx)
			defer cancel()
			if jerr := x.journal.Refused(jctx, key, action, attempts, calls, out); jerr != nil {
				x.log.Warn("journal: could not record a partly accepted batch; its next attempt is in doubt", "step", key, "err", jerr)
			}
		case marked && zoho.NotApplied(err):
			// Zoho's answer proves nothing happened: the next attempt is
			// not in doubt. Best effort: if this write fails, the step
			// stays "started" and the next attempt treats it as in doubt.
			jctx, cancel := afterZoho(ctx)
			defer cancel()
			if jerr := x.journal.Refused(jctx, key, action, attempts, calls, nil); jerr != nil {
				x.log.Warn("journal: could not record a refused step", "step", key, "err", jerr)
			}
		}
		return out, classify(err)
	}
	jctx, cancel := afterZoho(ctx)
	defer cancel()
	if err := x.journal.Done(jctx, key, action, attempts, out, calls, marked); err != nil {
		// Zoho accepted the step but we could not record it: the next
		// delivery finds it in doubt and resolves it.
		return nil, fmt.Errorf("journal after %s: %w", action, err)
	}
	x.obs.step(action, "ok")
	x.rememberWrite(ctx, action, in, out)
	x.log.Info("zoho call", "step", key, "action", action, "duration", time.Since(start).Round(time.Millisecond), "result", summarize(action, out))
	return out, nil
}

// callsJSON encodes a step's exchanges (already redacted by the client).
func callsJSON(ex []zoho.Exchange) json.RawMessage {
	if len(ex) == 0 {
		return nil
	}
	recs := make([]worker.CallRecord, len(ex))
	for i, e := range ex {
		r := worker.CallRecord{API: e.API, Method: e.Method, Path: e.Path, Query: e.Query, BodySize: e.RequestBodySize,
			Status: e.Status, Code: e.Code, Message: e.Message, Duration: e.Duration, Attempt: e.Attempt}
		if len(e.RequestBody) > 0 {
			if json.Valid(e.RequestBody) {
				r.Body = json.RawMessage(e.RequestBody)
			} else {
				r.BodyText = string(e.RequestBody)
			}
		}
		recs[i] = r
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return nil
	}
	return b
}

// batchPart is a batch write of which Zoho accepted some records before:
// inputs holds only the refused ones; merge puts the new results back
// among the accepted ones, in the original order.
type batchPart struct {
	inputs map[string]any
	kept   map[int]any // original index → accepted result
	resend []int       // original indexes sent again, in order
	total  int
}

// splitBatch returns the part of a batch write to send again given the
// per-record results of an earlier attempt, nil when in is not such a
// batch or nothing was accepted.
func splitBatch(in, prev map[string]any) *batchPart {
	data, _ := in["data"].([]any)
	results, _ := prev["data"].([]any)
	if len(data) == 0 || len(results) != len(data) {
		return nil
	}
	p := &batchPart{kept: map[int]any{}, total: len(data)}
	var rest []any
	for i, r := range results {
		m, _ := r.(map[string]any)
		if code, _ := m["code"].(string); code == "SUCCESS" {
			p.kept[i] = r
			continue
		}
		p.resend = append(p.resend, i)
		rest = append(rest, data[i])
	}
	if len(p.kept) == 0 || len(rest) == 0 {
		return nil
	}
	p.inputs = maps.Clone(in)
	p.inputs["data"] = rest
	return p
}

func (p *batchPart) merge(out map[string]any) map[string]any {
	results, _ := out["data"].([]any)
	merged := make([]any, p.total)
	for i, r := range p.kept {
		merged[i] = r
	}
	for j, i := range p.resend {
		if j < len(results) {
			merged[i] = results[j]
		}
	}
	o := maps.Clone(out)
	if o == nil {
		o = map[string]any{}
	}
	o["data"] = merged
	return o
}

// journalAfterZoho bounds the journal write that records Zoho's answer.
const journalAfterZoho = 10 * time.Second

// afterZoho is the context for recording Zoho's answer: it outlives the
// event's own (an event timeout or shutdown landing right after Zoho
// answered must not leave an accepted step in doubt), briefly.
func afterZoho(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), journalAfterZoho)
}

// readOnly reports actions that change nothing in Zoho.
func readOnly(action string, in map[string]any) bool {
	m, _ := in["method"].(string)
	return rules.ReadOnly(action, m)
}

// withDefaults applies zohook's safe defaults (rules.WireDefaults, which
// `rules test` shows too): CRM writes fire no Zoho automation unless the
// rule asks (trigger: [workflow] …), deletes no workflow; this is what
// keeps zohook's own writes from looping through Zoho's workflow webhooks.
func withDefaults(action string, in map[string]any) map[string]any {
	return rules.WireDefaults(action, in)
}

// safeRetryInputs turns an in-doubt CRM create with duplicate-check fields
// into an upsert, so a record the first attempt created is updated, not
// created twice.
func (x *executor) safeRetryInputs(action string, in map[string]any) map[string]any {
	if action == "crm.create_record" && in["duplicate_check_fields"] != nil && in["upsert"] == nil {
		in = maps.Clone(in)
		in["upsert"] = true
	}
	return in
}

// safeToResend reports in-doubt steps the worker may send again without
// risking a second effect, once resolveInDoubt found nothing: updates (the
// same values again), creates turned into upserts, and writes whose lookup
// ran and showed the first attempt did not land (Books creates with a
// reference_number, attachments, deletes).
func safeToResend(action string, in map[string]any) bool {
	switch action {
	case "crm.update_record", "books.update_record", "crm.add_attachment", "crm.remove_record", "books.remove_record":
		return true
	case "crm.create_record":
		return in["upsert"] == true
	case "books.create_record":
		_, _, ok := booksRef(in)
		return ok
	}
	return false
}

// booksRef returns the entity and reference_number an interrupted Books
// create can be looked up by; ok is false when there is none (or it is a
// sub-resource create, whose parent's list does not hold it).
func booksRef(in map[string]any) (entity, ref string, ok bool) {
	data, _ := in["data"].(map[string]any)
	ref, _ = data["reference_number"].(string)
	entity, _ = in["entity"].(string)
	return entity, ref, ref != "" && entity != "" && in["parent_id"] == nil
}

// InDoubtError is the dead-letter reason of a step with in_doubt:
// dead_letter that was interrupted after it may have reached Zoho, when
// nothing can tell whether Zoho carried it out. An operator checks Zoho
// and replays the event saying which: `worker dlq replay -in-doubt done`
// (it happened) or `-in-doubt resend` (it did not).
type InDoubtError struct {
	EventID, Step, Action string
	Since                 time.Time // when the interrupted attempt started
}

func (e *InDoubtError) Error() string {
	return fmt.Sprintf("in doubt: %s (%s) was sent at %s and its answer never recorded; zohook cannot tell whether Zoho "+
		"carried it out and the step says in_doubt: dead_letter, so it was not sent again. Check Zoho, then "+
		"`worker dlq replay -in-doubt done %s` if it happened or `-in-doubt resend %s` if it did not",
		e.Step, e.Action, e.Since.UTC().Format(time.RFC3339), e.EventID, e.EventID)
}

// booksSingular maps a Books collection to the key of one entity in its
// answers.
func booksSingular(entity string) string {
	switch entity {
	case "customerpayments", "vendorpayments":
		return "payment"
	case "creditnotes":
		return "creditnote"
	}
	return strings.TrimSuffix(entity, "s")
}

// resolveInDoubt looks, for actions where Zoho allows it, for the result of
// an attempt that may have reached Zoho: a Books entity created with a
// reference_number is found by it; an attachment by its file name and size
// (or its link), created since the attempt started.
func (x *executor) resolveInDoubt(ctx context.Context, action string, in map[string]any, started time.Time) (map[string]any, bool, error) {
	switch action {
	case "crm.add_attachment":
		return x.findAttachment(ctx, in, started)
	case "crm.remove_record", "books.remove_record":
		return x.findRemoved(ctx, action, in)
	case "books.create_record":
	default:
		return nil, false, nil
	}
	entity, ref, ok := booksRef(in)
	if !ok {
		return nil, false, nil
	}
	q := map[string]any{"entity": entity, "search": map[string]any{"reference_number": ref}}
	if org, ok := in["organization_id"]; ok {
		q["organization_id"] = org
	}
	out, err := x.actor.RunAction(ctx, "books.get_records", q)
	x.calls++
	if err != nil {
		return nil, false, classify(err)
	}
	list, _ := out[entity].([]any)
	if len(list) == 0 {
		return nil, false, nil
	}
	return map[string]any{"code": 0, "message": "found by reference_number after an interrupted create", booksSingular(entity): list[0]}, true, nil
}

// findRemoved checks whether an interrupted delete already happened. Zoho
// refuses to delete a record that is gone (CRM: INVALID_DATA "record not
// deleted"; Books: not found), so sending it again would dead-letter an
// event whose delete succeeded. Every record gone: the step is done,
// whoever deleted them. Any still there: the delete is sent again (for
// all of them: Zoho answers per record, and the step fails if one fails).
func (x *executor) findRemoved(ctx context.Context, action string, in map[string]any) (map[string]any, bool, error) {
	var ids []string
	if id, ok := in["id"]; ok && id != nil && fmt.Sprint(id) != "" {
		ids = append(ids, fmt.Sprint(id))
	}
	if list, ok := in["ids"].([]any); ok {
		for _, id := range list {
			ids = append(ids, fmt.Sprint(id))
		}
	}
	if len(ids) == 0 {
		return nil, false, nil
	}
	data := make([]any, 0, len(ids))
	for _, id := range ids {
		var q map[string]any
		if action == "crm.remove_record" {
			q = map[string]any{"module": in["module"], "id": id, "fields": []any{"id"}}
		} else {
			q = maps.Clone(in)
			q["id"] = id
		}
		_, err := x.actor.RunAction(ctx, strings.Replace(action, "remove_record", "get_record", 1), q)
		x.calls++
		if err == nil {
			return nil, false, nil // still there: delete it
		}
		if !zoho.IsNotFound(err) {
			return nil, false, classify(err)
		}
		data = append(data, map[string]any{"code": "SUCCESS", "status": "success", "details": map[string]any{"id": id},
			"message": "record deleted (found gone after an interrupted delete)"})
	}
	if action == "books.remove_record" {
		return map[string]any{"code": 0, "message": "deleted (found gone after an interrupted delete)"}, true, nil
	}
	return map[string]any{"ids": anySlice(ids), "data": data}, true, nil
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// attachmentSkew: how much earlier than our start mark Zoho's Created_Time of
// the attachment our attempt uploaded may read. Zoho's times have whole
// seconds and its clock is not ours; NTP keeps the rest well under this.
const attachmentSkew = 10 * time.Second

// findAttachment looks for the attachment an interrupted crm.add_attachment
// may have uploaded: same file name and size (or same link), created no
// earlier than the attempt's start mark minus attachmentSkew. A same file
// attached by someone else within those seconds would be taken for ours;
// the alternative, uploading again, duplicates it for sure.
func (x *executor) findAttachment(ctx context.Context, in map[string]any, started time.Time) (map[string]any, bool, error) {
	module, _ := in["module"].(string)
	id := fmt.Sprint(in["id"])
	link, _ := in["url"].(string)
	name, _ := in["file_name"].(string)
	size := -1
	switch c := in["content"].(type) {
	case string:
		size = len(c)
	case []byte:
		size = len(c)
	}
	if b, ok := in["content_base64"].(string); ok {
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b)); err == nil {
			size = len(raw)
		}
	}
	if module == "" || id == "" || (link == "" && name == "") {
		return nil, false, nil
	}
	// A record has few attachments; five pages of 200 is far more than a
	// rule's record ever carries.
	for page := 1; page <= 5; page++ {
		out, err := x.actor.RunAction(ctx, "crm.get_attachments", map[string]any{"module": module, "id": id, "page": page, "per_page": 200,
			"fields": []any{"id", "File_Name", "Size", "Created_Time", "$link_url"}})
		x.calls++
		if err != nil {
			return nil, false, classify(err)
		}
		rows, _ := out["data"].([]any)
		for _, r := range rows {
			row, _ := r.(map[string]any)
			created, err := time.Parse(time.RFC3339, fmt.Sprint(row["Created_Time"]))
			if err != nil || created.Before(started.Add(-attachmentSkew)) {
				continue
			}
			match := link != "" && row["$link_url"] == link ||
				link == "" && row["File_Name"] == name && (size < 0 || fmt.Sprint(row["Size"]) == strconv.Itoa(size))
			if match {
				aid := fmt.Sprint(row["id"])
				return map[string]any{"id": aid, "data": []any{map[string]any{"code": "SUCCESS", "status": "success",
					"message": "found after an interrupted upload", "id": aid, "details": map[string]any{"id": aid, "Created_Time": row["Created_Time"]}}}}, true, nil
			}
		}
		info, _ := out["info"].(map[string]any)
		if more, _ := info["more_records"].(bool); !more {
			break
		}
	}
	return nil, false, nil
}

// rememberWrite tells the loop guard about a CRM write zohook just made:
// per record, the values written and the Modified_Time Zoho answered.
func (x *executor) rememberWrite(_ context.Context, action string, in, out map[string]any) {
	if x.loops == nil || (action != "crm.update_record" && action != "crm.create_record") {
		return
	}
	module, _ := in["module"].(string)
	var data []any
	switch d := in["data"].(type) {
	case map[string]any:
		data = []any{d}
	case []any:
		data = d
	}
	results, _ := out["data"].([]any)
	for i, r := range results {
		m, _ := r.(map[string]any)
		details, _ := m["details"].(map[string]any)
		id, _ := details["id"].(string)
		mt, _ := details["Modified_Time"].(string)
		if id == "" {
			continue
		}
		values := map[string]any{}
		if i < len(data) {
			if d, ok := data[i].(map[string]any); ok {
				values = d
			}
		}
		if x.own != nil && id == x.ownID && events.ModuleKey(module) == x.ownModule {
			x.own.Remember(values, mt) // written once with the event's other marks
			continue
		}
		x.loops.Remember(x.connection, module, id, values, mt)
	}
}

// summarize keeps log lines short and free of record contents.
func summarize(action string, out map[string]any) string {
	if id, ok := out["id"].(string); ok && id != "" {
		return "id " + id
	}
	if data, ok := out["data"].([]any); ok {
		return fmt.Sprintf("%d item(s)", len(data))
	}
	for k, v := range out {
		if m, ok := v.(map[string]any); ok {
			for _, idk := range []string{k + "_number", k + "_id"} {
				if s, ok := m[idk].(string); ok {
					return idk + " " + s
				}
			}
		}
	}
	return "ok"
}

// classify marks failures retrying cannot fix as permanent; everything else
// (network, 5xx, 429, token trouble, auth needing a human) is retried with
// backoff, honouring the wait Zoho asked for, until the event runs out of
// deliveries.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *fleet.RefreshError
	if errors.As(err, &re) {
		// No access token until the fleet's next refresh attempt: wait for it
		// in-process like a rate limit, without spending deliveries.
		return &rateLimitedError{err: err, wait: max(time.Until(re.RetryAt), time.Second)}
	}
	if zoho.IsRetryable(err) || zoho.IsAuth(err) || errors.Is(err, context.DeadlineExceeded) {
		if wait, ok := zoho.IsRateLimited(err); ok {
			return &rateLimitedError{err: err, wait: wait}
		}
		return err
	}
	var pe *zoho.PathError
	if errors.As(err, &pe) {
		// Refused before anything was sent (a path built from the event
		// that leaves the API): no retry can change that.
		return worker.Permanent(err)
	}
	if recordMissing(err) {
		return &missingError{err}
	}
	if zoho.MaybeApplied(err) {
		// An earlier attempt may have landed: retry the event, whose next
		// delivery treats the step as in doubt and looks before resending.
		return err
	}
	var ie *zoho.InputError
	var ze *zoho.Error
	var be *zoho.BatchError
	if errors.As(err, &ie) || errors.As(err, &ze) || errors.As(err, &be) {
		return worker.Permanent(err)
	}
	return err
}

// rateLimitedError tells the worker to wait for the limit to clear (what
// Zoho asked, when it said) rather than spend a delivery.
type rateLimitedError struct {
	err  error
	wait time.Duration
}

func (e *rateLimitedError) Error() string             { return e.err.Error() }
func (e *rateLimitedError) Unwrap() error             { return e.err }
func (e *rateLimitedError) RetryAfter() time.Duration { return e.wait }
func (e *rateLimitedError) RateLimited() bool         { return true }

// recordMissing reports Zoho saying the record a call reads or writes does
// not exist: a 204/404 (zoho.ErrNotFound), or a write whose every record
// was refused for its id ("the id given seems to be invalid").
func recordMissing(err error) bool {
	if zoho.IsNotFound(err) {
		return true
	}
	var recs []zoho.RecordError
	var be *zoho.BatchError
	var ze *zoho.Error
	switch {
	case errors.As(err, &be) && be.AllFailed():
		recs = be.Failed
	case errors.As(err, &ze):
		recs = ze.RecordErrors
	}
	if len(recs) == 0 {
		return false
	}
	for _, r := range recs {
		if r.Code != "INVALID_DATA" || r.Details["api_name"] != "id" {
			return false
		}
	}
	return true
}

// missingError: the record is gone. Permanent (no retry brings it back);
// the rule's on_missing decides what that means (rules.ErrRecordMissing).
type missingError struct{ err error }

func (e *missingError) Error() string   { return "record does not exist in Zoho: " + e.err.Error() }
func (e *missingError) Unwrap() []error { return []error{e.err, rules.ErrRecordMissing} }
func (e *missingError) Permanent() bool { return true }

// zohoFields are the log attributes of a Zoho refusal: HTTP status and
// Zoho's code and message.
func zohoFields(err error) []any {
	var ze *zoho.Error
	var be *zoho.BatchError
	switch {
	case errors.As(err, &ze):
		return []any{"status", ze.HTTPStatus, "code", ze.Code, "message", ze.Message}
	case errors.As(err, &be) && len(be.Failed) > 0:
		return []any{"status", 200, "code", be.Failed[0].Code, "message", be.Failed[0].Message, "records_failed", len(be.Failed), "records", be.Total}
	}
	return []any{"err", err}
}
