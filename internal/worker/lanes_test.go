package worker

import "testing"

// A redelivered copy of the running event is queued under its sequence; when
// the running one fails for retry, the copy must not stay behind as the
// blocker's only handle (held forever, later redeliveries folded into it).
func TestLanesRetryDropsQueuedCopyOfBlocker(t *testing.T) {
	l := newLanes()
	a1 := &Message{Sequence: 2}
	a2 := &Message{Sequence: 3}
	if got := l.admit("rec", a1, false); got != admitRun {
		t.Fatalf("first event: %v, want run", got)
	}
	if got := l.admit("rec", a2, false); got != admitQueued {
		t.Fatalf("second event: %v, want queued", got)
	}
	if got := l.admit("rec", &Message{Sequence: 2, Delivered: 2}, false); got != admitQueued {
		t.Fatalf("redelivery of the running event: %v, want queued", got)
	}
	if next := l.done("rec", a1, true); next != nil {
		t.Fatalf("a lane blocked by a retry ran seq %d", next.Sequence)
	}
	for _, m := range l.held() {
		if m.Sequence == 2 {
			t.Fatal("copy of the blocker still queued after it failed for retry")
		}
	}
	// JetStream redelivers the blocker after its nak delay: it runs, then
	// the event behind it.
	back := &Message{Sequence: 2, Delivered: 3}
	if got := l.admit("rec", back, false); got != admitRun {
		t.Fatalf("redelivered blocker: %v, want run", got)
	}
	if next := l.done("rec", back, false); next != a2 {
		t.Fatalf("after the blocker succeeded, next = %v, want seq 3", next)
	}
	if next := l.done("rec", a2, false); next != nil || len(l.held()) != 0 {
		t.Fatalf("lane not empty at the end: next %v, held %d", next, len(l.held()))
	}
}

// A copy queued while the event ran must not run again after it succeeded.
func TestLanesSuccessDropsQueuedCopy(t *testing.T) {
	l := newLanes()
	a1 := &Message{Sequence: 5}
	l.admit("rec", a1, false)
	l.admit("rec", &Message{Sequence: 5, Delivered: 2}, false)
	if next := l.done("rec", a1, false); next != nil {
		t.Fatalf("settled event ran again (seq %d, delivery %d)", next.Sequence, next.Delivered)
	}
}

// Once stopping, nothing starts: an event that could run is refused, one
// behind an event of its record still here waits (released later, in order).
func TestLanesStoppingStartsNothing(t *testing.T) {
	l := newLanes()
	running := &Message{Sequence: 1}
	l.admit("a", running, false)
	if got := l.admit("a", &Message{Sequence: 4}, true); got != admitQueued {
		t.Fatalf("event behind a running one while stopping: %v, want queued", got)
	}
	if got := l.admit("b", &Message{Sequence: 2}, true); got != admitRefuse {
		t.Fatalf("event of an idle record while stopping: %v, want refused", got)
	}
	if len(l.m) != 1 {
		t.Fatalf("refused record left a lane: %d lanes", len(l.m))
	}
}
