package engine

import (
	"context"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events/eventstest"
)

func TestLoopGuard(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	g, err := OpenLoopGuard(ctx, env.JS, LoopGuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	current := ""
	fetches := 0
	fetch := func(context.Context) (string, error) { fetches++; return current, nil }
	self := func(n Notification, record map[string]any) bool {
		t.Helper()
		rs, err := g.Read(ctx, "default", "Deals", "42")
		if err != nil {
			t.Fatal(err)
		}
		ok, err := rs.SelfCaused(ctx, n, record, fetch)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if self(Notification{Changed: []string{"Stage"}}, nil) {
		t.Fatal("no write yet: nothing is self-caused")
	}
	zohookMT := "2026-11-29T10:00:00+05:30"
	written := time.Date(2026, 11, 29, 4, 30, 0, 400e6, time.UTC) // within the second of zohookMT
	g.Remember("default", "Deals", "42", map[string]any{"Invoice_Number": "INV-7", "Stage": "Closed Won"}, zohookMT)
	cases := []struct {
		name   string
		n      Notification
		record map[string]any
		want   bool
	}{
		{"same modified time, other offset notation", Notification{}, map[string]any{"Modified_Time": "2026-11-29T04:30:00Z"}, true},
		{"later modified time: someone else edited", Notification{Changed: []string{"Invoice_Number"}}, map[string]any{"Modified_Time": "2026-11-29T10:05:00+05:30", "Invoice_Number": "INV-7"}, false},
		{"only our field changed", Notification{Changed: []string{"Invoice_Number"}, ServerTime: written}, nil, true},
		{"a user field changed too", Notification{Changed: []string{"Invoice_Number", "Amount"}}, nil, false},
		// Issue 18 item 11: a user's Stage change, notified before zohook
		// wrote another field: the record's Modified_Time is zohook's, but
		// the notification names a field zohook did not write.
		{"user changed a field zohook did not write", Notification{Changed: []string{"Amount"}}, map[string]any{"Modified_Time": zohookMT, "Amount": 5}, false},
		// The notification is about a change made before zohook's write.
		{"notification older than zohook's write", Notification{ServerTime: written.Add(-time.Minute)}, map[string]any{"Modified_Time": zohookMT}, false},
		// Issue 18 item 12: the user set Stage after zohook did, to another
		// value: the values differ.
		{"same field, other value (notification)", Notification{Changed: []string{"Stage"}, Values: map[string]any{"Stage": "Closed Lost"}}, nil, false},
		{"same field, other value (record)", Notification{Changed: []string{"Stage"}}, map[string]any{"Stage": "Negotiation"}, false},
		{"same field, same value", Notification{Changed: []string{"Stage"}, Values: map[string]any{"Stage": "Closed Won"}, ServerTime: written}, nil, true},
	}
	for _, c := range cases {
		if got := self(c.n, c.record); got != c.want {
			t.Errorf("%s: self-caused = %v, want %v", c.name, got, c.want)
		}
	}
	// No changed fields and no record: the guard reads Zoho's current Modified_Time.
	current = zohookMT
	if !self(Notification{}, nil) || fetches != 1 {
		t.Fatalf("unchanged since our write must be self-caused (fetches %d)", fetches)
	}
	current = "2026-11-29T10:00:07+05:30"
	if self(Notification{}, nil) {
		t.Fatal("modified after our write: someone else's change must run the rules")
	}
	other, _ := g.Read(ctx, "default", "Deals", "43")
	if ok, _ := other.SelfCaused(ctx, Notification{}, nil, fetch); ok {
		t.Fatal("another record is not self-caused")
	}
	// Another worker sees the write once it reached NATS.
	g.Wait()
	g2, err := OpenLoopGuard(ctx, env.JS, LoopGuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := g2.Read(ctx, "default", "deals", "42") // module case does not matter
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := rs.SelfCaused(ctx, Notification{Changed: []string{"Invoice_Number"}, ServerTime: written}, nil, fetch); !ok {
		t.Fatal("another worker does not see zohook's write")
	}
}

// Issue 18 item 5: one change, reconciled (Modified_Time, whole seconds)
// and notified (server_time a moment before it): handled once, whichever
// comes first; two notified changes a second apart stay two.
func TestHandledChangeRecognisedAcrossPaths(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	g, err := OpenLoopGuard(ctx, env.JS, LoopGuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2026, 11, 30, 9, 0, 5, 0, time.UTC)
	rs, _ := g.Read(ctx, "default", "Deals", "7")
	rs.Handled(mt, true, "ev-reconciled")
	rs.Flush()
	rs, _ = g.Read(ctx, "default", "Deals", "7")
	if got := rs.HandledElsewhere(mt.Add(-300*time.Millisecond), false, "ev-notified"); got != "ev-reconciled" {
		t.Fatalf("a late notification of a reconciled change: %q", got)
	}
	if got := rs.HandledElsewhere(mt.Add(time.Minute), false, "ev-later"); got != "" {
		t.Fatalf("a later change was taken for the reconciled one: %q", got)
	}
	rs.Handled(mt.Add(time.Minute), false, "ev-n1")
	rs.Flush()
	rs, _ = g.Read(ctx, "default", "Deals", "7")
	if got := rs.HandledElsewhere(mt.Add(time.Minute+time.Second), false, "ev-n2"); got != "" {
		t.Fatalf("two notified changes merged: %q", got)
	}
	if got := rs.HandledElsewhere(mt.Add(time.Minute), true, "ev-r2"); got != "ev-n1" {
		t.Fatalf("a reconciliation of a notified change: %q", got)
	}
}
