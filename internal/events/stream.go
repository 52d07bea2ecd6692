package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig describes the events stream. The zero value of every field
// means its documented default; see WithDefaults.
type StreamConfig struct {
	// Name of the stream. Default "ZOHOOK_EVENTS".
	Name string
	// Replicas: 1 for a single server, 3 for a cluster. Default 1.
	Replicas int
	// MaxAge keeps events this long so history can be replayed (for example
	// after fixing a rule). Default 30 days (720h).
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest events go first. Default 10 GiB.
	MaxBytes int64
	// DuplicateWindow: a callback Zoho sends twice within it is stored once.
	// Default 10m.
	DuplicateWindow time.Duration
	// Partitions: see DefaultPartitions. Default 16.
	Partitions int
}

// Defaults for StreamConfig.
const (
	DefaultStreamName      = "ZOHOOK_EVENTS"
	DefaultMaxAge          = 30 * 24 * time.Hour
	DefaultMaxBytes        = 10 << 30
	DefaultDuplicateWindow = 10 * time.Minute
)

// WithDefaults returns c with zero fields set to their defaults.
func (c StreamConfig) WithDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	return c
}

func (c StreamConfig) jetstream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "zohook: Zoho events, one message per changed record",
		Subjects:    []string{SubjectPrefix + ".>"},
		// Limits retention, not WorkQueue/Interest: events outlive their ack so
		// an operator can replay history after fixing a rule.
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  c.DuplicateWindow,
		AllowDirect: true,
	}
}

// EnsureStream creates the events stream or updates it to cfg. It is safe to
// call from every process at start. In a fresh cluster the meta leader may not
// be elected yet, so it retries until ctx ends.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.WithDefaults()
	var lastErr error
	for {
		s, err := js.CreateOrUpdateStream(ctx, cfg.jetstream())
		if err == nil {
			return s, nil
		}
		lastErr = err
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || isConfigError(err) {
			return nil, fmt.Errorf("events: stream %s: %w", cfg.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("events: stream %s: %w (last error: %v)", cfg.Name, ctx.Err(), lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// isConfigError reports errors that retrying cannot fix.
func isConfigError(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 400-class API errors (bad config, replicas > cluster size) are final;
		// 503/timeouts are not.
		return apiErr.Code >= 400 && apiErr.Code < 500 && apiErr.Code != 408
	}
	return false
}
