package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureMode says what Ensure* may do to the NATS layout.
//
// The layout (streams, consumers, buckets) has one owner: the receiver,
// which creates what is missing at its start, and `worker setup`, which an
// operator runs to change settings. Every other process and command only
// looks it up (LookupOnly). Nothing ever shrinks retention, limits or
// replicas unless an operator asked for exactly that (ApplyShrink).
type EnsureMode int

const (
	// LookupOnly changes nothing: missing objects and differences are reported.
	LookupOnly EnsureMode = iota
	// CreateMissing creates missing objects; existing ones are left as they are.
	CreateMissing
	// ApplyGrow also changes existing objects towards the wanted settings,
	// except changes that shrink (see Difference.Shrinks).
	ApplyGrow
	// ApplyShrink applies every change, shrinking ones included.
	ApplyShrink
)

// Difference is one setting of an existing object that differs from what
// the flags ask for.
type Difference struct {
	Object  string `json:"object"`  // e.g. "stream ZOHOOK_WORK", "bucket zohook_journal"
	Setting string `json:"setting"` // e.g. "max_bytes"
	Stored  string `json:"stored"`
	Wanted  string `json:"wanted"`
	// Shrinks: applying it can delete stored data or lower redundancy.
	Shrinks bool `json:"shrinks,omitempty"`
	// Immutable: NATS cannot change it on an existing object.
	Immutable bool `json:"immutable,omitempty"`
}

func (d Difference) String() string {
	s := fmt.Sprintf("%s: %s is %s, wanted %s", d.Object, d.Setting, d.Stored, d.Wanted)
	switch {
	case d.Immutable:
		s += " (cannot be changed in place)"
	case d.Shrinks:
		s += " (shrinks)"
	}
	return s
}

// Outcome is what Ensure* found and did for one object.
type Outcome struct {
	Object  string       `json:"object"`
	Missing bool         `json:"missing,omitempty"` // absent and not created
	Created bool         `json:"created,omitempty"`
	Changed bool         `json:"changed,omitempty"` // differences applied
	Diffs   []Difference `json:"differences,omitempty"`
	// Refused: differences that were not applied (mode, shrinking or immutable).
	Refused []Difference `json:"refused,omitempty"`
}

// setting is one compared field.
type setting struct {
	name           string
	stored, wanted string
	// lowerShrinks: a wanted value below the stored one shrinks.
	lowerShrinks bool
	immutable    bool
	lower        bool // wanted < stored (numeric)
}

func num(name string, stored, wanted int64, lowerShrinks bool, format func(int64) string) setting {
	if format == nil {
		format = func(v int64) string { return strconv.FormatInt(v, 10) }
	}
	// Zero and negative mean "unlimited" for NATS limits.
	norm := func(v int64) int64 {
		if v <= 0 {
			return 1<<63 - 1
		}
		return v
	}
	return setting{name: name, stored: format(stored), wanted: format(wanted), lowerShrinks: lowerShrinks, lower: norm(wanted) < norm(stored)}
}

func dur(name string, stored, wanted time.Duration, lowerShrinks bool) setting {
	return num(name, int64(stored), int64(wanted), lowerShrinks, func(v int64) string {
		if v <= 0 {
			return "unlimited"
		}
		return FormatDuration(time.Duration(v))
	})
}

func bytesSetting(name string, stored, wanted int64) setting {
	return num(name, stored, wanted, true, func(v int64) string {
		if v <= 0 {
			return "unlimited"
		}
		return strconv.FormatInt(v, 10)
	})
}

func str(name, stored, wanted string, immutable bool) setting {
	return setting{name: name, stored: stored, wanted: wanted, immutable: immutable}
}

// FormatDuration prints a duration the way people write it: 720h, 10m,
// 30s, 1h30m (not 10m0s).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func diffs(object string, ss []setting) []Difference {
	var out []Difference
	for _, s := range ss {
		if s.stored == s.wanted {
			continue
		}
		out = append(out, Difference{Object: object, Setting: s.name, Stored: s.stored, Wanted: s.wanted,
			Shrinks: s.lowerShrinks && s.lower, Immutable: s.immutable})
	}
	return out
}

// split divides differences into those mode allows to apply and the rest.
func split(mode EnsureMode, ds []Difference) (apply, refuse []Difference) {
	for _, d := range ds {
		if mode >= ApplyShrink && !d.Immutable || mode == ApplyGrow && !d.Shrinks && !d.Immutable {
			apply = append(apply, d)
		} else {
			refuse = append(refuse, d)
		}
	}
	return apply, refuse
}

func streamSettings(stored, want jetstream.StreamConfig) []setting {
	ss := []setting{
		str("retention", stored.Retention.String(), want.Retention.String(), true),
		str("storage", stored.Storage.String(), want.Storage.String(), true),
		num("replicas", int64(stored.Replicas), int64(want.Replicas), true, nil),
		bytesSetting("max_bytes", stored.MaxBytes, want.MaxBytes),
		dur("max_age", stored.MaxAge, want.MaxAge, true),
		str("discard", stored.Discard.String(), want.Discard.String(), false),
		str("subjects", strings.Join(stored.Subjects, ","), strings.Join(want.Subjects, ","), false),
		str("sources", sourceNames(stored.Sources), sourceNames(want.Sources), false),
		str("allow_direct", strconv.FormatBool(stored.AllowDirect), strconv.FormatBool(want.AllowDirect), false),
	}
	if want.Duplicates > 0 {
		ss = append(ss, dur("duplicate_window", stored.Duplicates, want.Duplicates, true))
	}
	if want.MaxMsgsPerSubject != 0 {
		ss = append(ss, num("max_msgs_per_subject", stored.MaxMsgsPerSubject, want.MaxMsgsPerSubject, true, nil))
	}
	for _, k := range slices.Sorted(maps.Keys(want.Metadata)) {
		// The partition count cannot change on a live layout: events already
		// stored sit in the old partitions.
		ss = append(ss, str("metadata "+k, stored.Metadata[k], want.Metadata[k], k == MetaPartitions))
	}
	return ss
}

func sourceNames(ss []*jetstream.StreamSource) string {
	names := make([]string, 0, len(ss))
	for _, s := range ss {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

// EnsureStream looks up the stream want.Name and, as mode allows, creates
// it or changes it towards want.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, mode EnsureMode) (Outcome, error) {
	out := Outcome{Object: "stream " + want.Name}
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if mode == LookupOnly {
			out.Missing = true
			return out, nil
		}
		if _, err := js.CreateStream(ctx, want); err != nil {
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return EnsureStream(ctx, js, want, LookupOnly) // another process created it first
			}
			return out, fmt.Errorf("events: create %s: %w", out.Object, err)
		}
		out.Created = true
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("events: %s: %w", out.Object, err)
	}
	stored := s.CachedInfo().Config
	out.Diffs = diffs(out.Object, streamSettings(stored, want))
	apply, refuse := split(mode, out.Diffs)
	out.Refused = refuse
	if len(apply) == 0 {
		return out, nil
	}
	next := stored
	for _, d := range apply {
		applyStreamSetting(&next, want, d.Setting)
	}
	if _, err := js.UpdateStream(ctx, next); err != nil {
		return out, fmt.Errorf("events: update %s: %w", out.Object, err)
	}
	out.Changed = true
	return out, nil
}

func applyStreamSetting(c *jetstream.StreamConfig, want jetstream.StreamConfig, name string) {
	switch name {
	case "replicas":
		c.Replicas = want.Replicas
	case "max_bytes":
		c.MaxBytes = want.MaxBytes
	case "max_age":
		c.MaxAge = want.MaxAge
	case "discard":
		c.Discard = want.Discard
	case "subjects":
		c.Subjects = want.Subjects
	case "sources":
		c.Sources = want.Sources
	case "allow_direct":
		c.AllowDirect = want.AllowDirect
	case "duplicate_window":
		c.Duplicates = want.Duplicates
	case "max_msgs_per_subject":
		c.MaxMsgsPerSubject = want.MaxMsgsPerSubject
	default:
		if k, ok := strings.CutPrefix(name, "metadata "); ok {
			c.Metadata = maps.Clone(c.Metadata)
			if c.Metadata == nil {
				c.Metadata = map[string]string{}
			}
			c.Metadata[k] = want.Metadata[k]
		}
	}
}

// EnsureConsumer looks up the durable consumer want.Durable of stream and,
// as mode allows, creates it or changes it towards want.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig, mode EnsureMode) (Outcome, error) {
	out := Outcome{Object: "consumer " + stream + "/" + want.Durable}
	c, err := js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if mode == LookupOnly {
			out.Missing = true
			return out, nil
		}
		if _, err := js.CreateConsumer(ctx, stream, want); err != nil {
			if errors.Is(err, jetstream.ErrConsumerExists) {
				return EnsureConsumer(ctx, js, stream, want, LookupOnly)
			}
			return out, fmt.Errorf("events: create %s: %w", out.Object, err)
		}
		out.Created = true
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("events: %s: %w", out.Object, err)
	}
	stored := c.CachedInfo().Config
	out.Diffs = diffs(out.Object, []setting{
		str("filter_subject", stored.FilterSubject, want.FilterSubject, true),
		dur("ack_wait", stored.AckWait, want.AckWait, false),
		num("max_ack_pending", int64(stored.MaxAckPending), int64(want.MaxAckPending), false, nil),
		dur("pinned_ttl", stored.PinnedTTL, want.PinnedTTL, false),
		num("max_deliver", int64(stored.MaxDeliver), int64(want.MaxDeliver), true, nil),
	})
	apply, refuse := split(mode, out.Diffs)
	out.Refused = refuse
	if len(apply) == 0 {
		return out, nil
	}
	next := stored
	for _, d := range apply {
		switch d.Setting {
		case "ack_wait":
			next.AckWait = want.AckWait
		case "max_ack_pending":
			next.MaxAckPending = want.MaxAckPending
		case "pinned_ttl":
			next.PinnedTTL = want.PinnedTTL
		case "max_deliver":
			next.MaxDeliver = want.MaxDeliver
		}
	}
	if _, err := js.UpdateConsumer(ctx, stream, next); err != nil {
		return out, fmt.Errorf("events: update %s: %w", out.Object, err)
	}
	out.Changed = true
	return out, nil
}

// KVSpec is a bucket of the layout.
type KVSpec struct {
	jetstream.KeyValueConfig
	// LeaderReads: reads go to the stream leader, never a replica that may
	// lag behind (read-your-writes for the step journal).
	LeaderReads bool
}

// KVStreamName is the stream behind a KV bucket.
func KVStreamName(bucket string) string { return "KV_" + bucket }

// EnsureKV looks up the bucket want.Bucket and, as mode allows, creates it
// or changes it towards want.
func EnsureKV(ctx context.Context, js jetstream.JetStream, want KVSpec, mode EnsureMode) (Outcome, error) {
	out := Outcome{Object: "bucket " + want.Bucket}
	s, err := js.Stream(ctx, KVStreamName(want.Bucket))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if mode == LookupOnly {
			out.Missing = true
			return out, nil
		}
		if _, err := js.CreateKeyValue(ctx, want.KeyValueConfig); err != nil {
			if !errors.Is(err, jetstream.ErrBucketExists) {
				return out, fmt.Errorf("events: create %s: %w", out.Object, err)
			}
			return EnsureKV(ctx, js, want, LookupOnly)
		}
		if want.LeaderReads {
			s, err := js.Stream(ctx, KVStreamName(want.Bucket))
			if err != nil {
				return out, fmt.Errorf("events: %s: %w", out.Object, err)
			}
			c := s.CachedInfo().Config
			c.AllowDirect = false
			if _, err := js.UpdateStream(ctx, c); err != nil {
				return out, fmt.Errorf("events: %s: leader reads: %w", out.Object, err)
			}
		}
		out.Created = true
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("events: %s: %w", out.Object, err)
	}
	stored := s.CachedInfo().Config
	history := int64(max(want.History, 1))
	out.Diffs = diffs(out.Object, []setting{
		str("storage", stored.Storage.String(), want.Storage.String(), true),
		num("replicas", int64(stored.Replicas), int64(max(want.Replicas, 1)), true, nil),
		dur("ttl", stored.MaxAge, want.TTL, true),
		num("history", stored.MaxMsgsPerSubject, history, true, nil),
		bytesSetting("max_bytes", stored.MaxBytes, want.MaxBytes),
		dur("limit_marker_ttl", stored.SubjectDeleteMarkerTTL, want.LimitMarkerTTL, false),
		str("allow_direct", strconv.FormatBool(stored.AllowDirect), strconv.FormatBool(!want.LeaderReads), false),
	})
	apply, refuse := split(mode, out.Diffs)
	out.Refused = refuse
	if len(apply) == 0 {
		return out, nil
	}
	next := stored
	for _, d := range apply {
		switch d.Setting {
		case "replicas":
			next.Replicas = max(want.Replicas, 1)
		case "ttl":
			next.MaxAge = want.TTL
		case "history":
			next.MaxMsgsPerSubject = history
		case "max_bytes":
			next.MaxBytes = want.MaxBytes
			if next.MaxBytes == 0 {
				next.MaxBytes = -1
			}
		case "limit_marker_ttl":
			next.SubjectDeleteMarkerTTL = want.LimitMarkerTTL
			next.AllowMsgTTL = next.AllowMsgTTL || want.LimitMarkerTTL > 0
		case "allow_direct":
			next.AllowDirect = !want.LeaderReads
		}
	}
	if _, err := js.UpdateStream(ctx, next); err != nil {
		return out, fmt.Errorf("events: update %s: %w", out.Object, err)
	}
	out.Changed = true
	return out, nil
}

// EnsureEventStreams ensures the work stream, the history stream and the
// partition consumers, in that order. The history's source consumer must
// exist on the work stream before anything is acknowledged there: an
// interest stream deletes an event once every consumer that exists has
// acknowledged it, so an event acknowledged by a worker before the source
// was set up would never reach the history. The partition consumers must
// exist before the first event is stored: an event no consumer wants is
// not kept for processing.
func EnsureEventStreams(ctx context.Context, js jetstream.JetStream, scfg StreamConfig, ccfg ConsumerConfig, mode EnsureMode) ([]Outcome, error) {
	scfg = scfg.WithDefaults()
	var outs []Outcome
	o, err := EnsureStream(ctx, js, scfg.WorkSpec(), mode)
	outs = append(outs, o)
	if err != nil || o.Missing {
		return outs, err
	}
	if !o.Created {
		// The stored partition count rules (it never changes in place):
		// consumers for partitions the stream does not have would never
		// receive an event.
		s, err := js.Stream(ctx, scfg.Name)
		if err != nil {
			return outs, fmt.Errorf("events: stream %s: %w", scfg.Name, err)
		}
		if p, err := strconv.Atoi(s.CachedInfo().Config.Metadata[MetaPartitions]); err == nil && p > 0 {
			scfg.Partitions = p
		}
	}
	o, err = EnsureStream(ctx, js, scfg.HistorySpec(), mode)
	outs = append(outs, o)
	if err != nil {
		return outs, err
	}
	if !o.Missing {
		if err := awaitHistorySource(ctx, js, scfg.Name); err != nil {
			return outs, err
		}
	}
	for p := range scfg.Partitions {
		o, err := EnsureConsumer(ctx, js, scfg.Name, ccfg.Spec(p, scfg.Partitions), mode)
		outs = append(outs, o)
		if err != nil {
			return outs, err
		}
	}
	return outs, nil
}

// sourceConsumerPrefix names the consumers NATS creates on a stream that
// another stream sources from.
const sourceConsumerPrefix = "JS_SRC_"

// awaitHistorySource waits until the history's source consumer exists on
// the work stream (NATS sets it up asynchronously after the history stream
// is created).
func awaitHistorySource(ctx context.Context, js jetstream.JetStream, work string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, work)
	if err != nil {
		return fmt.Errorf("events: stream %s: %w", work, err)
	}
	for {
		names := s.ConsumerNames(ctx)
		for n := range names.Name() {
			if strings.HasPrefix(n, sourceConsumerPrefix) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("events: the history stream does not source %s yet: %w", work, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
