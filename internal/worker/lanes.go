package worker

import (
	"slices"
	"sync"
	"time"
)

// lanes keeps events of one record in order within this process. Pinned
// partition consumers guarantee a record's events reach only one process at
// a time, so in-process order is per-record order.
//
// A lane runs one event at a time; newer events of the record wait in its
// queue (unacknowledged, kept alive with in-progress acks). When an event
// fails and is nak'ed for a later retry, the lane is blocked by it: the
// queue is held, not nak'ed (a nak would spend the queued events'
// deliveries), until the blocker comes back and is handled or dead-lettered.
// So an update never overtakes the create that failed before it.
type lanes struct {
	mu sync.Mutex
	m  map[string]*lane
}

type lane struct {
	partition int
	running   bool
	queue     []*Message // sorted by stream sequence
	blockedBy uint64     // sequence of the event awaiting its retry; 0 = none
	retryAt   time.Time  // when the blocker is redelivered
}

func newLanes() *lanes { return &lanes{m: map[string]*lane{}} }

// admission is what dispatch does with a delivered message.
type admission int

const (
	admitRun    admission = iota // start a lane runner with it
	admitQueued                  // held in its record's queue
	admitRefuse                  // shutting down: release it (nak) untouched
)

// admit decides what happens to m. Once stopping, nothing new starts: a
// message that could run now is refused, but one that would wait behind an
// event of its record still in this process is queued, so it is released
// only after that event settles and cannot overtake it in another worker.
func (l *lanes) admit(key string, m *Message, stopping bool) admission {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	if ln == nil {
		ln = &lane{partition: m.Partition}
		l.m[key] = ln
	}
	if i, found := slices.BinarySearchFunc(ln.queue, m.Sequence, cmpSeq); found {
		// A redelivery of a message we hold (its ack wait lapsed): keep the
		// newest handle, run it once.
		ln.queue[i] = m
		return admitQueued
	}
	if !ln.running && (ln.blockedBy == 0 || ln.blockedBy == m.Sequence) {
		if stopping {
			if ln.blockedBy == 0 && len(ln.queue) == 0 {
				delete(l.m, key)
			}
			return admitRefuse
		}
		ln.running = true
		return admitRun
	}
	i, _ := slices.BinarySearchFunc(ln.queue, m.Sequence, cmpSeq)
	ln.queue = slices.Insert(ln.queue, i, m)
	return admitQueued
}

func cmpSeq(m *Message, seq uint64) int {
	switch {
	case m.Sequence < seq:
		return -1
	case m.Sequence > seq:
		return 1
	}
	return 0
}

// done records the outcome of the running message and returns the next one
// of the record to run, if any.
func (l *lanes) done(key string, m *Message, failedForRetry bool) *Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	ln.running = false
	// A copy of m queued while it ran (JetStream redelivered it) must not
	// run again: m is settled now. Left queued as the blocker's only handle
	// it would also stall the record forever (kept alive, never run, later
	// redeliveries folded into it). Dropped, it is no longer kept alive, so
	// if m's settlement was lost JetStream still redelivers it.
	ln.queue = slices.DeleteFunc(ln.queue, func(q *Message) bool { return q.Sequence == m.Sequence })
	if failedForRetry {
		ln.blockedBy, ln.retryAt = m.Sequence, m.retryAt
		return nil
	}
	if ln.blockedBy == m.Sequence {
		ln.blockedBy = 0
	}
	if ln.blockedBy == 0 && len(ln.queue) > 0 {
		next := ln.queue[0]
		ln.queue = ln.queue[1:]
		ln.running = true
		return next
	}
	if ln.blockedBy == 0 && len(ln.queue) == 0 {
		delete(l.m, key) // only records with work or a blocker stay
	}
	return nil
}

// heldMsg is a queued message and the earliest time to release it: after
// its record's blocker comes back.
type heldMsg struct {
	m     *Message
	after time.Time
}

// release removes and returns the queued messages of partition p (every
// partition when p < 0) with their release time: after their blocker.
func (l *lanes) release(p int) []heldMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []heldMsg
	for key, ln := range l.m {
		kept := ln.queue[:0]
		for _, m := range ln.queue {
			if p >= 0 && m.Partition != p {
				kept = append(kept, m)
				continue
			}
			out = append(out, heldMsg{m: m, after: ln.retryAt})
		}
		ln.queue = kept
		if !ln.running && len(ln.queue) == 0 && (p < 0 || ln.blockedBy == 0 || ln.partition == p) {
			delete(l.m, key)
		}
	}
	return out
}

// queuedSeq reports whether seq is queued in key's lane.
func (l *lanes) queuedSeq(key string, seq uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	if ln == nil {
		return false
	}
	_, found := slices.BinarySearchFunc(ln.queue, seq, cmpSeq)
	return found
}

// yield puts the running message m back in its queue (an older event of
// its record arrived behind it) and returns the queue's head to run now.
func (l *lanes) yield(key string, m *Message) *Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	i, _ := slices.BinarySearchFunc(ln.queue, m.Sequence, cmpSeq)
	ln.queue = slices.Insert(ln.queue, i, m)
	next := ln.queue[0]
	ln.queue = ln.queue[1:]
	return next
}

// held returns the queued messages (to keep them alive or release them).
func (l *lanes) held() []*Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Message
	for _, ln := range l.m {
		out = append(out, ln.queue...)
	}
	return out
}
