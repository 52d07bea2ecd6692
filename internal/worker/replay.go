package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// ReplayHistory re-publishes every event stored since `since` (optionally
// only those matching filter, a subject such as zoho.crm.notify.*.Deals.>)
// so the current rules process them again. Event ids stay the same, so steps
// already journaled as done are not repeated; every event of one run gets
// the same replay number, so running it twice within the duplicate window
// stores each event once. It returns how many events it re-published.
func ReplayHistory(ctx context.Context, js jetstream.JetStream, scfg events.StreamConfig, pub *events.Publisher, since time.Time, filter string) (int, error) {
	scfg = scfg.WithDefaults()
	if filter == "" {
		filter = events.SubjectPrefix + ".>"
	}
	cons, err := js.OrderedConsumer(ctx, scfg.Name, jetstream.OrderedConsumerConfig{
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
	left := info.NumPending
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
		}
		if err := batch.Error(); err != nil {
			return n, fmt.Errorf("replay fetch: %w", err)
		}
		if len(envs) > 0 {
			if _, err := pub.Publish(ctx, envs); err != nil {
				return n, fmt.Errorf("replay publish: %w", err)
			}
			n += len(envs)
		}
		if got == 0 {
			break
		}
	}
	return n, nil
}
