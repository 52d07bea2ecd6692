package console

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zohook/zohook/internal/worker"
)

// Event statuses, as the console shows and filters them. They sum up the
// worker's outcome records (worker.OutcomeRecord: outcome and detail).
const (
	StatusWaiting      = "waiting"       // stored, no run reported yet
	StatusDone         = "done"          // acked: the rules ran (or every step came from the journal)
	StatusSkipped      = "skipped"       // acked without running a step: no rule, condition false, self-caused
	StatusRetrying     = "retrying"      // a run failed; JetStream redelivers it later
	StatusDeadLettered = "dead_lettered" // in ZOHOOK_DLQ
	StatusRateLimited  = "rate_limited"  // waited for a Zoho rate limit
	StatusHeld         = "held"          // held behind an earlier event of its record, or claimed elsewhere
	StatusOther        = "other"
)

var statusNames = [...]string{StatusWaiting, StatusDone, StatusSkipped, StatusRetrying, StatusDeadLettered, StatusRateLimited, StatusHeld, StatusOther}

// Statuses lists the statuses in display order.
func Statuses() []string { return slices.Clone(statusNames[:]) }

func statusCode(outcome, detail string) uint8 {
	switch outcome {
	case "":
		return 0
	case worker.OutcomeAcked:
		switch detail {
		case "", "done", "replayed":
			return 1
		}
		return 2
	case worker.OutcomeRetried:
		return 3
	case worker.OutcomeDeadLettered:
		return 4
	case worker.OutcomeRateLimited:
		return 5
	case worker.OutcomeHeld:
		return 6
	}
	return 7
}

// eventKey is an event id in 16 bytes: the id's own bytes when it is 32
// lower-case hex digits (every id events.DeriveID makes), else a hash of it
// (the id itself is then kept aside).
type eventKey [16]byte

func keyOf(id string) (k eventKey, plain bool) {
	if len(id) == 32 && isLowerHex(id) {
		_, _ = hex.Decode(k[:], []byte(id))
		return k, true
	}
	h := sha256.Sum256([]byte(id))
	copy(k[:], h[:16])
	return k, false
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// numericRecord packs a Zoho record id (digits, no leading zero, at most 19
// of them) in a uint64; other ids are kept aside as strings.
func numericRecord(s string) (uint64, bool) {
	if s == "" || len(s) > 19 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// Row flags.
const (
	rowGone   uint8 = 1 << iota // a later appearance of the same event id (a replay) replaced it
	rowOddID                    // the id is kept in oddID
	rowOddRec                   // the record id is kept in oddRec
)

// row is one event in the index: about 80 bytes. Strings with few distinct
// values (source, connection, module, operation, outcome, detail) are
// interned as uint16 codes.
type row struct {
	seq     uint64 // history stream sequence
	workSeq uint64 // its sequence in the work stream (outcome records name it)
	at      int64  // when the history stored it, unix ns
	outAt   int64  // when the latest run was reported, unix ns
	rec     uint64 // numeric record id (see numericRecord)
	key     eventKey
	src     uint16
	conn    uint16
	mod     uint16
	op      uint16
	outcome uint16
	detail  uint16
	runs    uint32
	calls   uint32
	replays uint16
	status  uint8
	flags   uint8
}

// interner maps the few distinct values of a field to small codes; 0 is "".
type interner struct {
	ids  map[string]uint16
	strs []string
}

func newInterner() interner { return interner{ids: map[string]uint16{"": 0}, strs: []string{""}} }

const internOverflow = "(too many distinct values)"

func (in *interner) code(s string) uint16 {
	if c, ok := in.ids[s]; ok {
		return c
	}
	if len(in.strs) >= 1<<16-1 {
		return in.code(internOverflow)
	}
	c := uint16(len(in.strs))
	in.ids[s] = c
	in.strs = append(in.strs, s)
	return c
}

// IndexedEvent is what the index keeps of one stored event.
type IndexedEvent struct {
	Seq        uint64 // history sequence
	WorkSeq    uint64 // work stream sequence (0: unknown)
	At         time.Time
	ID         string
	Source     string
	Connection string
	Module     string
	Operation  string
	RecordID   string
}

// outcomeLite is what the index keeps of an outcome record.
type outcomeLite struct {
	seq             uint64 // work stream sequence
	at              int64
	outcome, detail string
	calls           int
}

// EventSummary is one event as the events list shows it (and the JSON API
// returns it).
type EventSummary struct {
	ID         string    `json:"id"`
	Seq        uint64    `json:"seq"` // in the history stream; the paging cursor
	ReceivedAt time.Time `json:"received_at"`
	Source     string    `json:"source"`
	Connection string    `json:"connection"`
	Module     string    `json:"module"`
	Operation  string    `json:"operation"`
	RecordID   string    `json:"record_id"`
	Status     string    `json:"status"`
	Outcome    string    `json:"outcome,omitempty"` // the worker's word for the last run
	Detail     string    `json:"detail,omitempty"`  // the handler's: done, no_rule, condition_false, self_caused, replayed, failed
	LastRunAt  time.Time `json:"last_run_at,omitzero"`
	Runs       int       `json:"runs"`
	Calls      int       `json:"zoho_calls"`
	Replays    int       `json:"replays,omitempty"`
}

// Index is the console's in-memory index of the event history: one row per
// event id (its latest appearance in ZOHOOK_HISTORY), joined with the
// latest outcome record of ZOHOOK_OUTCOMES. Rows are kept in history order,
// so "newest first" is a walk from the end, a page cursor is a sequence
// number (binary search), and a time range is two binary searches. It holds
// at most max rows: beyond, the oldest leave the index (not the stream).
// It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	rows    []row
	base    int64 // absolute position of rows[0]
	byID    map[eventKey]int64
	oddID   map[uint64]string // by seq, for rowOddID
	oddRec  map[uint64]string // by seq, for rowOddRec
	strs    interner
	max     int
	pending map[eventKey]outcomeLite // outcomes whose event is not indexed yet
	// dropped: rows that left for the cap (the index no longer covers the
	// whole history); trimmedTo: the history's first sequence, after retention.
	dropped   uint64
	trimmedTo uint64
	lastSeq   uint64

	subsMu sync.Mutex
	subs   map[*Subscription]struct{}
	live   atomic.Bool // broadcast changes (after the initial load)

	historyLoaded  atomic.Bool
	outcomesLoaded atomic.Bool
	loadStart      time.Time
	loadTook       atomic.Int64
}

// maxPending bounds the outcomes waiting for their event's row.
const maxPending = 100_000

// NewIndex returns an empty index of at most max events.
func NewIndex(max int) *Index {
	if max <= 0 {
		max = DefaultIndexEvents
	}
	return &Index{byID: map[eventKey]int64{}, oddID: map[uint64]string{}, oddRec: map[uint64]string{},
		strs: newInterner(), max: max, pending: map[eventKey]outcomeLite{}, subs: map[*Subscription]struct{}{},
		loadStart: time.Now()}
}

// DefaultIndexEvents is the index's default size: about 130 bytes an
// event with its id map, so about 65 MB when full.
const DefaultIndexEvents = 500_000

// AddEvent indexes a stored event. An id already indexed (a replayed
// event) moves to its new place; the old row stays behind as a tombstone.
func (ix *Index) AddEvent(ev IndexedEvent) {
	key, plain := keyOf(ev.ID)
	r := row{seq: ev.Seq, workSeq: ev.WorkSeq, at: ev.At.UnixNano(), key: key}
	ix.mu.Lock()
	if ev.Seq <= ix.lastSeq {
		ix.mu.Unlock()
		return // seen already (a feed restarted from an earlier sequence)
	}
	ix.lastSeq = ev.Seq
	r.src, r.conn, r.mod, r.op = ix.strs.code(ev.Source), ix.strs.code(ev.Connection), ix.strs.code(ev.Module), ix.strs.code(ev.Operation)
	if !plain {
		r.flags |= rowOddID
		ix.oddID[ev.Seq] = ev.ID
	}
	if n, ok := numericRecord(ev.RecordID); ok {
		r.rec = n
	} else {
		r.flags |= rowOddRec
		ix.oddRec[ev.Seq] = ev.RecordID
	}
	if pos, ok := ix.byID[key]; ok {
		old := &ix.rows[pos-ix.base]
		old.flags |= rowGone
		r.runs, r.calls, r.replays = old.runs, old.calls, old.replays+1
	}
	if o, ok := ix.pending[key]; ok {
		delete(ix.pending, key)
		ix.applyLocked(&r, o)
	}
	ix.rows = append(ix.rows, r)
	ix.byID[key] = ix.base + int64(len(ix.rows)) - 1
	if len(ix.rows) > ix.max {
		ix.dropLocked(len(ix.rows) - ix.max)
		ix.dropped++
	}
	sum := ix.summaryLocked(&ix.rows[len(ix.rows)-1])
	ix.mu.Unlock()
	ix.broadcast(sum)
}

// AddOutcome joins an outcome record to its event's row.
func (ix *Index) AddOutcome(rec *worker.OutcomeRecord) {
	if rec.EventID == "" {
		return
	}
	o := outcomeLite{seq: rec.Seq, at: rec.At.UnixNano(), outcome: rec.Outcome, detail: rec.Detail, calls: rec.Calls}
	key, _ := keyOf(rec.EventID)
	ix.mu.Lock()
	pos, ok := ix.byID[key]
	if !ok {
		if p, had := ix.pending[key]; !had || p.at <= o.at {
			if len(ix.pending) >= maxPending && !had {
				for k := range ix.pending { // drop any one: the oldest are the likeliest orphans
					delete(ix.pending, k)
					break
				}
			}
			ix.pending[key] = o
		}
		ix.mu.Unlock()
		return
	}
	r := &ix.rows[pos-ix.base]
	if !ix.applyLocked(r, o) {
		ix.mu.Unlock()
		return
	}
	sum := ix.summaryLocked(r)
	ix.mu.Unlock()
	ix.broadcast(sum)
}

// applyLocked counts a run and makes it the row's status when it is the
// latest run of this appearance. It reports whether the row changed.
func (ix *Index) applyLocked(r *row, o outcomeLite) bool {
	r.runs++
	r.calls += uint32(max(o.calls, 0))
	if r.workSeq != 0 && o.seq != 0 && o.seq < r.workSeq {
		return true // a run of an earlier appearance (before a replay): counted, not the status
	}
	if o.at < r.outAt {
		return true
	}
	r.outAt = o.at
	r.outcome, r.detail = ix.strs.code(o.outcome), ix.strs.code(o.detail)
	r.status = statusCode(o.outcome, o.detail)
	return true
}

// dropLocked removes the n oldest rows.
func (ix *Index) dropLocked(n int) {
	n = min(n, len(ix.rows))
	for i := range n {
		r := &ix.rows[i]
		if pos, ok := ix.byID[r.key]; ok && pos == ix.base+int64(i) {
			delete(ix.byID, r.key)
		}
		if r.flags&rowOddID != 0 {
			delete(ix.oddID, r.seq)
		}
		if r.flags&rowOddRec != 0 {
			delete(ix.oddRec, r.seq)
		}
	}
	ix.base += int64(n)
	if n == len(ix.rows) {
		ix.rows = nil
		return
	}
	// Dropping one row per append (the cap) needs no copy: append moves the
	// live rows to a new array when the old one is full, leaving the dead
	// front behind. A large trim (retention) copies at once.
	if n > len(ix.rows)/2 {
		ix.rows = append(make([]row, 0, len(ix.rows)-n+1024), ix.rows[n:]...)
		return
	}
	ix.rows = ix.rows[n:]
}

// TrimBefore drops the events the history no longer holds (its first
// sequence is first), and outcomes waiting for events older than the
// index.
func (ix *Index) TrimBefore(first uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.trimmedTo = max(ix.trimmedTo, first)
	n := sort.Search(len(ix.rows), func(i int) bool { return ix.rows[i].seq >= first })
	if n > 0 {
		ix.dropLocked(n)
	}
	if ix.historyLoaded.Load() && len(ix.rows) > 0 {
		oldest := ix.rows[0].at
		for k, o := range ix.pending {
			if o.at < oldest {
				delete(ix.pending, k)
			}
		}
	}
}

func (ix *Index) summaryLocked(r *row) EventSummary {
	s := EventSummary{
		Seq: r.seq, ReceivedAt: time.Unix(0, r.at).UTC(),
		Source: ix.strs.strs[r.src], Connection: ix.strs.strs[r.conn], Module: ix.strs.strs[r.mod], Operation: ix.strs.strs[r.op],
		Status: statusNames[r.status], Outcome: ix.strs.strs[r.outcome], Detail: ix.strs.strs[r.detail],
		Runs: int(r.runs), Calls: int(r.calls), Replays: int(r.replays),
	}
	if r.outAt != 0 {
		s.LastRunAt = time.Unix(0, r.outAt).UTC()
	}
	if r.flags&rowOddID != 0 {
		s.ID = ix.oddID[r.seq]
	} else {
		s.ID = hex.EncodeToString(r.key[:])
	}
	if r.flags&rowOddRec != 0 {
		s.RecordID = ix.oddRec[r.seq]
	} else {
		s.RecordID = strconv.FormatUint(r.rec, 10)
	}
	return s
}

// Lookup returns the indexed event with that id.
func (ix *Index) Lookup(id string) (EventSummary, bool) {
	key, _ := keyOf(id)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	pos, ok := ix.byID[key]
	if !ok {
		return EventSummary{}, false
	}
	r := &ix.rows[pos-ix.base]
	if r.flags&rowOddID != 0 && ix.oddID[r.seq] != id {
		return EventSummary{}, false
	}
	return ix.summaryLocked(r), true
}

// Filter selects events. Empty fields match everything; text fields match
// case-insensitively and exactly.
type Filter struct {
	Source     string `json:"source,omitempty"`
	Connection string `json:"connection,omitempty"`
	Module     string `json:"module,omitempty"`
	Operation  string `json:"operation,omitempty"`
	RecordID   string `json:"record_id,omitempty"`
	// Status: a status (see Statuses) or a handler detail (no_rule,
	// condition_false, self_caused, replayed, failed, ...).
	Status string    `json:"status,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
}

// IsZero reports whether the filter selects every event.
func (f Filter) IsZero() bool { return f == Filter{} }

// Page is one page of the events list, newest first.
type Page struct {
	Events []EventSummary `json:"events"`
	// Older: pass as before= for the next (older) page; empty on the last.
	Older uint64 `json:"older,omitempty"`
	// Newer: pass as after= for the previous (newer) page; empty on the first.
	Newer uint64 `json:"newer,omitempty"`
	// Scanned: index rows looked at to fill the page.
	Scanned int `json:"scanned"`
}

// matcher is a filter compiled against the intern table.
type matcher struct {
	src, conn, mod, op []bool // by code; nil = any
	status             int    // -1 any
	detail             []bool // by code; nil = no detail filter
	rec                uint64
	recStr             string
	hasRec             bool
}

func (ix *Index) compileLocked(f Filter) matcher {
	set := func(v string) []bool {
		if v == "" {
			return nil
		}
		out := make([]bool, len(ix.strs.strs))
		for i, s := range ix.strs.strs {
			out[i] = s != "" && strings.EqualFold(s, v)
		}
		return out
	}
	m := matcher{src: set(f.Source), conn: set(f.Connection), mod: set(f.Module), op: set(f.Operation), status: -1}
	if f.Status != "" {
		if i := slices.Index(statusNames[:], strings.ToLower(f.Status)); i >= 0 {
			m.status = i
		} else {
			m.detail = set(f.Status)
		}
	}
	if f.RecordID != "" {
		m.hasRec = true
		if n, ok := numericRecord(f.RecordID); ok {
			m.rec = n
		} else {
			m.recStr = f.RecordID
		}
	}
	return m
}

func in(set []bool, c uint16) bool { return set == nil || (int(c) < len(set) && set[c]) }

func (ix *Index) matchLocked(m *matcher, r *row) bool {
	if r.flags&rowGone != 0 {
		return false
	}
	if m.hasRec {
		if m.recStr == "" {
			if r.flags&rowOddRec != 0 || r.rec != m.rec {
				return false
			}
		} else if r.flags&rowOddRec == 0 || ix.oddRec[r.seq] != m.recStr {
			return false
		}
	}
	if m.status >= 0 && int(r.status) != m.status {
		return false
	}
	return in(m.src, r.src) && in(m.conn, r.conn) && in(m.mod, r.mod) && in(m.op, r.op) && in(m.detail, r.detail)
}

// Matches reports whether an event summary passes f (for live updates).
func (f Filter) Matches(s EventSummary) bool {
	eq := func(want, have string) bool { return want == "" || strings.EqualFold(want, have) }
	if !eq(f.Source, s.Source) || !eq(f.Connection, s.Connection) || !eq(f.Module, s.Module) || !eq(f.Operation, s.Operation) {
		return false
	}
	if f.RecordID != "" && f.RecordID != s.RecordID {
		return false
	}
	if f.Status != "" && !strings.EqualFold(f.Status, s.Status) && !strings.EqualFold(f.Status, s.Detail) {
		return false
	}
	if !f.Since.IsZero() && s.ReceivedAt.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && s.ReceivedAt.After(f.Until) {
		return false
	}
	return true
}

// MaxPage is the largest page List returns.
const MaxPage = 500

// List returns up to limit events matching f, newest first: older than
// sequence before (when not 0), or, with after (when not 0), the oldest
// events newer than after (the previous page).
func (ix *Index) List(f Filter, before, after uint64, limit int) Page {
	limit = min(max(limit, 1), MaxPage)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m := ix.compileLocked(f)
	lo, hi := 0, len(ix.rows)
	if !f.Since.IsZero() {
		t := f.Since.UnixNano()
		lo = sort.Search(len(ix.rows), func(i int) bool { return ix.rows[i].at >= t })
	}
	if !f.Until.IsZero() {
		t := f.Until.UnixNano()
		hi = sort.Search(len(ix.rows), func(i int) bool { return ix.rows[i].at > t })
	}
	page := Page{Events: []EventSummary{}}
	var picked []int
	if after > 0 {
		start := max(lo, sort.Search(len(ix.rows), func(i int) bool { return ix.rows[i].seq > after }))
		for i := start; i < hi && len(picked) <= limit; i++ {
			page.Scanned++
			if ix.matchLocked(&m, &ix.rows[i]) {
				picked = append(picked, i)
			}
		}
		if len(picked) > limit {
			picked = picked[:limit]
			page.Newer = ix.rows[picked[limit-1]].seq
		}
		slices.Reverse(picked)
		if len(picked) > 0 {
			page.Older = ix.rows[picked[len(picked)-1]].seq
		}
	} else {
		end := hi
		if before > 0 {
			end = min(hi, sort.Search(len(ix.rows), func(i int) bool { return ix.rows[i].seq >= before }))
		}
		for i := end - 1; i >= lo && len(picked) <= limit; i-- {
			page.Scanned++
			if ix.matchLocked(&m, &ix.rows[i]) {
				picked = append(picked, i)
			}
		}
		if len(picked) > limit {
			picked = picked[:limit]
			page.Older = ix.rows[picked[limit-1]].seq
		}
		if before > 0 && len(picked) > 0 {
			page.Newer = ix.rows[picked[0]].seq
		}
	}
	for _, i := range picked {
		page.Events = append(page.Events, ix.summaryLocked(&ix.rows[i]))
	}
	return page
}

// Values returns the distinct values seen of a field ("source",
// "connection", "module", "operation"), sorted, for the filter menus.
func (ix *Index) Values(field string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	seen := make([]bool, len(ix.strs.strs))
	for i := range ix.rows {
		r := &ix.rows[i]
		switch field {
		case "source":
			seen[r.src] = true
		case "connection":
			seen[r.conn] = true
		case "module":
			seen[r.mod] = true
		case "operation":
			seen[r.op] = true
		}
	}
	var out []string
	for c, ok := range seen {
		if ok && c != 0 {
			out = append(out, ix.strs.strs[c])
		}
	}
	slices.Sort(out)
	return out
}

// IndexStats describes the index for the health page.
type IndexStats struct {
	Events   int       `json:"events"` // rows, replaced appearances included
	Capacity int       `json:"capacity"`
	Oldest   time.Time `json:"oldest,omitzero"`
	Newest   time.Time `json:"newest,omitzero"`
	// Complete: the index holds every event the history stream holds (none
	// left it for the cap).
	Complete       bool          `json:"complete"`
	Loaded         bool          `json:"loaded"` // the history and outcome records were read up to now once
	LoadTook       time.Duration `json:"load_took_ns,omitempty"`
	PendingOutcome int           `json:"pending_outcomes"`
}

// Stats returns the index's statistics.
func (ix *Index) Stats() IndexStats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	st := IndexStats{Events: len(ix.rows), Capacity: ix.max, Complete: ix.dropped == 0, Loaded: ix.Loaded(),
		LoadTook: time.Duration(ix.loadTook.Load()), PendingOutcome: len(ix.pending)}
	if len(ix.rows) > 0 {
		st.Oldest, st.Newest = time.Unix(0, ix.rows[0].at).UTC(), time.Unix(0, ix.rows[len(ix.rows)-1].at).UTC()
	}
	return st
}

// Complete reports whether the index holds every event of the history.
func (ix *Index) Complete() bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.dropped == 0
}

// Loaded reports whether the history and the outcome records were read up
// to their end once.
func (ix *Index) Loaded() bool { return ix.historyLoaded.Load() && ix.outcomesLoaded.Load() }

func (ix *Index) markLoaded(history bool) {
	if history {
		ix.historyLoaded.Store(true)
		ix.live.Store(true)
	} else {
		ix.outcomesLoaded.Store(true)
	}
	if ix.Loaded() && ix.loadTook.Load() == 0 {
		ix.loadTook.Store(int64(max(time.Since(ix.loadStart), 1)))
	}
}

// Subscription receives the events the index adds or changes after the
// initial load.
type Subscription struct {
	C      chan EventSummary
	lagged atomic.Bool
	ix     *Index
}

// Lagged reports (and clears) whether changes were dropped because the
// subscriber was slow: it should reload what it shows.
func (s *Subscription) Lagged() bool { return s.lagged.Swap(false) }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.ix.subsMu.Lock()
	delete(s.ix.subs, s)
	s.ix.subsMu.Unlock()
}

// Subscribe returns a subscription to changes.
func (ix *Index) Subscribe() *Subscription {
	s := &Subscription{C: make(chan EventSummary, 256), ix: ix}
	ix.subsMu.Lock()
	ix.subs[s] = struct{}{}
	ix.subsMu.Unlock()
	return s
}

func (ix *Index) broadcast(s EventSummary) {
	if !ix.live.Load() {
		return
	}
	ix.subsMu.Lock()
	defer ix.subsMu.Unlock()
	for sub := range ix.subs {
		select {
		case sub.C <- s:
		default:
			sub.lagged.Store(true)
		}
	}
}
