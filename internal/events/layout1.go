package events

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// zohook's first NATS layout kept every event in one limits-retention
// stream, ZOHOOK_EVENTS, on the subjects zoho.>: the work stream of this
// layout cannot be created beside it (NATS refuses overlapping subjects).
// Upgrading retires it once (`worker setup -apply -retire-layout1`): the
// stream stops taking new events (its subjects move to a subject nobody
// publishes to; its messages stay), the layout-1 workers finish what it
// still holds, then this layout is created. Nothing is deleted: the old
// stream keeps its events until its own max age, or until an operator
// removes it.

// Layout1Stream is the events stream of zohook's first NATS layout.
const Layout1Stream = "ZOHOOK_EVENTS"

// Layout1RetiredSubject is what a retired layout-1 stream listens on.
const Layout1RetiredSubject = "zohook.retired.layout1"

// ErrLayout1: NATS holds zohook's first layout, still taking events.
var ErrLayout1 = errors.New("NATS holds zohook's first layout (stream " + Layout1Stream +
	" on the zoho.> subjects), which this version replaces: retire it once with `worker setup -apply -retire-layout1` (README: Upgrading from layout 1)")

// Layout1 is a layout-1 events stream found in NATS.
type Layout1 struct {
	stream jetstream.Stream
	// Active: the stream still takes the zoho.> subjects (not retired).
	Active bool
	// Messages the stream holds.
	Messages uint64
}

// FindLayout1 returns the layout-1 stream, or nil when NATS holds none.
func FindLayout1(ctx context.Context, js jetstream.JetStream) (*Layout1, error) {
	s, err := js.Stream(ctx, Layout1Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events: look up %s: %w", Layout1Stream, err)
	}
	info := s.CachedInfo()
	return &Layout1{stream: s, Active: !slices.Equal(info.Config.Subjects, []string{Layout1RetiredSubject}), Messages: info.State.Msgs}, nil
}

// Retire makes the stream stop taking events: its subjects become
// Layout1RetiredSubject. Its messages and consumers stay, so layout-1
// workers still finish what it holds; layout-1 receivers can no longer
// store anything (their callbacks get an error answer, not a 2xx).
func (l *Layout1) Retire(ctx context.Context, js jetstream.JetStream) error {
	cfg := l.stream.CachedInfo().Config
	cfg.Subjects = []string{Layout1RetiredSubject}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("events: retire %s: %w", Layout1Stream, err)
	}
	l.Active = false
	return nil
}

// Unhandled counts the events the stream's durable consumers (the layout-1
// workers' partitions) have not settled: not delivered yet, or delivered
// and not acknowledged. Without any durable consumer no layout-1 worker
// ever started: every stored event is unhandled.
func (l *Layout1) Unhandled(ctx context.Context) (uint64, error) {
	var n uint64
	durables := 0
	lister := l.stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" {
			continue // an ordered reader (status, replay), not a worker
		}
		durables++
		n += ci.NumPending + uint64(ci.NumAckPending)
	}
	if err := lister.Err(); err != nil {
		return 0, fmt.Errorf("events: consumers of %s: %w", Layout1Stream, err)
	}
	if durables == 0 {
		info, err := l.stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("events: %s: %w", Layout1Stream, err)
		}
		return info.State.Msgs, nil
	}
	return n, nil
}
