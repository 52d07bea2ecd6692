package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// LoopGuard keeps, per CRM record and shared by every worker (NATS KV),
// what zohook wrote to the record recently and which changes of it were
// handled:
//
//   - Writes stop loops: the notification Zoho sends about zohook's own
//     write does not run the rules again (a rule that updates its own Deal
//     runs once, not forever). An event is self-caused only with evidence:
//     every field the notification names was written by zohook with the
//     value the record (or the notification) now has, and nothing changed
//     the record after zohook's write (its Modified_Time is zohook's, and
//     the notification is not about an earlier change). A user's change —
//     another field, another value, a later edit, or an edit zohook's
//     write merely overtook — always runs the rules.
//   - Handled changes stop doubles: one CRM change found by reconciliation
//     and also notified (late, or with a server_time a moment off the
//     second-truncated Modified_Time) is handled once.
//
// Reads happen once per event (beside the journal read, so they add no
// waiting); writes go to NATS in the background with compare-and-set
// (merging what other workers wrote) and are visible at once to this
// process, which handles every later event of the record (its partition).
type LoopGuard struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	log *slog.Logger

	mu    sync.Mutex
	local map[string]*recordState // this process's marks not yet certainly in NATS
	wg    sync.WaitGroup
}

// LoopGuardConfig configures the guard. Zero fields take defaults.
type LoopGuardConfig struct {
	Bucket   string           // default "zohook_writes"
	TTL      time.Duration    // how long writes and handled changes are remembered; default DefaultLoopGuardTTL
	Replicas int              // default 1
	KV       events.KVOptions // bounds and reports KV calls (events.BoundKV); default its defaults
	Logger   *slog.Logger
}

// DefaultLoopGuardTTL: how long zohook remembers its writes to a record
// and the changes it handled: longer than Zoho takes to notify, and than
// a reconciliation run lags behind.
const DefaultLoopGuardTTL = 2 * time.Hour

// sameChange: how far apart the times of one change may be, as a
// notification (server_time, ms) and reconciliation (Modified_Time, whole
// seconds) report it.
const sameChange = 2 * time.Second

// recordState is one record's entry.
type recordState struct {
	Writes  []writeMark   `json:"writes,omitempty"`
	Handled []handledMark `json:"handled,omitempty"`
}

// writeMark is one write zohook made to the record.
type writeMark struct {
	Values       map[string]any `json:"values"`                  // field → value written
	ModifiedTime string         `json:"modified_time,omitempty"` // what Zoho answered for the write
	At           time.Time      `json:"at"`
}

// handledMark is one change of the record whose event was handled.
type handledMark struct {
	Change    time.Time `json:"change"` // the change's time (server_time / Modified_Time)
	Reconcile bool      `json:"reconcile,omitempty"`
	EventID   string    `json:"event_id"`
	At        time.Time `json:"at"`
}

// OpenLoopGuard opens (or creates) the guard's bucket.
func OpenLoopGuard(ctx context.Context, js jetstream.JetStream, cfg LoopGuardConfig) (*LoopGuard, error) {
	kv, err := events.OpenKV(ctx, js, LoopGuardSpec(cfg), cfg.KV)
	if err != nil {
		return nil, fmt.Errorf("loop guard: %w", err)
	}
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = DefaultLoopGuardTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LoopGuard{kv: kv, ttl: ttl, log: log, local: map[string]*recordState{}}, nil
}

// LoopGuardSpec is the loop guard's bucket in the NATS layout.
func LoopGuardSpec(cfg LoopGuardConfig) events.KVSpec {
	if cfg.Bucket == "" {
		cfg.Bucket = "zohook_writes"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLoopGuardTTL
	}
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "zohook's own recent CRM writes and handled changes, per record",
		TTL:         cfg.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		History:     1,
	}}
}

func markKey(conn, module, id string) string {
	return "w." + events.Token(conn) + "." + events.Token(events.ModuleKey(module)) + "." + events.Token(id)
}

// RecordState is what the guard knows about one record for one event.
// Marks for the record made while the event runs (zohook's writes to it,
// the handled change) are kept and written once, by Flush.
type RecordState struct {
	g       *LoopGuard
	key     string
	s       recordState
	rev     uint64 // of the entry read (0: none)
	pending recordState
}

// Read returns the record's state (one KV read merged with this process's
// marks still on their way to NATS).
func (g *LoopGuard) Read(ctx context.Context, conn, module, id string) (*RecordState, error) {
	key := markKey(conn, module, id)
	s, rev, err := g.get(ctx, key)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if l := g.local[key]; l != nil {
		s = merge(s, *l)
	}
	g.mu.Unlock()
	return &RecordState{g: g, key: key, s: s.prune(time.Now(), g.ttl), rev: rev}, nil
}

// Flush writes the marks the event made for its record, in one write in
// the background (see LoopGuard).
func (rs *RecordState) Flush() {
	if rs == nil || len(rs.pending.Writes) == 0 && len(rs.pending.Handled) == 0 {
		return
	}
	rs.g.updateAt(rs.key, rs.s, rs.pending, rs.rev, true)
	rs.pending = recordState{}
}

// Notification is what SelfCaused looks at.
type Notification struct {
	Changed    []string       // fields the notification names
	Values     map[string]any // their new values, when Zoho sent them
	ServerTime time.Time      // when Zoho says the change happened (zero: unknown)
}

// SelfCaused reports whether the notification was caused by zohook's own
// write (see LoopGuard). record is the record as loaded now (nil: not
// loaded); when neither the notification nor the record can tell,
// currentModifiedTime (a Zoho read) is asked rather than guessing.
func (rs *RecordState) SelfCaused(ctx context.Context, n Notification, record map[string]any,
	currentModifiedTime func(ctx context.Context) (string, error)) (bool, error) {
	if rs == nil || len(rs.s.Writes) == 0 {
		return false, nil
	}
	last := rs.s.Writes[len(rs.s.Writes)-1]
	lastMT, _ := time.Parse(time.RFC3339, last.ModifiedTime)
	if !n.ServerTime.IsZero() && !lastMT.IsZero() && n.ServerTime.Before(lastMT.Add(-sameChange/2)) {
		return false, nil // about a change made before zohook's write
	}
	written := rs.written()
	mt, _ := record["Modified_Time"].(string)
	if len(n.Changed) > 0 {
		for _, f := range n.Changed {
			v, ok := written[f]
			if !ok {
				return false, nil // a field zohook did not write
			}
			if now, ok := n.Values[f]; ok && !sameValue(now, v) {
				return false, nil // the notification shows another value
			}
			if now, ok := record[f]; ok && !sameValue(now, v) {
				return false, nil // the record holds another value now
			}
		}
		if mt != "" && last.ModifiedTime != "" {
			return sameInstant(mt, last.ModifiedTime), nil // a later edit of any field is evidence
		}
		return true, nil
	}
	if last.ModifiedTime == "" {
		return false, nil // no evidence: run the rules rather than risk losing a change
	}
	if mt == "" && currentModifiedTime != nil {
		var err error
		if mt, err = currentModifiedTime(ctx); err != nil {
			return false, err
		}
	}
	return mt != "" && sameInstant(mt, last.ModifiedTime), nil
}

// written is the last value zohook wrote to each field.
func (rs *RecordState) written() map[string]any {
	out := map[string]any{}
	for _, w := range rs.s.Writes {
		for f, v := range w.Values {
			out[f] = v
		}
	}
	return out
}

// HandledElsewhere returns the event that already handled this change
// through the other path (a notification for a reconciled change, or the
// reverse), "" when none did.
func (rs *RecordState) HandledElsewhere(change time.Time, reconcile bool, eventID string) string {
	if rs == nil || change.IsZero() {
		return ""
	}
	for _, h := range rs.s.Handled {
		if h.EventID == eventID || h.Reconcile == reconcile {
			continue // the same event again, or a distinct change through the same path
		}
		if d := h.Change.Sub(change); d < sameChange && d > -sameChange {
			return h.EventID
		}
	}
	return ""
}

// Handled records that the event of this change was handled.
func (rs *RecordState) Handled(change time.Time, reconcile bool, eventID string) {
	if rs == nil || change.IsZero() {
		return
	}
	rs.pending = merge(rs.pending, recordState{Handled: []handledMark{{Change: change.UTC(), Reconcile: reconcile, EventID: eventID, At: time.Now().UTC()}}})
}

// Remember records a write zohook made to this record (see
// LoopGuard.Remember); it is written with Flush.
func (rs *RecordState) Remember(values map[string]any, modifiedTime string) {
	if rs == nil {
		return
	}
	w := writeMark{Values: values, ModifiedTime: modifiedTime, At: time.Now().UTC()}
	rs.pending = merge(rs.pending, recordState{Writes: []writeMark{w}})
	rs.s = merge(rs.s, recordState{Writes: []writeMark{w}})
}

// Remember records that zohook wrote values to a record; modifiedTime is
// the Modified_Time Zoho returned for the write ("" if unknown).
func (g *LoopGuard) Remember(conn, module, id string, values map[string]any, modifiedTime string) {
	g.update(markKey(conn, module, id), recordState{Writes: []writeMark{{Values: values, ModifiedTime: modifiedTime, At: time.Now().UTC()}}})
}

// update adds marks: visible to this process at once, written to NATS in
// the background (merged with what others wrote, compare-and-set).
func (g *LoopGuard) update(key string, add recordState) {
	g.updateAt(key, recordState{}, add, 0, false)
}

// updateAt is update knowing the entry when known (base, read at revision
// rev; 0: there was none): the write then needs no read first unless
// another worker wrote meanwhile.
func (g *LoopGuard) updateAt(key string, base, add recordState, rev uint64, known bool) {
	g.mu.Lock()
	l := g.local[key]
	if l == nil {
		l = &recordState{}
		g.local[key] = l
	}
	*l = merge(*l, add)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.store(ctx, key, base, add, rev, known); err != nil {
			g.log.Warn("loop guard not updated in NATS; other workers may not see zohook's write or a handled change", "key", key, "err", err)
			return
		}
		// In NATS now: the local copy is only needed until the write lands
		// (a later read sees it there), but keeping it until it expires
		// costs little and covers a read answered by a lagging replica.
		g.mu.Lock()
		if l := g.local[key]; l != nil {
			*l = l.prune(time.Now(), g.ttl)
			if len(l.Writes) == 0 && len(l.Handled) == 0 {
				delete(g.local, key)
			}
		}
		g.mu.Unlock()
	}()
}

// Wait waits for background writes (tests, shutdown).
func (g *LoopGuard) Wait() { g.wg.Wait() }

func (g *LoopGuard) store(ctx context.Context, key string, base, add recordState, knownRev uint64, known bool) error {
	for try := 0; try < 10; try++ {
		// First with what the event read (no read of our own, also when it
		// found no entry: a record's first event then costs a create
		// alone); after a conflict (another worker wrote) from a fresh read.
		cur, rev := base, knownRev
		if !known || try > 0 {
			var err error
			if cur, rev, err = g.get(ctx, key); err != nil {
				return err
			}
		}
		next := merge(cur, add).prune(time.Now(), g.ttl)
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = g.kv.Create(ctx, key, b)
		} else {
			_, err = g.kv.Update(ctx, key, b, rev)
		}
		if err == nil || !(errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)) {
			return err
		}
		// Another worker wrote meanwhile (or our own retried write
		// landed): read again and merge; a merge is idempotent.
	}
	return errors.New("loop guard: too many concurrent updates")
}

func (g *LoopGuard) get(ctx context.Context, key string) (recordState, uint64, error) {
	e, err := g.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return recordState{}, 0, nil
	}
	if err != nil {
		return recordState{}, 0, fmt.Errorf("loop guard: %w", err)
	}
	var s recordState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		// An entry of an older format: start afresh rather than fail events.
		return recordState{}, e.Revision(), nil
	}
	return s, e.Revision(), nil
}

// merge is the union of two states (marks deduplicated), in time order.
func merge(a, b recordState) recordState {
	out := recordState{Writes: slices.Clone(a.Writes), Handled: slices.Clone(a.Handled)}
	for _, w := range b.Writes {
		if !slices.ContainsFunc(out.Writes, func(x writeMark) bool { return x.At.Equal(w.At) && x.ModifiedTime == w.ModifiedTime }) {
			out.Writes = append(out.Writes, w)
		}
	}
	for _, h := range b.Handled {
		if !slices.ContainsFunc(out.Handled, func(x handledMark) bool { return x.EventID == h.EventID && x.Change.Equal(h.Change) }) {
			out.Handled = append(out.Handled, h)
		}
	}
	slices.SortFunc(out.Writes, func(x, y writeMark) int { return x.At.Compare(y.At) })
	slices.SortFunc(out.Handled, func(x, y handledMark) int { return x.At.Compare(y.At) })
	return out
}

// maxMarks bounds one record's entry.
const maxMarks = 32

// prune drops marks older than ttl and keeps the newest maxMarks.
func (s recordState) prune(now time.Time, ttl time.Duration) recordState {
	s.Writes = slices.DeleteFunc(slices.Clone(s.Writes), func(w writeMark) bool { return now.Sub(w.At) > ttl })
	s.Handled = slices.DeleteFunc(slices.Clone(s.Handled), func(h handledMark) bool { return now.Sub(h.At) > ttl })
	if len(s.Writes) > maxMarks {
		s.Writes = s.Writes[len(s.Writes)-maxMarks:]
	}
	if len(s.Handled) > maxMarks {
		s.Handled = s.Handled[len(s.Handled)-maxMarks:]
	}
	return s
}

// sameInstant compares Zoho timestamps, which may differ in offset notation.
func sameInstant(a, b string) bool {
	if a == b {
		return true
	}
	ta, errA := time.Parse(time.RFC3339, a)
	tb, errB := time.Parse(time.RFC3339, b)
	return errA == nil && errB == nil && ta.Equal(tb)
}

// sameValue compares a value zohook wrote with one Zoho reports: Zoho
// sends numbers as strings in notifications and lookups as {id, name}
// objects, so values are compared by their JSON text, then as text, and a
// lookup by its id.
func sameValue(a, b any) bool {
	norm := func(v any) string {
		if m, ok := v.(map[string]any); ok {
			if id, ok := m["id"]; ok {
				return fmt.Sprint(id)
			}
		}
		switch v.(type) {
		case string, float64, int, int64, json.Number, bool, nil:
			return fmt.Sprint(v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	return norm(a) == norm(b)
}
