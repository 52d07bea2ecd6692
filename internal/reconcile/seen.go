package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// DefaultSeenBucket holds, per record, the latest Modified_Time zohook has
// handled or published.
const DefaultSeenBucket = "zohook_seen"

// Seen is the "already received" record of changes, read by the
// reconciliation job to skip what a notification delivered. It has two
// sources:
//
//   - the history stream, which holds every event received (30 days by
//     default): the last crm.notify event of a record is its latest change
//     received. The receiver marks nothing: a KV write per notification
//     cost it about 6% CPU and NATS a read and a write, for what the
//     history already says.
//   - the KV bucket (key connection.module.record_id → a time): the job's
//     own marks of what it published (they outlive a lost or trimmed
//     history), the "deleted-<Module>" marks of deletions it handled, and
//     replayed webhook failures.
//
// Get answers the later of the two.
type Seen struct {
	kv jetstream.KeyValue
	// history is the history stream (nil: KV marks only).
	history jetstream.Stream

	// cache remembers, per key this process wrote or read, the time stored
	// and its revision: the next mark of that record costs no round trip
	// when it is not newer, and one (an Update at that revision) when it
	// is. The stored time only moves forward, so a remembered time is a
	// lower bound and safe to skip on; a stale revision just fails the
	// Update and falls back to reading. It is bounded (least recently used
	// records are forgotten first), so a process that has marked millions of
	// records keeps its hot ones instead of forgetting all of them at once.
	cache *seenCache

	// Marks of records the cache does not settle are batched: every mark
	// queued while a batch is under way goes in the next one, whose reads
	// are one request (a direct get of the last message of many subjects)
	// and whose writes are pipelined publishes, each conditioned on the
	// revision read. A mark still waits on two round trips (read, then
	// write), but a batch of them costs the process one read request and no
	// per-mark request machinery (a job run marks many records).
	js        jetstream.JetStream
	nc        *nats.Conn
	subject   string      // "$KV.<bucket>."
	directGet string      // the bucket stream's direct get subject
	noDirect  atomic.Bool // the bucket refuses direct gets: read one key at a time

	mu       sync.Mutex
	pending  map[string]*markReq // by key, merged: the newest time wins
	flushing bool
}

// markReq is the queued mark of one record (several marks merged).
type markReq struct {
	key     string
	h       uint64
	at      time.Time
	waiters []chan error
	rev     uint64 // revision to write at (0: the key must not exist)
	read    bool   // rev is known (from the cache or a read)
	settled bool   // the stored time is at least as new: nothing to write
}

// maxMarkBatch bounds one batch: the server answers at most 1024 subjects
// per multi-subject direct get.
const maxMarkBatch = 1024

// DefaultSeenCacheSize is how many records a Seen remembers (about 50 bytes
// each: 5 MB).
const DefaultSeenCacheSize = 100_000

// SeenConfig configures OpenSeen. Zero fields take defaults.
type SeenConfig struct {
	Bucket    string           // default DefaultSeenBucket
	Replicas  int              // used if the bucket must be created; default 1
	KV        events.KVOptions // bounds and reports KV calls (events.BoundKV)
	CacheSize int              // records remembered; default DefaultSeenCacheSize
	// History names the history stream Get also reads ("": KV marks only).
	History string
}

// OpenSeen opens (or creates) the seen bucket.
func OpenSeen(ctx context.Context, js jetstream.JetStream, cfg SeenConfig) (*Seen, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultSeenBucket
	}
	kv, err := openKV(ctx, js, jetstream.KeyValueConfig{Bucket: cfg.Bucket, History: 1, Replicas: max(cfg.Replicas, 1),
		Storage: jetstream.FileStorage, Description: "zohook: latest change seen per CRM record"}, cfg.KV)
	if err != nil {
		return nil, err
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultSeenCacheSize
	}
	var history jetstream.Stream
	if cfg.History != "" {
		if history, err = js.Stream(ctx, cfg.History); err != nil {
			return nil, fmt.Errorf("reconcile: history stream %s: %w", cfg.History, err)
		}
	}
	return &Seen{kv: kv, history: history, cache: newSeenCache(cfg.CacheSize), js: js, nc: js.Conn(),
		subject: "$KV." + cfg.Bucket + ".", directGet: "$JS.API.DIRECT.GET.KV_" + cfg.Bucket,
		pending: map[string]*markReq{}}, nil
}

func openKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, o events.KVOptions) (jetstream.KeyValue, error) {
	kv, err := events.OpenKV(ctx, js, events.KVSpec{KeyValueConfig: cfg}, o)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	return kv, nil
}

func seenKey(conn, module, id string) string {
	if conn == "" {
		conn = "default"
	}
	return events.Token(conn) + "." + events.Token(module) + "." + events.Token(id)
}

// Get returns the latest change time seen for a record: the later of its
// KV mark and the server_time of its last crm.notify event in the history.
func (s *Seen) Get(ctx context.Context, conn, module, id string) (time.Time, bool, error) {
	t, _, ok, err := s.get(ctx, seenKey(conn, module, id))
	if err != nil || s.history == nil {
		return t, ok, err
	}
	ht, hok, err := s.lastReceived(ctx, conn, module, id)
	if err != nil {
		return time.Time{}, false, err
	}
	if hok && (!ok || ht.After(t)) {
		return ht, true, nil
	}
	return t, ok, nil
}

// lastReceived returns the server_time of the last crm.notify event of a
// record in the history: notifications and the job's own publications.
//
// An approximation: the last event stored is taken as the latest change.
// Zoho retrying notifications out of order can leave an older change last;
// the job then republishes the newer change once, which the worker's loop
// guard and journal handle as an ordinary update.
//
// The filter's wildcards cost no scan: the server's per-subject index finds
// the blocks holding the record. A direct get may come from a replica a
// moment behind; the job's Settle delay covers that.
func (s *Seen) lastReceived(ctx context.Context, conn, module, id string) (time.Time, bool, error) {
	if conn == "" {
		conn = "default" // as the receiver attributes events (and seenKey)
	}
	filter := events.SourceRecordFilter(events.SourceCRMNotify, conn, module, id)
	m, err := s.history.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reconcile: history %s: %w", filter, err)
	}
	e, err := events.Decode(m.Data)
	if err != nil || e.ServerTime <= 0 {
		return time.Time{}, false, nil // no usable time: unseen (at worst republished once)
	}
	return time.UnixMilli(e.ServerTime), true, nil
}

func (s *Seen) get(ctx context.Context, key string) (time.Time, uint64, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, 0, false, nil
	}
	if err != nil {
		return time.Time{}, 0, false, fmt.Errorf("reconcile: seen %s: %w", key, err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return time.Time{}, e.Revision(), false, nil // unreadable: treat as unseen, overwrite
	}
	return t, e.Revision(), true, nil
}

// MarkSeen records that the change of a record at modified (its
// Modified_Time, or the notification's server_time) was handled. It only
// moves forward: an older time never replaces a newer one.
//
// Round trips: none when this process knows a time at least as new is
// stored; one (a write at the known revision) when it knows the record;
// two for a record it does not know: read, then write at the revision
// read. More only when another process wrote the same record in between
// (each lost race costs a read and a write). Concurrent marks share their
// round trips (see Seen).
func (s *Seen) MarkSeen(ctx context.Context, conn, module, id string, modified time.Time) error {
	return s.MarkSeenMany(ctx, []SeenMark{{Connection: conn, Module: module, RecordID: id, Modified: modified}})
}

// SeenMark is one change to mark (MarkSeenMany).
type SeenMark struct {
	Connection, Module, RecordID string
	Modified                     time.Time
}

// MarkSeenMany is MarkSeen for several changes at once: they go in the same
// batch, so a notification naming 100 records costs one read request and
// 100 pipelined writes instead of 100 marks one after another. The error
// joins those of the marks that failed. If ctx ends first, the marks still
// go on.
func (s *Seen) MarkSeenMany(ctx context.Context, marks []SeenMark) error {
	var errs []error
	for _, done := range s.enqueue(marks) {
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// enqueue queues the marks the cache does not settle (it knows a time at
// least as new is stored) and returns where their results will come.
func (s *Seen) enqueue(marks []SeenMark) []chan error {
	var waits []chan error
	var locked, start bool
	for _, m := range marks {
		key := seenKey(m.Connection, m.Module, m.RecordID)
		h := s.cache.hash(key)
		if prev, known := s.cache.get(h); known && m.Modified.UnixNano() <= prev.at {
			continue
		}
		done := make(chan error, 1)
		waits = append(waits, done)
		if !locked {
			s.mu.Lock() // held until all are queued: they make one batch
			defer s.mu.Unlock()
			locked, start = true, !s.flushing
			s.flushing = true
		}
		if r, ok := s.pending[key]; ok {
			if m.Modified.After(r.at) {
				r.at = m.Modified
			}
			r.waiters = append(r.waiters, done)
		} else {
			s.pending[key] = &markReq{key: key, h: h, at: m.Modified, waiters: []chan error{done}}
		}
	}
	if start {
		go s.run() // runs once the lock is released
	}
	return waits
}

// run serves batches until no mark is queued.
func (s *Seen) run() {
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		batch := make([]*markReq, 0, min(len(s.pending), maxMarkBatch))
		for k, r := range s.pending {
			if len(batch) == maxMarkBatch {
				break
			}
			batch = append(batch, r)
			delete(s.pending, k)
		}
		s.mu.Unlock()
		s.serve(batch)
	}
}

// serve settles one batch: reads what the cache does not know (one
// request), then writes what is newer than stored (pipelined), and answers
// every waiter.
func (s *Seen) serve(batch []*markReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer := func(r *markReq, err error) {
		for _, w := range r.waiters {
			w <- err
		}
	}
	var unread []*markReq
	for _, r := range batch {
		if prev, known := s.cache.get(r.h); known {
			if r.at.UnixNano() <= prev.at {
				answer(r, nil)
				continue
			}
			r.rev, r.read = prev.rev, true
			continue
		}
		unread = append(unread, r)
	}
	if len(unread) > 0 {
		if err := s.readMany(ctx, unread); err != nil {
			// The batched read failed as a whole: each mark on its own.
			for _, r := range unread {
				answer(r, s.markOne(ctx, r.key, r.h, r.at))
				r.read = false
			}
		}
	}
	type write struct {
		r   *markReq
		ack jetstream.PubAckFuture
	}
	var writes []write
	for _, r := range batch {
		if !r.read {
			continue // answered
		}
		if r.settled {
			answer(r, nil)
			continue
		}
		msg := &nats.Msg{Subject: s.subject + r.key, Data: []byte(r.at.UTC().Format(time.RFC3339Nano)), Header: nats.Header{}}
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(r.rev, 10))
		ack, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			answer(r, s.markOne(ctx, r.key, r.h, r.at))
			continue
		}
		writes = append(writes, write{r, ack})
	}
	for _, w := range writes {
		var err error
		select {
		case pa := <-w.ack.Ok():
			s.cache.put(w.r.h, w.r.at.UnixNano(), pa.Sequence)
		case err = <-w.ack.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			// A lost race (another process wrote the record since the read)
			// or a failed publish: this mark on its own, read and write.
			err = s.markOne(ctx, w.r.key, w.r.h, w.r.at)
		}
		answer(w.r, err)
	}
}

// readMany reads the stored time and revision of every record of rs with
// one direct get of the last message of each key's subject. A record found
// at least as new as the mark is settled (nothing to write); one absent or
// deleted gets the revision to create it at.
func (s *Seen) readMany(ctx context.Context, rs []*markReq) error {
	if s.noDirect.Load() {
		return errors.New("reconcile: seen: the bucket refuses direct gets")
	}
	byKey := make(map[string]*markReq, len(rs))
	subjects := make([]string, len(rs))
	for i, r := range rs {
		byKey[r.key] = r
		subjects[i] = s.subject + r.key
		r.rev, r.read = 0, true // absent unless found
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)})
	if err != nil {
		return err
	}
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("reconcile: seen: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest(s.directGet, inbox, req); err != nil {
		return fmt.Errorf("reconcile: seen: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			// Nobody answers direct gets: the bucket does not allow them.
			s.noDirect.Store(true)
			return fmt.Errorf("reconcile: seen: batched read: %w", err)
		}
		if err != nil {
			return fmt.Errorf("reconcile: seen: batched read: %w", err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204", "404": // end of batch; no key found at all
			return nil
		case "503": // no responders, when the client reports it as a message
			s.noDirect.Store(true)
			return errors.New("reconcile: seen: batched read: no responders")
		default:
			return fmt.Errorf("reconcile: seen: batched read: status %s %s", status, m.Header.Get("Description"))
		}
		r := byKey[strings.TrimPrefix(m.Header.Get(jetstream.SubjectHeader), s.subject)]
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if r == nil || err != nil {
			continue
		}
		r.rev = seq // deleted or purged: create at the marker's revision
		if m.Header.Get("KV-Operation") != "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, string(m.Data))
		if err != nil {
			continue // unreadable: overwrite
		}
		if !r.at.After(t) {
			s.cache.put(r.h, t.UnixNano(), seq)
			r.settled = true
		}
	}
}

// markOne is a mark on its own, with the bucket's bounded calls: read, then
// write at the revision read, again while another process wins the race.
func (s *Seen) markOne(ctx context.Context, key string, h uint64, modified time.Time) error {
	for range 10 {
		cur, rev, ok, err := s.get(ctx, key)
		if err != nil {
			return err
		}
		if ok && !modified.After(cur) {
			s.cache.put(h, cur.UnixNano(), rev)
			return nil
		}
		done, err := s.put(ctx, key, h, rev, modified)
		if done || err != nil {
			return err
		}
	}
	return fmt.Errorf("reconcile: seen %s: too much contention", key)
}

// put writes t conditioned on rev (0 = key absent); false on a lost race.
func (s *Seen) put(ctx context.Context, key string, h uint64, rev uint64, t time.Time) (bool, error) {
	v := []byte(t.UTC().Format(time.RFC3339Nano))
	var err error
	var nrev uint64
	if rev == 0 {
		nrev, err = s.kv.Create(ctx, key, v)
	} else {
		nrev, err = s.kv.Update(ctx, key, v, rev)
	}
	if err == nil {
		s.cache.put(h, t.UnixNano(), nrev)
		return true, nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, nil
	}
	return false, fmt.Errorf("reconcile: seen %s: %w", key, err)
}

// seenCache is a bounded LRU map from a record key's 64-bit hash to the
// time and revision last known stored for it.
//
// Written here rather than taken from hashicorp/golang-lru: entries hold
// no pointers (a hash, not the key string; slice indexes, not list
// pointers), so 100,000 of them are about 5 MB in two allocations that the
// garbage collector never scans, where a pointer-based list would be about
// three times that in 100,000 scanned objects (this cache once sat on
// the receiver's answer path). A hash collision (about 1 in 10^9 at
// 100,000 entries) can at worst
// skip one mark (the reconciliation job then republishes that change once)
// or send an Update at a wrong revision (refused; the mark reads and
// retries).
type seenCache struct {
	seed maphash.Seed
	mu   sync.Mutex
	idx  map[uint64]int32 // hash → slot
	// slots, linked from most (head) to least (tail) recently used; -1 ends.
	slots      []seenSlot
	head, tail int32
	size       int
}

type seenSlot struct {
	hash       uint64
	at         int64 // unix ns of the stored time
	rev        uint64
	prev, next int32
}

// seenEntry is what the cache knows of one record.
type seenEntry struct {
	at  int64
	rev uint64
}

func newSeenCache(size int) *seenCache {
	return &seenCache{seed: maphash.MakeSeed(), idx: make(map[uint64]int32), head: -1, tail: -1, size: max(size, 1)}
}

func (c *seenCache) hash(key string) uint64 { return maphash.String(c.seed, key) }

// get returns the entry of h and makes it the most recently used.
func (c *seenCache) get(h uint64) (seenEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.idx[h]
	if !ok {
		return seenEntry{}, false
	}
	c.toFront(i)
	return seenEntry{at: c.slots[i].at, rev: c.slots[i].rev}, true
}

// put records that time at is stored at revision rev. An older revision
// than the one remembered is ignored: two marks of one record finishing out
// of order must not leave the older answer.
func (c *seenCache) put(h uint64, at int64, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.idx[h]; ok {
		if c.slots[i].rev < rev {
			c.slots[i].at, c.slots[i].rev = at, rev
		}
		c.toFront(i)
		return
	}
	var i int32
	if len(c.slots) < c.size {
		i = int32(len(c.slots))
		c.slots = append(c.slots, seenSlot{prev: -1, next: -1})
	} else { // full: the least recently used slot is reused
		i = c.tail
		c.unlink(i)
		delete(c.idx, c.slots[i].hash)
	}
	c.slots[i] = seenSlot{hash: h, at: at, rev: rev, prev: -1, next: -1}
	c.idx[h] = i
	c.pushFront(i)
}

func (c *seenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idx)
}

func (c *seenCache) toFront(i int32) {
	if c.head == i {
		return
	}
	c.unlink(i)
	c.pushFront(i)
}

func (c *seenCache) unlink(i int32) {
	s := &c.slots[i]
	if s.prev >= 0 {
		c.slots[s.prev].next = s.next
	} else {
		c.head = s.next
	}
	if s.next >= 0 {
		c.slots[s.next].prev = s.prev
	} else {
		c.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

func (c *seenCache) pushFront(i int32) {
	s := &c.slots[i]
	s.prev, s.next = -1, c.head
	if c.head >= 0 {
		c.slots[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}
