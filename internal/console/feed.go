package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/worker"
)

// The index is fed by two ordered consumers (ephemeral, flow-controlled,
// recreated by nats.go after a disconnect from the last sequence seen):
// one on the history stream from its first event (or from the last
// IndexEvents events), one on the outcome stream from the time of the
// first indexed event. Both keep following the streams, so the index (and
// every page watching it) is live.

// historyEnvelope is the part of a stored envelope the index needs.
type historyEnvelope struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Connection string    `json:"connection"`
	Module     string    `json:"module"`
	Operation  string    `json:"operation"`
	RecordID   string    `json:"record_id"`
	ReceivedAt time.Time `json:"received_at"`
}

// sourceHeader is where JetStream says which work-stream message a history
// message copies: "<stream> <seq> ...".
const sourceHeader = "Nats-Stream-Source"

func workSeqOf(h string) uint64 {
	f := strings.Fields(h)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n
}

// feedHistory follows the history stream into the index until ctx ends.
func (c *Console) feedHistory(ctx context.Context) {
	var next uint64 // 0: decide from the stream
	for ctx.Err() == nil {
		err := c.followHistory(ctx, &next)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("console: reading the history stream failed; retrying", "err", err)
		sleep(ctx, 2*time.Second)
	}
}

func (c *Console) followHistory(ctx context.Context, next *uint64) error {
	name := c.cfg.Stream.HistoryName
	st, err := c.cfg.JS.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	start := *next
	if start == 0 {
		start = info.State.FirstSeq
		if info.State.LastSeq >= uint64(c.ix.max) && info.State.LastSeq-uint64(c.ix.max)+1 > start {
			start = info.State.LastSeq - uint64(c.ix.max) + 1
		}
		start = max(start, 1)
		// The outcome feed starts at the time of the first event indexed.
		if info.State.Msgs > 0 {
			if m, err := st.GetMsg(ctx, start); err == nil {
				c.setOutcomeStart(m.Time)
			} else {
				c.setOutcomeStart(info.State.FirstTime)
			}
		} else {
			c.setOutcomeStart(time.Now())
		}
	}
	if info.State.Msgs == 0 || start > info.State.LastSeq {
		c.ix.markLoaded(true)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start}
	return c.follow(ctx, name, cfg, next, func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		var env historyEnvelope
		if err := json.Unmarshal(m.Data(), &env); err == nil && env.ID != "" {
			c.ix.AddEvent(IndexedEvent{Seq: meta.Sequence.Stream, WorkSeq: workSeqOf(m.Headers().Get(sourceHeader)), At: meta.Timestamp,
				ID: env.ID, Source: env.Source, Connection: env.Connection, Module: env.Module, Operation: env.Operation, RecordID: env.RecordID})
		}
		if meta.NumPending == 0 {
			c.ix.markLoaded(true)
		}
	})
}

// follow reads stream with an ordered consumer from cfg until ctx ends or
// reading fails, handing each message to add; *next is the sequence to
// resume from.
func (c *Console) follow(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig, next *uint64, add func(jetstream.Msg, *jetstream.MsgMetadata)) error {
	cons, err := c.cfg.JS.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", stream, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		*next = meta.Sequence.Stream + 1
		add(m, meta)
	}
}

func (c *Console) setOutcomeStart(t time.Time) {
	select {
	case c.outcomeStart <- t.Add(-time.Minute):
	default:
	}
}

// feedOutcomes follows the outcome stream into the index until ctx ends.
func (c *Console) feedOutcomes(ctx context.Context) {
	var start time.Time
	select {
	case start = <-c.outcomeStart:
	case <-ctx.Done():
		return
	}
	var next uint64
	for ctx.Err() == nil {
		err := c.followOutcomes(ctx, start, &next)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			c.ix.markLoaded(false) // a layout without outcome records: nothing to wait for
			sleep(ctx, 10*time.Second)
			continue
		}
		c.log.Warn("console: reading the outcome stream failed; retrying", "err", err)
		sleep(ctx, 2*time.Second)
	}
}

func (c *Console) followOutcomes(ctx context.Context, start time.Time, next *uint64) error {
	st, err := c.cfg.JS.Stream(ctx, worker.DefaultOutcomesStream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start}
	if *next > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: *next}
	}
	if info.State.Msgs == 0 || (*next > info.State.LastSeq) || (*next == 0 && info.State.LastTime.Before(start)) {
		c.ix.markLoaded(false)
	}
	return c.follow(ctx, worker.DefaultOutcomesStream, cfg, next, func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		var rec worker.OutcomeRecord
		if err := json.Unmarshal(m.Data(), &rec); err == nil {
			c.ix.AddOutcome(&rec)
		}
		if meta.NumPending == 0 {
			c.ix.markLoaded(false)
		}
	})
}

// trimLoop drops from the index what the history's retention removed.
func (c *Console) trimLoop(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := c.cfg.JS.Stream(ctx, c.cfg.Stream.HistoryName)
		if err != nil {
			continue
		}
		info, err := st.Info(ctx)
		if err != nil {
			continue
		}
		c.ix.TrimBefore(info.State.FirstSeq)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
