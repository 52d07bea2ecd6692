package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// ReplayHistory re-publishes every event the history stream holds since
// `since` (optionally only those matching filter, a subject such as
// zoho.crm.notify.*.deals.>) so the current rules process them again.
// Event ids stay the same, so steps already journaled as done are not
// repeated; every event of one run gets the same replay number, so running
// it twice within the duplicate window stores each event once. Events of
// one record are re-published one after another in their original order
// (different records concurrently), so a record's update never lands
// before its create. It returns how many events it re-published (with
// ReplayOptions.DryRun: would re-publish).
func ReplayHistory(ctx context.Context, js jetstream.JetStream, scfg events.StreamConfig, pub *events.Publisher, since time.Time, filter string, opts ...ReplayOptions) (int, error) {
	var o ReplayOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	scfg = scfg.WithDefaults()
	if filter == "" {
		filter = events.SubjectPrefix + ".>"
	}
	cons, err := js.OrderedConsumer(ctx, scfg.HistoryName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	left, total := info.NumPending, info.NumPending
	var read uint64
	run := time.Now().UnixNano()
	n := 0
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return n, fmt.Errorf("replay fetch: %w", err)
		}
		got := 0
		var envs []*events.Envelope
		for m := range batch.Messages() {
			got++
			read++
			meta, err := m.Metadata()
			if err == nil {
				left = meta.NumPending
			}
			env, err := events.Decode(m.Data())
			if err != nil {
				continue // not an envelope: nothing to replay
			}
			if env.Replay != 0 && env.Replay >= run {
				continue // published by this very run
			}
			env.Replay = run
			envs = append(envs, env)
			if o.OnEvent != nil {
				o.OnEvent(m.Subject(), env)
			}
		}
		if err := batch.Error(); err != nil {
			return n, fmt.Errorf("replay fetch: %w", err)
		}
		if len(envs) > 0 && !o.DryRun {
			if err := publishInRecordOrder(ctx, pub, envs); err != nil {
				return n, fmt.Errorf("replay publish: %w", err)
			}
		}
		n += len(envs)
		if o.Progress != nil {
			o.Progress(ReplayProgress{Read: read, Total: total, Replayed: n})
		}
		if got == 0 {
			break
		}
	}
	return n, nil
}

// ReplayOptions tunes ReplayHistory (the zero value replays).
type ReplayOptions struct {
	// DryRun reads the history and reports, re-publishing nothing.
	DryRun bool
	// OnEvent is called for each event re-published (or, with DryRun,
	// that would be), with its subject in the history.
	OnEvent func(subject string, env *events.Envelope)
	// Progress is called after each batch read from the history.
	Progress func(ReplayProgress)
}

// ReplayProgress is how far a replay is.
type ReplayProgress struct {
	Read, Total uint64 // history messages read, of those matching when it started
	Replayed    int    // events re-published (DryRun: counted)
}

// publishInRecordOrder publishes envs (in stream order) in waves: each wave
// holds the next event of every record, so records go concurrently and
// each record's events one after another, in order.
func publishInRecordOrder(ctx context.Context, pub *events.Publisher, envs []*events.Envelope) error {
	queues := map[string][]*events.Envelope{}
	var order []string
	for _, e := range envs {
		k := events.RecordKey(e)
		if _, ok := queues[k]; !ok {
			order = append(order, k)
		}
		queues[k] = append(queues[k], e)
	}
	for len(order) > 0 {
		wave := make([]*events.Envelope, 0, len(order))
		next := order[:0]
		for _, k := range order {
			q := queues[k]
			wave = append(wave, q[0])
			if queues[k] = q[1:]; len(queues[k]) > 0 {
				next = append(next, k)
			}
		}
		order = next
		if _, err := pub.Publish(ctx, wave); err != nil {
			return err
		}
	}
	return nil
}
