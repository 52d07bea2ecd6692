package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// PartitionBacklog is what one partition's consumer holds: what an operator
// looks at first when events seem late.
type PartitionBacklog struct {
	Partition int    `json:"partition"`
	Consumer  string `json:"consumer"`
	// Missing: the consumer does not exist yet (no worker ever started).
	Missing bool `json:"missing,omitempty"`
	// Pending: stored, not yet delivered to any worker.
	Pending uint64 `json:"pending"`
	// AckPending: delivered, not yet acknowledged (running, waiting for a
	// retry, or held behind an earlier event of the same record).
	AckPending int `json:"ack_pending"`
	// Redelivered: of AckPending, how many were delivered more than once.
	Redelivered int `json:"redelivered"`
	// Waiting: pull requests from workers waiting for events.
	Waiting int `json:"waiting_pulls"`
	// Pinned: the worker process currently serving the partition ("" none).
	Pinned string `json:"served_by,omitempty"`
	// LastDelivered: when the consumer last handed out an event (zero: never).
	LastDelivered time.Time `json:"last_delivered,omitzero"`
	// OldestWaiting: when the oldest event not yet done (pending or ack
	// pending) was stored; zero when there is none. Now minus this is how
	// late the partition runs.
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
}

// Backlog reads every partition consumer of the events stream. It only
// reads: no consumer is created.
func Backlog(ctx context.Context, js jetstream.JetStream, scfg events.StreamConfig, ccfg events.ConsumerConfig) ([]PartitionBacklog, error) {
	scfg, ccfg = scfg.WithDefaults(), ccfg.WithDefaults()
	stream, err := js.Stream(ctx, scfg.Name)
	if err != nil {
		return nil, fmt.Errorf("worker: stream %s: %w", scfg.Name, err)
	}
	out := make([]PartitionBacklog, scfg.Partitions)
	for p := range scfg.Partitions {
		name := ccfg.Name + "-p" + strconv.Itoa(p)
		b := PartitionBacklog{Partition: p, Consumer: name}
		c, err := js.Consumer(ctx, scfg.Name, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			b.Missing = true
			out[p] = b
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("worker: consumer %s: %w", name, err)
		}
		// Consumer already fetched the info; CachedInfo avoids a second
		// round trip per partition.
		ci := c.CachedInfo()
		b.Pending, b.AckPending, b.Redelivered, b.Waiting = ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting
		if ci.Delivered.Last != nil {
			b.LastDelivered = *ci.Delivered.Last
		}
		for _, g := range ci.PriorityGroups {
			if g.Group == events.PriorityGroup {
				b.Pinned = g.PinnedClientID
			}
		}
		if b.Pending > 0 || b.AckPending > 0 {
			// Everything up to the ack floor is done: the partition's first
			// event after it is the oldest one still waiting.
			m, err := stream.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(events.PartitionFilter(p)))
			if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, fmt.Errorf("worker: oldest event of partition %d: %w", p, err)
			}
			if m != nil {
				b.OldestWaiting = m.Time
			}
		}
		out[p] = b
	}
	return out, nil
}

// Count returns how many dead letters the stream holds.
func (d *DLQ) Count(ctx context.Context) (uint64, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dlq stream %s: %w", d.name, err)
	}
	return info.State.Msgs, nil
}
