package events

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PriorityGroup is the pull priority group every worker process joins.
// Consumers use the "pinned client" policy: the server hands each partition
// to one worker process at a time, and to another when that one stops
// pulling. That, plus in-process serialization per record, is what keeps
// per-record order when several worker processes run.
const PriorityGroup = "zohook-workers"

// ConsumerConfig describes the durable pull consumers the workers share. The
// zero value of each field means its default.
type ConsumerConfig struct {
	// Name prefix of the durable consumers; partition p uses Name + "-p" + p.
	// Default "workers".
	Name string
	// AckWait: how long a delivered event may stay unacknowledged before
	// JetStream redelivers it. Workers send in-progress acks for long events.
	// Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one event; after the last failed one
	// the worker dead-letters it. Default 10; negative means no limit. The
	// worker enforces it, not the server: the consumers are created with no
	// delivery limit, because an event the server stops redelivering (the
	// dead-letter write failed, the worker crashed or shut down during its
	// last delivery) would be lost without a dead letter.
	MaxDeliver int
	// MaxAckPending per partition: events in flight at once. Default 256.
	MaxAckPending int
	// PinnedTTL: how long a silent worker keeps its partitions before another
	// takes over. Default 30s.
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

// PartitionFilter is the subject filter of partition p.
func PartitionFilter(p int) string {
	return SubjectPrefix + ".*.*.*.*.*." + strconv.Itoa(p)
}

// EnsureConsumers creates or updates one durable pull consumer per partition
// of the stream and returns them in partition order.
func EnsureConsumers(ctx context.Context, js jetstream.JetStream, scfg StreamConfig, ccfg ConsumerConfig) ([]jetstream.Consumer, error) {
	scfg = scfg.WithDefaults()
	ccfg = ccfg.WithDefaults()
	out := make([]jetstream.Consumer, scfg.Partitions)
	for p := range scfg.Partitions {
		name := ccfg.Name + "-p" + strconv.Itoa(p)
		c, err := js.CreateOrUpdateConsumer(ctx, scfg.Name, jetstream.ConsumerConfig{
			Durable:        name,
			Description:    fmt.Sprintf("zohook workers, partition %d of %d", p, scfg.Partitions),
			FilterSubject:  PartitionFilter(p),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        ccfg.AckWait,
			MaxDeliver:     -1, // enforced by the worker; see ConsumerConfig.MaxDeliver
			MaxAckPending:  ccfg.MaxAckPending,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{PriorityGroup},
			PinnedTTL:      ccfg.PinnedTTL,
		})
		if err != nil {
			return nil, fmt.Errorf("events: consumer %s: %w", name, err)
		}
		out[p] = c
	}
	return out, nil
}
