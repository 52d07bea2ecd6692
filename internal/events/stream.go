package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig describes zohook's two event streams. The zero value of every
// field means its documented default; see WithDefaults.
//
// Work and history are kept apart so that retention can never drop an
// event nobody handled:
//
//   - The work stream (ZOHOOK_WORK) is what the receiver publishes to and
//     the workers consume. Interest retention: an event stays until its
//     partition's consumer acknowledged it (done or dead-lettered), and no
//     age limit applies. When it reaches WorkMaxBytes it refuses new events
//     (discard new), and the receiver answers 503 so Zoho retries later.
//   - The history stream (ZOHOOK_HISTORY) sources every event from the work
//     stream and keeps it for HistoryMaxAge / HistoryMaxBytes (oldest go
//     first) for replay, the console and "what if" rule tests.
type StreamConfig struct {
	// Name of the work stream. Default "ZOHOOK_WORK".
	Name string
	// HistoryName of the history stream. Default "ZOHOOK_HISTORY".
	HistoryName string
	// Replicas: 1 for a single server, 3 for a cluster. Default 1.
	Replicas int
	// WorkMaxBytes caps the events waiting to be handled; beyond it the
	// receiver answers 503. Default 4 GiB.
	WorkMaxBytes int64
	// HistoryMaxAge keeps events this long for replay. Default 30 days.
	HistoryMaxAge time.Duration
	// HistoryMaxBytes caps the history; the oldest events go first. Default 10 GiB.
	HistoryMaxBytes int64
	// DuplicateWindow: a callback Zoho sends twice within it is stored once.
	// Default 10m.
	DuplicateWindow time.Duration
	// Partitions: see DefaultPartitions. Default 16.
	Partitions int
}

// Defaults for StreamConfig.
const (
	DefaultStreamName      = "ZOHOOK_WORK"
	DefaultHistoryName     = "ZOHOOK_HISTORY"
	DefaultWorkMaxBytes    = 4 << 30
	DefaultMaxAge          = 30 * 24 * time.Hour
	DefaultMaxBytes        = 10 << 30
	DefaultDuplicateWindow = 10 * time.Minute
)

// Metadata keys the work stream carries, so every process reads the layout
// from NATS rather than from its own flags.
const (
	MetaPartitions = "zohook.partitions"
	MetaLayout     = "zohook.layout"
	// LayoutVersion is the layout this build creates and understands.
	LayoutVersion = "2"
)

// WithDefaults returns c with zero fields set to their defaults.
func (c StreamConfig) WithDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.HistoryName == "" {
		c.HistoryName = DefaultHistoryName
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.WorkMaxBytes == 0 {
		c.WorkMaxBytes = DefaultWorkMaxBytes
	}
	if c.HistoryMaxAge <= 0 {
		c.HistoryMaxAge = DefaultMaxAge
	}
	if c.HistoryMaxBytes == 0 {
		c.HistoryMaxBytes = DefaultMaxBytes
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	return c
}

// WorkSpec is the work stream's JetStream configuration.
func (c StreamConfig) WorkSpec() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "zohook: Zoho events waiting to be handled, one message per changed record",
		Subjects:    []string{SubjectPrefix + ".>"},
		// Interest: kept until the partition consumer acknowledged it.
		Retention: jetstream.InterestPolicy,
		Storage:   jetstream.FileStorage,
		Replicas:  c.Replicas,
		MaxBytes:  c.WorkMaxBytes,
		// Full: refuse the new event (the receiver answers 503), never drop
		// an accepted one.
		Discard:    jetstream.DiscardNew,
		Duplicates: c.DuplicateWindow,
		// Reads of this stream decide ordering ("is an older event of the
		// record still here?"): only the leader answers, never a replica
		// that may lag behind.
		AllowDirect: false,
		Metadata:    map[string]string{MetaPartitions: strconv.Itoa(c.Partitions), MetaLayout: LayoutVersion},
	}
}

// HistorySpec is the history stream's JetStream configuration.
func (c StreamConfig) HistorySpec() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.HistoryName,
		Description: "zohook: every event received, kept for replay and inspection",
		Sources:     []*jetstream.StreamSource{{Name: c.Name}},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.HistoryMaxAge,
		MaxBytes:    c.HistoryMaxBytes,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}
}

// ErrNoLayout: the streams zohook needs do not exist (yet) in NATS.
var ErrNoLayout = errors.New("the zohook streams do not exist in NATS")

// ReadLayout reads the stream configuration from the streams NATS holds:
// what every process uses instead of its own flags. It only reads.
func ReadLayout(ctx context.Context, js jetstream.JetStream, names StreamConfig) (StreamConfig, error) {
	c := names.WithDefaults()
	ws, err := js.Stream(ctx, c.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return c, fmt.Errorf("%w: stream %s is missing (the receiver creates it at its first start, or run `worker setup`)", ErrNoLayout, c.Name)
	}
	if err != nil {
		return c, fmt.Errorf("events: stream %s: %w", c.Name, err)
	}
	wc := ws.CachedInfo().Config
	if wc.Retention != jetstream.InterestPolicy {
		return c, fmt.Errorf("%w: stream %s has %s retention, not interest: it is not a zohook work stream", ErrNoLayout, c.Name, wc.Retention)
	}
	p, err := strconv.Atoi(wc.Metadata[MetaPartitions])
	if err != nil || p <= 0 {
		return c, fmt.Errorf("%w: stream %s carries no valid %s metadata", ErrNoLayout, c.Name, MetaPartitions)
	}
	c.Partitions, c.Replicas, c.WorkMaxBytes, c.DuplicateWindow = p, wc.Replicas, wc.MaxBytes, wc.Duplicates
	hs, err := js.Stream(ctx, c.HistoryName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return c, fmt.Errorf("%w: stream %s is missing (the receiver creates it at its first start, or run `worker setup`)", ErrNoLayout, c.HistoryName)
	}
	if err != nil {
		return c, fmt.Errorf("events: stream %s: %w", c.HistoryName, err)
	}
	hc := hs.CachedInfo().Config
	c.HistoryMaxAge, c.HistoryMaxBytes = hc.MaxAge, hc.MaxBytes
	return c, nil
}
