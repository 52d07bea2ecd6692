package channels

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zohook/zohook/internal/events"
)

// TokenVerifier checks CRM notification tokens against the channels bucket.
// It keeps an in-memory copy (hashes only) refreshed by a KV watch, so the
// receiver's hot path does no KV round trip. It implements the receiver's
// ChannelTokenVerifier.
type TokenVerifier struct {
	log  *slog.Logger
	w    jetstream.KeyWatcher
	done chan struct{}

	mu    sync.RWMutex
	known map[string]verifierEntry // channel id → entry
}

type verifierEntry struct {
	conn, module string
	sum          [32]byte
}

// VerifierConfig configures NewTokenVerifier.
type VerifierConfig struct {
	Bucket   string // default DefaultBucket
	Replicas int    // used if the bucket must be created (default 1)
	Logger   *slog.Logger
	KV       events.KVOptions // bounds and reports KV calls; its Logger defaults to Logger
}

// NewTokenVerifier opens (or creates) the bucket, loads every entry and keeps
// watching it until Close or until ctx ends.
func NewTokenVerifier(ctx context.Context, js jetstream.JetStream, cfg VerifierConfig) (*TokenVerifier, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	kv, err := openBucket(ctx, js, cfg.Bucket, cfg.Replicas, cfg.KV.LoggingTo(cfg.Logger))
	if err != nil {
		return nil, err
	}
	// The watcher outlives the constructor's context: it stops with Close.
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("channels: watch %s: %w", cfg.Bucket, err)
	}
	v := &TokenVerifier{log: cfg.Logger, w: w, done: make(chan struct{}), known: map[string]verifierEntry{}}
	// Apply the initial values synchronously (a nil entry marks their end) so
	// a receiver that starts right after sees every existing channel.
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("channels: watch closed during initial load")
			}
			if e == nil {
				go v.follow()
				return v, nil
			}
			v.apply(e)
		}
	}
}

func (v *TokenVerifier) follow() {
	defer close(v.done)
	for e := range v.w.Updates() {
		if e != nil {
			v.apply(e)
		}
	}
}

func (v *TokenVerifier) apply(e jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(v.known, e.Key())
		return
	}
	var en Entry
	if err := json.Unmarshal(e.Value(), &en); err != nil || en.Token == "" {
		v.log.Warn("channels: ignoring malformed channel entry", "key", e.Key())
		delete(v.known, e.Key())
		return
	}
	v.known[e.Key()] = verifierEntry{conn: en.Connection, module: en.Module, sum: tokenSum(en.Token)}
}

// VerifyChannelToken reports whether token is the one stored for channelID,
// and the channel's connection and module. Hashes are compared in constant
// time.
func (v *TokenVerifier) VerifyChannelToken(_ context.Context, channelID, token string) (string, string, bool) {
	if token == "" {
		return "", "", false
	}
	v.mu.RLock()
	e, ok := v.known[channelID]
	v.mu.RUnlock()
	got := tokenSum(token)
	// Compare even when the channel is unknown so the timing says nothing.
	if subtle.ConstantTimeCompare(got[:], e.sum[:]) != 1 || !ok {
		return "", "", false
	}
	return e.conn, e.module, true
}

// Len reports how many channels the verifier knows.
func (v *TokenVerifier) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.known)
}

// Close stops the watch.
func (v *TokenVerifier) Close() {
	_ = v.w.Stop()
	<-v.done
}
