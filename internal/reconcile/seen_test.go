package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events/eventstest"
)

// Two processes (two Seen values on one bucket, like two receivers) mark
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
