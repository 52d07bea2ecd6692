package reconcile

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// notify stores an event the way the receiver stores a CRM notification (or
// a hook, with another source) and waits until the history holds it.
func (e *env) notify(t *testing.T, ctx context.Context, src events.Source, conn, module, op, id string, serverTime time.Time) {
	t.Helper()
	ms := serverTime.UnixMilli()
	ev := &events.Envelope{
		Version:    events.EnvelopeVersion,
		ID:         events.DeriveID(string(src), conn, module, op, id, strconv.FormatInt(ms, 10)),
		Source:     src,
		Connection: conn,
		Module:     module,
		Operation:  op,
		RecordID:   id,
		ChannelID:  "1000000068001",
		ServerTime: ms,
		ReceivedAt: serverTime.UTC(),
	}
	if _, err := e.pub.Publish(ctx, []*events.Envelope{ev}); err != nil {
		t.Fatal(err)
	}
	hist, err := e.js.JS.Stream(ctx, e.js.Stream.HistoryName)
	if err != nil {
		t.Fatal(err)
	}
	subj := events.Subject(ev, e.js.Stream.Partitions)
	for {
		m, err := hist.GetLastMsgForSubject(ctx, subj)
		if err == nil {
			if got, err := events.Decode(m.Data); err == nil && got.ID == ev.ID {
				return
			}
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("event %s never reached the history", subj)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// noMark fails if the KV bucket holds a mark of the record.
func (e *env) noMark(t *testing.T, ctx context.Context, module, id string) {
	t.Helper()
	if _, err := e.seen.kv.Get(ctx, seenKey("", module, id)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a seen mark of %s %s was written (err %v)", module, id, err)
	}
}

// A notification stored like the receiver stores it is seen at its
// server_time with no mark written (through a wildcard last-by-subject
// direct get of the history), and the next run skips the record.
func TestSeenFromHistoryNoMark(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if hist, err := e.js.JS.Stream(ctx, e.js.Stream.HistoryName); err != nil || !hist.CachedInfo().Config.AllowDirect {
		t.Fatalf("the history must allow direct gets (the path under test): %v", err)
	}
	base := e.clk.Now().Truncate(time.Second)
	mt := base.Add(-10 * time.Minute)
	notified := e.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "notified", "Created_Time": mt.Add(-time.Hour).Format(crmLayout),
		"Modified_Time": mt.Format(crmLayout)})
	lost := e.fake.CRMInsert("Deals", map[string]any{"Deal_Name": "lost", "Created_Time": mt.Add(-time.Hour).Format(crmLayout),
		"Modified_Time": mt.Format(crmLayout)})
	// Zoho's server_time is a little after Modified_Time (milliseconds).
	st := mt.Add(340 * time.Millisecond)
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Deals", events.OpUpdate, notified, st)

	got, ok, err := e.seen.Get(ctx, "", "Deals", notified)
	if err != nil || !ok || !got.Equal(st) {
		t.Fatalf("Get = %s %v %v, want %s", got, ok, err, st)
	}
	e.noMark(t, ctx, "Deals", notified)

	e.clk.Set(base.Add(time.Hour))
	stats, err := e.job(t, Config{Modules: []string{"Deals"}, SkipDeletions: true}).RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Scanned != 2 || stats.AlreadySeen != 1 || stats.Published != 1 {
		t.Fatalf("run %+v, want the notified record skipped and the lost one published", stats)
	}
	for _, ev := range e.stored(t) {
		if ev.ChannelID == ChannelID && ev.RecordID != lost {
			t.Fatalf("republished %s", ev.RecordID)
		}
	}
	e.noMark(t, ctx, "Deals", notified)
}

// Get answers the later of the KV mark and the last notification.
func TestSeenLaterOfMarkAndHistory(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 11, 17, 4, 0, 0, 0, time.UTC)
	get := func(id string) time.Time {
		t.Helper()
		got, ok, err := e.seen.Get(ctx, "default", "Deals", id)
		if err != nil || !ok {
			t.Fatalf("Get %s = %s %v %v", id, got, ok, err)
		}
		return got
	}

	// History newer than the mark.
	if err := e.seen.MarkSeen(ctx, "default", "Deals", "1", t0); err != nil {
		t.Fatal(err)
	}
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Deals", events.OpUpdate, "1", t0.Add(time.Minute))
	if got := get("1"); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("history newer: %s", got)
	}
	// Mark newer than the history (the job published a later change).
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Deals", events.OpUpdate, "2", t0)
	if err := e.seen.MarkSeen(ctx, "default", "Deals", "2", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := get("2"); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("mark newer: %s", got)
	}
	// The last of several notifications counts; the module's case does not.
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Deals", events.OpCreate, "3", t0)
	e.notify(t, ctx, events.SourceCRMNotify, "default", "deals", events.OpUpdate, "3", t0.Add(2*time.Minute))
	if got := get("3"); !got.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("two notifications: %s", got)
	}
	// Without a history configured, only the mark counts.
	kvOnly, err := OpenSeen(ctx, e.js.JS, SeenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := kvOnly.Get(ctx, "default", "Deals", "1"); err != nil || !ok || !got.Equal(t0) {
		t.Fatalf("KV only: %s %v %v", got, ok, err)
	}
	// A history stream that does not exist is an error at open.
	if _, err := OpenSeen(ctx, e.js.JS, SeenConfig{History: "NO_SUCH_HISTORY"}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("missing history: %v", err)
	}
}

// Only a notification of the same connection, module and record counts;
// hook events (no server_time from Zoho's notification service) do not.
func TestSeenHistoryOtherRecordsNotSeen(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 11, 17, 4, 0, 0, 0, time.UTC)
	e.notify(t, ctx, events.SourceCRMNotify, "default", "Deals", events.OpUpdate, "42", t0)
	e.notify(t, ctx, events.SourceCRMWorkflow, "default", "Deals", events.OpUpdate, "43", t0)
	e.notify(t, ctx, events.SourceCRMNotify, "eu", "Deals", events.OpUpdate, "44", t0)
	for _, c := range []struct{ name, conn, module, id string }{
		{"another record", "default", "Deals", "4"},
		{"a record id sharing a prefix", "default", "Deals", "420"},
		{"another module", "default", "Leads", "42"},
		{"another connection", "eu", "Deals", "42"},
		{"a hook event", "default", "Deals", "43"},
		{"the default connection, notified on another", "", "Deals", "44"},
	} {
		if got, ok, err := e.seen.Get(ctx, c.conn, c.module, c.id); err != nil || ok {
			t.Errorf("%s: Get = %s %v %v, want not seen", c.name, got, ok, err)
		}
	}
	// The empty connection is "default", as on the receiver.
	if got, ok, err := e.seen.Get(ctx, "", "Deals", "42"); err != nil || !ok || !got.Equal(t0) {
		t.Fatalf("default connection: %s %v %v", got, ok, err)
	}
	if got, ok, err := e.seen.Get(ctx, "eu", "Deals", "44"); err != nil || !ok || !got.Equal(t0) {
		t.Fatalf("connection eu: %s %v %v", got, ok, err)
	}
}
