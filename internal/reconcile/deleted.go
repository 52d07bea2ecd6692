package reconcile

import (
	"context"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho"
)

// DeleteTolerance is how far before a deletion's deleted_time a seen mark
// still counts as its notification. A notification is seen at its
// server_time (milliseconds, Zoho's notification service clock; see Seen);
// deleted_time is the CRM's time truncated to the second. So the
// notification of a deletion at 10:00:00.700 is seen at 10:00:00.7xx while
// deleted_time says 10:00:00: the mark is normally at or after it, and 2 s
// absorbs the truncation plus clock skew between Zoho's services. The price:
// a change notified less than 2 s before an unnotified deletion of the same
// record hides that deletion. Marks older than that are an earlier change,
// so the deletion is published.
const DeleteTolerance = 2 * time.Second

// deletedSeenModule names the seen-store entries remembering, per record,
// the deleted_time of the last deletion the job handled ("-" cannot occur in
// a Zoho module API name, so it never collides with a module's own marks).
func deletedSeenModule(module string) string { return "deleted-" + module }

// deletions walks the module's deleted-records list since its own cursor
// (kind "deleted") and publishes the deletions no notification delivered as
// delete events. Zoho documents no order for this list, so the whole list
// since the cursor is read and the cursor moves to the newest deletion
// handled, once the walk is complete.
func (j *Job) deletions(ctx context.Context, module string) (Stats, error) {
	var st Stats
	key := j.cursorKey("deleted") + "." + events.Token(module)
	cursor, err := j.loadCursor(ctx, key)
	if err != nil {
		return st, err
	}
	now := j.cfg.Clock()
	if cursor.IsZero() {
		cursor = now.Add(-j.cfg.Lookback)
	}
	upper := now.Add(-j.cfg.Settle)
	opts := &zoho.DeletedListOptions{PerPage: 200, Since: cursor.Add(-j.cfg.Overlap).Truncate(time.Second)}
	newCursor := cursor
	var batch []pending
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ps, err := j.publish(ctx, batch)
		st.Deletions += ps.Published
		st.Duplicates += ps.Duplicates
		batch = batch[:0]
		return err
	}
	for d, err := range j.crm.DeletedRecords(ctx, module, opts) {
		if err != nil {
			return st, err
		}
		if d.ID == "" || d.DeletedTime.IsZero() {
			j.log.Warn("reconcile: deleted record without id or deleted_time skipped", "module", module, "id", d.ID)
			continue
		}
		if d.DeletedTime.After(upper) {
			// Left to the notifications; the cursor stays at or below upper,
			// so the next run lists it again.
			continue
		}
		st.Scanned++
		seen, err := j.deletionSeen(ctx, module, d)
		if err != nil {
			return st, err
		}
		if seen {
			st.AlreadySeen++
			j.cfg.Metrics.skipped.WithLabelValues(connLabel(j.cfg.Connection), module).Inc()
		} else {
			batch = append(batch, pending{env: j.deletionEnvelope(module, d, now), module: module, id: d.ID,
				modified: d.DeletedTime, deletion: true})
		}
		if d.DeletedTime.After(newCursor) {
			newCursor = d.DeletedTime
		}
		if len(batch) >= batchSize {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if newCursor.After(cursor) {
		return st, j.saveCursor(ctx, key, newCursor)
	}
	return st, nil
}

// deletionSeen reports whether a deletion was already received or published.
//
//   - A mark of the record at or after deleted_time − DeleteTolerance is its
//     delete notification (or an earlier run's publication). The deletion
//     is then also remembered under deletedSeenModule.
//   - A "permanent" entry of a record whose last handled deletion is
//     remembered, and which was not changed since, is that same deletion
//     purged from the recycle bin. Zoho may list it with the purge time
//     (UNCONFIRMED); without this rule every deletion would be published a
//     second time when the bin is emptied, or 60 days later.
func (j *Job) deletionSeen(ctx context.Context, module string, d zoho.DeletedRecord) (bool, error) {
	conn := j.cfg.Connection
	seenAt, ok, err := j.seen.Get(ctx, conn, module, d.ID)
	if err != nil {
		return false, err
	}
	if ok && !seenAt.Before(d.DeletedTime.Add(-DeleteTolerance)) {
		return true, j.seen.MarkSeen(ctx, conn, deletedSeenModule(module), d.ID, d.DeletedTime)
	}
	if d.Type != zoho.DeletedPermanent {
		return false, nil
	}
	deletedAt, handled, err := j.seen.Get(ctx, conn, deletedSeenModule(module), d.ID)
	if err != nil {
		return false, err
	}
	return handled && !seenAt.After(deletedAt.Add(DeleteTolerance)), nil
}

func (j *Job) deletionEnvelope(module string, d zoho.DeletedRecord, now time.Time) *events.Envelope {
	conn := j.cfg.Connection
	values := map[string]any{"deleted_time": d.RawDeletedTime, "type": d.Type}
	if d.DisplayName != "" {
		values["display_name"] = d.DisplayName
	}
	if d.DeletedBy != nil {
		values["deleted_by"] = map[string]any{"name": d.DeletedBy.Name, "id": d.DeletedBy.ID}
	}
	return &events.Envelope{
		Version: events.EnvelopeVersion,
		// Same deletion → same id, whichever run finds it (see recordEnvelope).
		ID: events.DeriveID(string(events.SourceReconcile), conn, module, d.ID, "deleted",
			d.DeletedTime.UTC().Format(time.RFC3339)),
		Source:     events.SourceCRMNotify,
		Connection: conn,
		Module:     module,
		Operation:  events.OpDelete,
		RecordID:   d.ID,
		Values:     values,
		ChannelID:  ChannelID,
		ServerTime: d.DeletedTime.UnixMilli(),
		ReceivedAt: now.UTC(),
	}
}
