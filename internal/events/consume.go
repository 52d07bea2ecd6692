package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PriorityGroup is the pull priority group every worker process joins.
// Consumers use the "pinned client" policy: the server hands each partition
// to one worker process at a time. Which process pulls which partition is
// decided by the workers themselves (see internal/worker's membership); the
// pin is the server's guarantee that two never get the same partition at
// once, even while they disagree about the assignment.
const PriorityGroup = "zohook-workers"

// ConsumerConfig describes the durable pull consumers the workers share, one
// per partition of the work stream. They are part of the NATS layout: the
// receiver (or `worker setup`) creates them, before any event is stored, so
// that every event has a consumer interested in it. The zero value of each
// field means its default.
type ConsumerConfig struct {
	// Name prefix of the durable consumers; partition p uses Name + "-p" + p.
	// Default "workers".
	Name string
	// AckWait: how long a delivered event may stay unacknowledged before
	// JetStream redelivers it. Workers send in-progress acks for long events.
	// Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds handler failures of one event before the worker
	// dead-letters it. Default 10; negative means no limit. The worker
	// enforces it, counting failures in the event's journal entry, not the
	// server's deliveries: a release at shutdown is not a failure, and an
	// event the server stopped redelivering would be lost without a dead
	// letter. The consumers have no delivery limit.
	MaxDeliver int
	// MaxAckPending per partition: events in flight at once. Default 256.
	MaxAckPending int
	// PinnedTTL: how long a silent worker keeps a partition before the
	// server unpins it. Workers normally hand partitions over sooner (see
	// internal/worker); this is the backstop. Default 30s.
	PinnedTTL time.Duration
}

// Defaults for ConsumerConfig.
const (
	DefaultConsumerName  = "workers"
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 10
	DefaultMaxAckPending = 256
	DefaultPinnedTTL     = 30 * time.Second
)

// WithDefaults returns c with zero fields set to their defaults.
func (c ConsumerConfig) WithDefaults() ConsumerConfig {
	if c.Name == "" {
		c.Name = DefaultConsumerName
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = DefaultPinnedTTL
	}
	return c
}

// ConsumerName is the durable name of partition p's consumer.
func (c ConsumerConfig) ConsumerName(p int) string {
	return c.WithDefaults().Name + "-p" + strconv.Itoa(p)
}

// Spec is the JetStream configuration of partition p's consumer.
func (c ConsumerConfig) Spec(p, partitions int) jetstream.ConsumerConfig {
	c = c.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable:        c.ConsumerName(p),
		Description:    fmt.Sprintf("zohook workers, partition %d of %d", p, partitions),
		FilterSubject:  PartitionFilter(p),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     -1, // enforced by the worker; see ConsumerConfig.MaxDeliver
		MaxAckPending:  c.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      c.PinnedTTL,
	}
}

// PartitionConsumers looks up the consumer of every partition of the work
// stream, in partition order. It only reads: a missing consumer is an
// ErrNoLayout error.
func PartitionConsumers(ctx context.Context, js jetstream.JetStream, scfg StreamConfig, ccfg ConsumerConfig) ([]jetstream.Consumer, error) {
	scfg = scfg.WithDefaults()
	out := make([]jetstream.Consumer, scfg.Partitions)
	for p := range scfg.Partitions {
		name := ccfg.ConsumerName(p)
		c, err := js.Consumer(ctx, scfg.Name, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("%w: consumer %s of stream %s is missing", ErrNoLayout, name, scfg.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("events: consumer %s: %w", name, err)
		}
		out[p] = c
	}
	return out, nil
}
