package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/engine"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/reconcile"
	"github.com/zohook/zohook/internal/worker"
)

// The NATS layout is everything zohook keeps in NATS: the work and history
// streams with the partition consumers, the dead-letter stream, and the KV
// buckets. This file is its one list.
//
// Ownership: the receiver creates what is missing at its start (from its
// flags); `worker setup` shows and, with -apply, changes settings. Workers
// and every other command only look the layout up (AwaitLayout) and read
// the settings from NATS, never from their own flags.

// layoutBuckets lists the layout's KV buckets for a stream configuration.
func layoutBuckets(s events.StreamConfig) []events.KVSpec {
	r := s.Replicas
	return []events.KVSpec{
		worker.JournalSpec(worker.JournalConfig{Replicas: r, TTL: worker.JournalTTL(s.HistoryMaxAge)}),
		worker.MembersSpec(r),
		engine.LoopGuardSpec(engine.LoopGuardConfig{Replicas: r}),
		reconcile.SeenSpec(r),
		reconcile.StateSpec(r),
		channels.BucketSpec("", r),
		fleet.TokenBucketSpec("", r),
		fleet.RateBucketSpec("", r, jetstream.MemoryStorage),
		fleet.LeaseBucketSpec("", r),
	}
}

// EnsureLayout brings the layout towards (s, c) as mode allows and returns
// what it found and did.
func EnsureLayout(ctx context.Context, js jetstream.JetStream, s events.StreamConfig, c events.ConsumerConfig, mode events.EnsureMode) ([]events.Outcome, error) {
	s = s.WithDefaults()
	if _, err := js.Stream(ctx, s.Name); errors.Is(err, jetstream.ErrStreamNotFound) {
		// No work stream yet: is this an install of the first layout?
		l1, err := events.FindLayout1(ctx, js)
		if err != nil {
			return nil, err
		}
		if l1 != nil && l1.Active {
			return nil, events.ErrLayout1
		}
	}
	outs, err := events.EnsureEventStreams(ctx, js, s, c, mode)
	if err != nil {
		return outs, err
	}
	for _, spec := range []jetstream.StreamConfig{
		worker.DLQSpec(worker.DLQConfig{Replicas: s.Replicas}),
		worker.OutcomesSpec(s.Replicas, s.HistoryMaxAge, max(s.HistoryMaxBytes/4, 1<<20)),
	} {
		o, err := events.EnsureStream(ctx, js, spec, mode)
		outs = append(outs, o)
		if err != nil {
			return outs, err
		}
	}
	for _, b := range layoutBuckets(s) {
		o, err := events.EnsureKV(ctx, js, b, mode)
		outs = append(outs, o)
		if err != nil {
			return outs, err
		}
	}
	return outs, nil
}

// ownLayout is the receiver's part as the layout's owner: create what is
// missing from its flags, warn about every setting NATS holds that differs
// from them (never changing it), then read the layout back.
func ownLayout(ctx context.Context, bb *Backbone, lo LayoutOptions, log *slog.Logger) error {
	want := lo.Stream()
	var outs []events.Outcome
	err := retryLayout(ctx, log, func(ctx context.Context) error {
		var err error
		outs, err = EnsureLayout(ctx, bb.JS, want, lo.Consumer(), events.CreateMissing)
		return err
	})
	if errors.Is(err, events.ErrLayout1) {
		return fmt.Errorf("nats layout: %w", err)
	}
	if err != nil {
		return fmt.Errorf("nats layout: %w (a receiver whose NATS user may not create streams needs `worker setup -apply` run first)", err)
	}
	created := 0
	for _, o := range outs {
		if o.Created {
			created++
		}
		for _, d := range o.Diffs {
			log.Warn("NATS holds a setting other than this process's flag; keeping NATS's (change it with `worker setup -apply`)",
				"object", d.Object, "setting", d.Setting, "stored", d.Stored, "flag", d.Wanted)
		}
	}
	if created > 0 {
		log.Info("nats layout created", "objects", created, "stream", want.Name, "partitions", want.Partitions, "replicas", want.Replicas)
	}
	return readLayout(ctx, bb)
}

// AwaitLayout waits until the layout exists (a worker may start before the
// receiver created it), then reads it into bb. It changes nothing.
func AwaitLayout(ctx context.Context, bb *Backbone, log *slog.Logger, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := checkLayout(ctx, bb)
		if err == nil {
			return nil
		}
		if !errors.Is(err, events.ErrNoLayout) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		log.Warn("waiting for the NATS layout (start the receiver, or run `worker setup -apply`)", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// checkLayout reads the layout and checks every object is there.
func checkLayout(ctx context.Context, bb *Backbone) error {
	if err := readLayout(ctx, bb); err != nil {
		return err
	}
	outs, err := EnsureLayout(ctx, bb.JS, bb.Stream, bb.Consumer, events.LookupOnly)
	if err != nil {
		return err
	}
	var missing []string
	for _, o := range outs {
		if o.Missing {
			missing = append(missing, o.Object)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %v", events.ErrNoLayout, missing)
	}
	return nil
}

// readLayout fills bb.Stream and bb.Consumer from NATS.
func readLayout(ctx context.Context, bb *Backbone) error {
	s, err := events.ReadLayout(ctx, bb.JS, events.StreamConfig{})
	if errors.Is(err, events.ErrNoLayout) {
		if l1, ferr := events.FindLayout1(ctx, bb.JS); ferr == nil && l1 != nil && l1.Active {
			return events.ErrLayout1
		}
	}
	if err != nil {
		return err
	}
	c, err := bb.JS.Consumer(ctx, s.Name, events.ConsumerConfig{}.ConsumerName(0))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%w: consumer %s of stream %s is missing", events.ErrNoLayout, events.ConsumerConfig{}.ConsumerName(0), s.Name)
	}
	if err != nil {
		return fmt.Errorf("consumer of partition 0: %w", err)
	}
	ci := c.CachedInfo().Config
	bb.Stream = s
	bb.Consumer = events.ConsumerConfig{AckWait: ci.AckWait, PinnedTTL: ci.PinnedTTL, MaxAckPending: ci.MaxAckPending}.WithDefaults()
	return nil
}

// retryLayout retries f while the cluster is not ready (a fresh R3 cluster
// elects its leaders for several seconds); configuration errors are final.
func retryLayout(ctx context.Context, log *slog.Logger, f func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) || isFinal(err) {
			return err
		}
		log.Warn("setting up the NATS layout failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// isFinal reports errors no retry fixes: NATS refused the request itself.
func isFinal(err error) bool {
	if errors.Is(err, events.ErrLayout1) {
		return true
	}
	if errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrAuthorization) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 400 && apiErr.Code < 500 && apiErr.Code != 408
	}
	return false
}
