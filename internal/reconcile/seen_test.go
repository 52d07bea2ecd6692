package reconcile

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events/eventstest"
)

// Two processes (two Seen values on one bucket, like two workers) mark
// the same record: the stored time only moves forward, whatever each one
// remembers of its own last write.
func TestMarkSeenOnlyMovesForwardAcrossProcesses(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	a, err := OpenSeen(ctx, env.JS, SeenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenSeen(ctx, env.JS, SeenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	stored := func() time.Time {
		t.Helper()
		got, ok, err := b.Get(ctx, "default", "Deals", "42")
		if err != nil || !ok {
			t.Fatalf("Get = %v, %v, %v", got, ok, err)
		}
		return got
	}
	steps := []struct {
		who  *Seen
		name string
		at   time.Duration
		want time.Duration
	}{
		{a, "a creates", 0, 0},
		{a, "a moves forward with the revision it remembers", 2 * time.Second, 2 * time.Second},
		{a, "a: an older change is skipped", time.Second, 2 * time.Second},
		{b, "b (first mark: the key exists) moves forward", 5 * time.Second, 5 * time.Second},
		{a, "a's remembered revision is stale: it reads, sees newer, keeps it", 3 * time.Second, 5 * time.Second},
		{a, "a moves forward past b's write", 7 * time.Second, 7 * time.Second},
		{b, "b's remembered revision is stale; older than stored: kept", 6 * time.Second, 7 * time.Second},
	}
	for _, s := range steps {
		if err := s.who.MarkSeen(ctx, "default", "Deals", "42", t0.Add(s.at)); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := stored(); !got.Equal(t0.Add(s.want)) {
			t.Fatalf("%s: stored %s, want %s", s.name, got, t0.Add(s.want))
		}
	}
}

// roundTrips opens a Seen on a connection of its own and returns a counter
// of the messages that connection sent: each is one KV request (Get,
// Create, Update), so the count is the round trips the marks waited on.
func roundTrips(t *testing.T, env *eventstest.Env, cacheSize int) (*Seen, func() uint64) {
	t.Helper()
	nc, err := nats.Connect(env.Embedded.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSeen(context.Background(), js, SeenConfig{CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	last := nc.Stats().OutMsgs
	return s, func() uint64 {
		now := nc.Stats().OutMsgs
		n := now - last
		last = now
		return n
	}
}

// Marks cost at most two round trips for a record the process does not
// remember, one for a newer change of one it does, none for an older one;
// past the cache's size the least recently used records are forgotten one
// by one (no cliff: the others still cost what they did).
func TestMarkSeenRoundTripsAndBoundedCache(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	const size = 4
	s, trips := roundTrips(t, env, size)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	mark := func(id string, at time.Duration) uint64 {
		t.Helper()
		if err := s.MarkSeen(ctx, "default", "Deals", id, t0.Add(at)); err != nil {
			t.Fatalf("mark %s: %v", id, err)
		}
		return trips()
	}
	if n := mark("1", 0); n != 2 {
		t.Fatalf("new record: %d round trips, want 2 (read, create)", n)
	}
	if n := mark("1", time.Second); n != 1 {
		t.Fatalf("newer change of a remembered record: %d round trips, want 1 (update)", n)
	}
	if n := mark("1", 0); n != 0 {
		t.Fatalf("older change of a remembered record: %d round trips, want 0", n)
	}
	for _, id := range []string{"2", "3", "4"} {
		mark(id, 0)
	}
	mark("1", 2*time.Second) // 1 is now the most recently used; 2 the least
	if n := mark("5", 0); n != 2 || s.cache.len() != size {
		t.Fatalf("fifth record: %d round trips, cache holds %d; want 2 and %d", n, s.cache.len(), size)
	}
	if n := mark("1", 3*time.Second); n != 1 {
		t.Fatalf("a recently used record was forgotten: %d round trips, want 1", n)
	}
	// 2 was evicted: it is read again (not created: it exists), two round
	// trips, not four.
	if n := mark("2", time.Second); n != 2 {
		t.Fatalf("evicted record: %d round trips, want 2 (read, update)", n)
	}
	if got, ok, err := s.Get(ctx, "default", "Deals", "2"); err != nil || !ok || !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("record 2 stored %s %v %v, want %s", got, ok, err, t0.Add(time.Second))
	}
	trips() // not a mark's
	// 3 was evicted too: a change no newer than the stored one costs the
	// read alone.
	if n := mark("3", -time.Second); n != 1 {
		t.Fatalf("older change of evicted record 3: %d round trips, want 1 (read)", n)
	}
}

func TestSeenCacheLRU(t *testing.T) {
	c := newSeenCache(3)
	for h := uint64(1); h <= 3; h++ {
		c.put(h, int64(h), h)
	}
	c.get(1)          // order now 1, 3, 2
	c.put(4, 4, 4)    // evicts 2
	c.put(3, 30, 2)   // an older revision than remembered: ignored
	c.put(1, 10, 100) // newer: kept
	if _, ok := c.get(2); ok {
		t.Fatal("least recently used entry kept")
	}
	if e, ok := c.get(3); !ok || e.at != 3 || e.rev != 3 {
		t.Fatalf("entry 3 = %+v %v, want at 3 rev 3", e, ok)
	}
	if e, ok := c.get(1); !ok || e.at != 10 || e.rev != 100 {
		t.Fatalf("entry 1 = %+v %v, want at 10 rev 100", e, ok)
	}
	c.put(5, 5, 5) // evicts 4 (1 and 3 were used since)
	if _, ok := c.get(4); ok || c.len() != 3 {
		t.Fatalf("entry 4 kept or size %d", c.len())
	}
	for h := uint64(100); h < 1100; h++ { // churn: stays bounded, links intact
		c.put(h, 0, 1)
		if h%7 == 0 {
			c.get(h - 2)
		}
	}
	if c.len() != 3 {
		t.Fatalf("size %d after churn", c.len())
	}
	n := 0
	for i := c.head; i >= 0; i = c.slots[i].next {
		n++
	}
	if n != 3 {
		t.Fatalf("list holds %d entries, map %d", n, c.len())
	}
}

// Concurrent marks (each from its own goroutine) share their reads: 100 new records cost one write each and
// a few batched reads, not a read each.
func TestConcurrentMarksShareReads(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	s, trips := roundTrips(t, env, 0)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.MarkSeen(ctx, "default", "Deals", strconv.Itoa(1000+i), t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sent := trips()
	t.Logf("%d marks of new records: %d requests", n, sent)
	if sent >= 2*n-n/4 {
		t.Fatalf("%d marks sent %d requests: reads are not shared", n, sent)
	}
	for i := range n {
		if got, ok, err := s.Get(ctx, "default", "Deals", strconv.Itoa(1000+i)); err != nil || !ok || !got.Equal(t0) {
			t.Fatalf("record %d: %s %v %v", 1000+i, got, ok, err)
		}
	}
}

// A deleted mark is written again (at the delete marker's revision), and a
// bucket that refuses direct gets still gets its marks (one read each).
func TestMarkSeenDeletedKeyAndNoDirectGets(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	s, err := OpenSeen(ctx, env.JS, SeenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if err := s.MarkSeen(ctx, "default", "Deals", "7", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.kv.Delete(ctx, seenKey("default", "Deals", "7")); err != nil {
		t.Fatal(err)
	}
	fresh, err := OpenSeen(ctx, env.JS, SeenConfig{}) // remembers nothing
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.MarkSeen(ctx, "default", "Deals", "7", t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := fresh.Get(ctx, "default", "Deals", "7"); err != nil || !ok || !got.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("after delete: %s %v %v", got, ok, err)
	}

	info, err := env.JS.Stream(ctx, "KV_"+DefaultSeenBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := env.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	nd, err := OpenSeen(ctx, env.JS, SeenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Duration{time.Hour, 2 * time.Hour} {
		if err := nd.MarkSeen(ctx, "default", "Deals", strconv.Itoa(8+i), t0.Add(at)); err != nil {
			t.Fatalf("without direct gets: %v", err)
		}
	}
	if got, ok, err := nd.Get(ctx, "default", "Deals", "9"); err != nil || !ok || !got.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("without direct gets: %s %v %v", got, ok, err)
	}
	if !nd.noDirect.Load() {
		t.Fatal("the refused direct get went unnoticed")
	}
}

// The marks of one multi-record notification go in one batch: one read
// request for all of them.
func TestMarkSeenManyIsOneBatch(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	s, trips := roundTrips(t, env, 0)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	marks := make([]SeenMark, 50)
	for i := range marks {
		marks[i] = SeenMark{Connection: "default", Module: "Deals", RecordID: strconv.Itoa(2000 + i), Modified: t0}
	}
	if err := s.MarkSeenMany(ctx, marks); err != nil {
		t.Fatal(err)
	}
	if n := trips(); n != uint64(len(marks))+1 {
		t.Fatalf("%d marks: %d requests, want %d (one read, a write each)", len(marks), n, len(marks)+1)
	}
	if err := s.MarkSeenMany(ctx, marks); err != nil || trips() != 0 {
		t.Fatal("marks already stored cost round trips")
	}
	if got, ok, err := s.Get(ctx, "default", "Deals", "2049"); err != nil || !ok || !got.Equal(t0) {
		t.Fatalf("record 2049: %s %v %v", got, ok, err)
	}
}

// Marks queued while a batch is under way (MarkSeenMany included) join the
// next one; none is lost or stuck.
func TestMarksWhileABatchRuns(t *testing.T) {
	env := eventstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := OpenSeen(ctx, env.JS, SeenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				marks := []SeenMark{
					{Connection: "default", Module: "Deals", RecordID: strconv.Itoa(3000 + i), Modified: t0.Add(time.Duration(g) * time.Second)},
					{Connection: "default", Module: "Leads", RecordID: strconv.Itoa(g*100 + i), Modified: t0},
				}
				if err := s.MarkSeenMany(ctx, marks); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range 20 {
		if got, ok, err := s.Get(ctx, "default", "Deals", strconv.Itoa(3000+i)); err != nil || !ok || !got.Equal(t0.Add(7*time.Second)) {
			t.Fatalf("record %d: %s %v %v, want the newest mark", 3000+i, got, ok, err)
		}
	}
}
