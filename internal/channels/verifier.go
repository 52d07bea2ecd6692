package channels

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zohook/zohook/internal/events"
)

// TokenVerifier checks CRM notification tokens against the channels bucket.
// It keeps an in-memory copy (hashes only) refreshed by a KV watch, so the
// receiver's hot path does no KV round trip. It implements the receiver's
// ChannelTokenVerifier.
type TokenVerifier struct {
	log  *slog.Logger
	kv   jetstream.KeyValue
	done chan struct{}
	stop chan struct{} // closed by Close

	wmu sync.Mutex
	w   jetstream.KeyWatcher // the current watch

	ended atomic.Int32 // watches that ended under us (tests, and a sign of NATS trouble)

	mu    sync.RWMutex
	known map[string]verifierEntry // channel id → entry
	// misses: when each unknown channel id was last read from the bucket
	// (at most one read per id per missReadEvery).
	misses map[string]time.Time
}

// missReadEvery bounds the bucket reads a stream of callbacks for an
// unknown (or forged) channel id can cause.
const missReadEvery = time.Second

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
	v := &TokenVerifier{log: cfg.Logger, kv: kv, done: make(chan struct{}), stop: make(chan struct{}), known: map[string]verifierEntry{},
		misses: map[string]time.Time{}}
	// The initial values are loaded before returning, so a receiver that
	// starts right after sees every existing channel.
	if err := v.watch(ctx); err != nil {
		return nil, fmt.Errorf("channels: watch %s: %w", cfg.Bucket, err)
	}
	go v.follow()
	return v, nil
}

// watch starts a watch of the bucket and loads its current entries, which
// replace what the verifier knew (entries deleted while no watch ran are
// dropped).
func (v *TokenVerifier) watch(ctx context.Context) error {
	// The watcher outlives ctx: it stops with Close.
	w, err := v.kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	known := map[string]verifierEntry{}
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed during the initial load")
			}
			if e != nil {
				v.apply(known, e)
				continue
			}
			v.mu.Lock()
			v.known = known
			v.mu.Unlock()
			v.wmu.Lock()
			v.w = w
			select {
			case <-v.stop: // Close ran while this watch started
				_ = w.Stop()
			default:
			}
			v.wmu.Unlock()
			return nil
		}
	}
}

// follow applies changes until Close. nats.go ends a watch for good when it
// cannot re-create its consumer (a bucket re-created, a long outage): the
// verifier then watches again, with backoff, instead of going stale while
// the worker subscribes new channels (their notifications would get 401).
func (v *TokenVerifier) follow() {
	defer close(v.done)
	wait := 100 * time.Millisecond
	for {
		v.wmu.Lock()
		w := v.w
		v.wmu.Unlock()
		for e := range w.Updates() {
			if e != nil {
				v.mu.Lock()
				v.apply(v.known, e)
				v.mu.Unlock()
			}
		}
		select {
		case <-v.stop:
			return
		default:
		}
		v.ended.Add(1)
		v.log.Error("channels: the watch of channel tokens ended; watching again", "bucket", v.kv.Bucket())
		for {
			select {
			case <-v.stop:
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := v.watch(ctx)
			cancel()
			if err == nil {
				wait = 100 * time.Millisecond
				break
			}
			v.log.Error("channels: watching channel tokens failed", "bucket", v.kv.Bucket(), "err", err)
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// apply records one entry in known (the caller holds v.mu when known is v.known).
func (v *TokenVerifier) apply(known map[string]verifierEntry, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(known, e.Key())
		return
	}
	var en Entry
	if err := json.Unmarshal(e.Value(), &en); err != nil || en.Token == "" {
		v.log.Warn("channels: ignoring malformed channel entry", "key", e.Key())
		delete(known, e.Key())
		return
	}
	known[e.Key()] = verifierEntry{conn: en.Connection, module: en.Module, sum: tokenSum(en.Token)}
}

// VerifyChannelToken reports whether token is the one stored for channelID,
// and the channel's connection and module. Hashes are compared in constant
// time.
//
// A miss is checked against the bucket itself before it is refused: a
// channel the worker stored a moment ago (just before enabling it in
// Zoho) is not in the watched copy yet, and Zoho does not retry a 401.
func (v *TokenVerifier) VerifyChannelToken(ctx context.Context, channelID, token string) (string, string, bool) {
	if token == "" {
		return "", "", false
	}
	got := tokenSum(token)
	v.mu.RLock()
	e, ok := v.known[channelID]
	v.mu.RUnlock()
	// Compare even when the channel is unknown so the timing says nothing.
	if subtle.ConstantTimeCompare(got[:], e.sum[:]) == 1 && ok {
		return e.conn, e.module, true
	}
	if !v.readMiss(ctx, channelID) {
		return "", "", false
	}
	v.mu.RLock()
	e, ok = v.known[channelID]
	v.mu.RUnlock()
	if subtle.ConstantTimeCompare(got[:], e.sum[:]) != 1 || !ok {
		return "", "", false
	}
	return e.conn, e.module, true
}

// readMiss reads channelID's entry from the bucket into the known set; it
// reports whether it read (at most once per id per missReadEvery).
func (v *TokenVerifier) readMiss(ctx context.Context, channelID string) bool {
	if channelID == "" || len(channelID) > 64 {
		return false
	}
	now := time.Now()
	v.mu.Lock()
	if last, ok := v.misses[channelID]; ok && now.Sub(last) < missReadEvery {
		v.mu.Unlock()
		return false
	}
	if len(v.misses) > 10000 {
		v.misses = map[string]time.Time{} // forged ids must not grow it without bound
	}
	v.misses[channelID] = now
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kve, err := v.kv.Get(ctx, channelID)
	if err != nil {
		return false
	}
	v.mu.Lock()
	v.apply(v.known, kve)
	v.mu.Unlock()
	return true
}

// Len reports how many channels the verifier knows.
func (v *TokenVerifier) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.known)
}

// Close stops the watch.
func (v *TokenVerifier) Close() {
	close(v.stop)
	v.wmu.Lock()
	_ = v.w.Stop()
	v.wmu.Unlock()
	<-v.done
}
