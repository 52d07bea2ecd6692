package console

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// ev makes the i-th event of a synthetic history: modules alternate
// Deals/Leads, records cycle through 7 ids.
func ev(i int) IndexedEvent {
	mod := []string{"Deals", "Leads"}[i%2]
	return IndexedEvent{Seq: uint64(i), WorkSeq: uint64(i), At: t0.Add(time.Duration(i) * time.Second),
		ID: events.DeriveID("ev", fmt.Sprint(i)), Source: "crm.notify", Connection: "default", Module: mod, Operation: "update",
		RecordID: fmt.Sprint(5725767000000524000 + i%7)}
}

func seqs(p Page) []uint64 {
	var out []uint64
	for _, e := range p.Events {
		out = append(out, e.Seq)
	}
	return out
}

func TestIndexPagesNewestFirstBothWays(t *testing.T) {
	ix := NewIndex(1000)
	for i := 1; i <= 25; i++ {
		ix.AddEvent(ev(i))
	}
	p1 := ix.List(Filter{}, 0, 0, 10)
	if got := seqs(p1); !slices.Equal(got, []uint64{25, 24, 23, 22, 21, 20, 19, 18, 17, 16}) || p1.Older != 16 || p1.Newer != 0 {
		t.Fatalf("first page %v older=%d newer=%d", got, p1.Older, p1.Newer)
	}
	p2 := ix.List(Filter{}, p1.Older, 0, 10)
	if got := seqs(p2); !slices.Equal(got, []uint64{15, 14, 13, 12, 11, 10, 9, 8, 7, 6}) || p2.Older != 6 || p2.Newer != 15 {
		t.Fatalf("second page %v older=%d newer=%d", got, p2.Older, p2.Newer)
	}
	p3 := ix.List(Filter{}, p2.Older, 0, 10)
	if got := seqs(p3); !slices.Equal(got, []uint64{5, 4, 3, 2, 1}) || p3.Older != 0 {
		t.Fatalf("last page %v older=%d", got, p3.Older)
	}
	back := ix.List(Filter{}, 0, p3.Newer, 10)
	if got := seqs(back); !slices.Equal(got, seqs(p2)) {
		t.Fatalf("back from the last page: %v; want the second page %v", got, seqs(p2))
	}
	// Filters: module, record, time range; case-insensitive.
	leads := ix.List(Filter{Module: "leads"}, 0, 0, 100)
	if len(leads.Events) != 13 || leads.Events[0].Module != "Leads" {
		t.Fatalf("Leads: %d events", len(leads.Events))
	}
	rec := ix.List(Filter{RecordID: "5725767000000524003"}, 0, 0, 100)
	if got := seqs(rec); !slices.Equal(got, []uint64{24, 17, 10, 3}) {
		t.Fatalf("record 3: %v", got)
	}
	win := ix.List(Filter{Since: t0.Add(5 * time.Second), Until: t0.Add(8 * time.Second)}, 0, 0, 100)
	if got := seqs(win); !slices.Equal(got, []uint64{8, 7, 6, 5}) {
		t.Fatalf("time window: %v", got)
	}
	if got := ix.Values("module"); !slices.Equal(got, []string{"Deals", "Leads"}) {
		t.Fatalf("module values %v", got)
	}
}

func TestIndexJoinsOutcomesAndReplays(t *testing.T) {
	ix := NewIndex(1000)
	e := ev(1)
	// An outcome before its event (the two feeds run side by side) waits.
	ix.AddOutcome(&worker.OutcomeRecord{EventID: e.ID, Seq: 1, Outcome: worker.OutcomeRetried, Detail: "failed", At: t0.Add(time.Second)})
	ix.AddEvent(e)
	if s, _ := ix.Lookup(e.ID); s.Status != StatusRetrying || s.Runs != 1 {
		t.Fatalf("after a pending retry: %+v", s)
	}
	ix.AddOutcome(&worker.OutcomeRecord{EventID: e.ID, Seq: 1, Outcome: worker.OutcomeDeadLettered, Detail: "failed", At: t0.Add(2 * time.Second), Calls: 2})
	if s, _ := ix.Lookup(e.ID); s.Status != StatusDeadLettered || s.Runs != 2 || s.Calls != 2 {
		t.Fatalf("after the dead letter: %+v", s)
	}
	// The replay stores the same id again (a new work sequence): one row,
	// moved to the top, waiting until its run is reported.
	ix.AddEvent(ev(2))
	r := e
	r.Seq, r.WorkSeq, r.At = 3, 3, t0.Add(3*time.Second)
	ix.AddEvent(r)
	p := ix.List(Filter{}, 0, 0, 10)
	if got := seqs(p); !slices.Equal(got, []uint64{3, 2}) {
		t.Fatalf("after the replay: %v; want the replayed event on top, once", got)
	}
	if s := p.Events[0]; s.Status != StatusWaiting || s.Replays != 1 || s.Runs != 2 {
		t.Fatalf("replayed row %+v", s)
	}
	// A late record of the first appearance does not change the status.
	ix.AddOutcome(&worker.OutcomeRecord{EventID: e.ID, Seq: 1, Outcome: worker.OutcomeRetried, At: t0.Add(4 * time.Second)})
	ix.AddOutcome(&worker.OutcomeRecord{EventID: e.ID, Seq: 3, Outcome: worker.OutcomeAcked, Detail: "done", At: t0.Add(5 * time.Second), Calls: 3})
	s, _ := ix.Lookup(e.ID)
	if s.Status != StatusDone || s.Runs != 4 || s.Calls != 5 {
		t.Fatalf("after the replay ran: %+v", s)
	}
	if got := ix.List(Filter{Status: "done"}, 0, 0, 10); len(got.Events) != 1 {
		t.Fatalf("status=done: %d events", len(got.Events))
	}
	ix.AddOutcome(&worker.OutcomeRecord{EventID: ev(2).ID, Seq: 2, Outcome: worker.OutcomeAcked, Detail: "condition_false", At: t0.Add(6 * time.Second)})
	if got := ix.List(Filter{Status: "skipped"}, 0, 0, 10); len(got.Events) != 1 || got.Events[0].Detail != "condition_false" {
		t.Fatalf("status=skipped: %+v", got.Events)
	}
	if got := ix.List(Filter{Status: "condition_false"}, 0, 0, 10); len(got.Events) != 1 {
		t.Fatalf("detail condition_false: %+v", got.Events)
	}
}

func TestIndexStaysWithinItsSize(t *testing.T) {
	ix := NewIndex(100)
	for i := 1; i <= 1000; i++ {
		e := ev(i)
		if i%10 == 0 {
			e.ID = fmt.Sprintf("odd-id-%d", i) // not 32 hex digits: kept aside
			e.RecordID = fmt.Sprintf("rec-%d", i)
		}
		ix.AddEvent(e)
	}
	st := ix.Stats()
	if st.Events != 100 || st.Complete {
		t.Fatalf("stats %+v; want 100 events, not complete", st)
	}
	if len(ix.byID) != 100 || len(ix.oddID) != 10 || len(ix.oddRec) != 10 {
		t.Fatalf("maps: byID %d oddID %d oddRec %d; want 100, 10, 10", len(ix.byID), len(ix.oddID), len(ix.oddRec))
	}
	if _, ok := ix.Lookup(ev(900).ID); ok {
		t.Fatal("an event that left the index is still found")
	}
	s, ok := ix.Lookup("odd-id-1000")
	if !ok || s.RecordID != "rec-1000" || s.Seq != 1000 {
		t.Fatalf("odd id: %+v %v", s, ok)
	}
	if got := ix.List(Filter{RecordID: "rec-990"}, 0, 0, 10); len(got.Events) != 1 || got.Events[0].ID != "odd-id-990" {
		t.Fatalf("odd record: %+v", got.Events)
	}
	ix.TrimBefore(951)
	if st := ix.Stats(); st.Events != 50 || st.Oldest != t0.Add(951*time.Second) {
		t.Fatalf("after retention: %+v", st)
	}
}

func TestSubscribersSeeChangesAfterTheLoad(t *testing.T) {
	ix := NewIndex(100)
	sub := ix.Subscribe()
	defer sub.Close()
	ix.AddEvent(ev(1)) // during the initial load: not broadcast
	ix.markLoaded(true)
	ix.AddEvent(ev(2))
	ix.AddOutcome(&worker.OutcomeRecord{EventID: ev(2).ID, Seq: 2, Outcome: worker.OutcomeAcked, Detail: "done", At: t0})
	var got []string
	for range 2 {
		select {
		case s := <-sub.C:
			got = append(got, fmt.Sprint(s.Seq, s.Status))
		case <-time.After(time.Second):
			t.Fatal("no change received")
		}
	}
	if !slices.Equal(got, []string{"2waiting", "2done"}) {
		t.Fatalf("changes %v", got)
	}
	select {
	case s := <-sub.C:
		t.Fatalf("unexpected change %+v", s)
	default:
	}
}

func TestParseWhen(t *testing.T) {
	now := t0
	for in, want := range map[string]time.Time{
		"2h": now.Add(-2 * time.Hour), "7d": now.Add(-7 * 24 * time.Hour), "2026-11-30": time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
		"2026-11-30T08:15": time.Date(2026, 11, 30, 8, 15, 0, 0, time.UTC), "2026-11-30T08:15:00+01:00": time.Date(2026, 11, 30, 7, 15, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseWhen("yesterday", now); err == nil {
		t.Error("parseWhen(yesterday): no error")
	}
}

func TestRedaction(t *testing.T) {
	in := []byte(`{"id":"1","token":"tok-123","raw":{"module":"Deals","Client_Secret":"cs","nested":[{"refresh_token":"rt","code":"SUCCESS"}]},"JSONString":"{\"password\":\"pw\",\"x\":1}"}`)
	out := string(redactJSON(in))
	for _, secret := range []string{"tok-123", `"cs"`, `"rt"`, `\"pw\"`} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted JSON still holds %s:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "Deals") {
		t.Errorf("redaction removed too much:\n%s", out)
	}
	if got := redactText("a=1&secret=s3&token=t"); strings.Contains(got, "s3") || !strings.Contains(got, "a=1") {
		t.Errorf("form redaction: %s", got)
	}
	sc := newScrubber([]string{"p@ss w<rd&1+", "short"})
	for _, form := range []string{"p@ss w<rd&1+", "p@ss w&lt;rd&amp;1+", "p@ss w&lt;rd&amp;1&#43;", `p@ss w\u003crd\u00261+`, "p%40ss+w%3Crd%261%2B"} {
		if got := string(sc.bytes([]byte("x " + form + " y"))); got != "x [REDACTED] y" {
			t.Errorf("scrub(%q) = %q", form, got)
		}
	}
}

// The index's memory per event, measured: what -console-index-events
// costs. 100,000 events with their ids and records, outcomes joined.
func TestIndexMemoryPerEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 events")
	}
	const n = 100_000
	evs := make([]IndexedEvent, n)
	recs := make([]*worker.OutcomeRecord, n)
	for i := range n {
		evs[i] = ev(i + 1)
		recs[i] = &worker.OutcomeRecord{EventID: evs[i].ID, Seq: uint64(i + 1), Outcome: worker.OutcomeAcked, Detail: "done", At: evs[i].At}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix := NewIndex(n)
	for i := range n {
		ix.AddEvent(evs[i])
		ix.AddOutcome(recs[i])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(evs)
	runtime.KeepAlive(recs)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("index: %.0f bytes per event (%d events, %.1f MB)", per, n, float64(after.HeapAlloc-before.HeapAlloc)/1e6)
	if per > 250 {
		t.Errorf("%.0f bytes per event; the flag's help and the README say about 130", per)
	}
	runtime.KeepAlive(ix)
	runtime.KeepAlive(evs)
	runtime.KeepAlive(recs)
}
