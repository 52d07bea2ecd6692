package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// DefaultSeenBucket holds, per record, the latest Modified_Time zohook has
// handled or published.
const DefaultSeenBucket = "zohook_seen"

// Seen is the "already received" record of changes: key
// connection.module.record_id → the latest change time seen. The worker
// marks what it handled; the reconciliation job skips what is marked.
type Seen struct {
	kv jetstream.KeyValue

	// last remembers, per key this process wrote, the time and revision it
	// wrote: the next mark of that record is one Update at that revision
	// instead of a Get and an Update (the receiver marks every stored
	// notification, so this halves its KV traffic). The stored time only
	// moves forward, so a remembered time is a lower bound and safe to skip
	// on; a stale revision just fails the Update and falls back to reading.
	mu   sync.Mutex
	last map[string]seenRev
}

type seenRev struct {
	t   time.Time
	rev uint64
}

// seenCacheSize bounds last; when full it is emptied (a cheap bound: the
// cache is only a shortcut).
const seenCacheSize = 100_000

// SeenConfig configures OpenSeen. Zero fields take defaults.
type SeenConfig struct {
	Bucket   string           // default DefaultSeenBucket
	Replicas int              // used if the bucket must be created; default 1
	KV       events.KVOptions // bounds and reports KV calls (events.BoundKV)
}

// OpenSeen opens (or creates) the seen bucket.
func OpenSeen(ctx context.Context, js jetstream.JetStream, cfg SeenConfig) (*Seen, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultSeenBucket
	}
	kv, err := openKV(ctx, js, jetstream.KeyValueConfig{Bucket: cfg.Bucket, History: 1, Replicas: max(cfg.Replicas, 1),
		Storage: jetstream.FileStorage, Description: "zohook: latest change seen per CRM record"}, cfg.KV)
	if err != nil {
		return nil, err
	}
	return &Seen{kv: kv, last: map[string]seenRev{}}, nil
}

func openKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, o events.KVOptions) (jetstream.KeyValue, error) {
	kv, err := events.OpenKV(ctx, js, cfg, o)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	return kv, nil
}

func seenKey(conn, module, id string) string {
	if conn == "" {
		conn = "default"
	}
	return events.Token(conn) + "." + events.Token(module) + "." + events.Token(id)
}

// Get returns the latest change time seen for a record.
func (s *Seen) Get(ctx context.Context, conn, module, id string) (time.Time, bool, error) {
	t, _, ok, err := s.get(ctx, seenKey(conn, module, id))
	return t, ok, err
}

func (s *Seen) get(ctx context.Context, key string) (time.Time, uint64, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, 0, false, nil
	}
	if err != nil {
		return time.Time{}, 0, false, fmt.Errorf("reconcile: seen %s: %w", key, err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return time.Time{}, e.Revision(), false, nil // unreadable: treat as unseen, overwrite
	}
	return t, e.Revision(), true, nil
}

// MarkSeen records that the change of a record at modified (its
// Modified_Time, or the notification's server_time) was handled. It only
// moves forward: an older time never replaces a newer one.
func (s *Seen) MarkSeen(ctx context.Context, conn, module, id string, modified time.Time) error {
	key := seenKey(conn, module, id)
	// Shortcut: what this process wrote last for the key (or, for a key it
	// never wrote, a Create): one round trip when nobody else wrote since.
	s.mu.Lock()
	prev, known := s.last[key]
	s.mu.Unlock()
	if known && !modified.After(prev.t) {
		return nil
	}
	if done, err := s.put(ctx, key, prev.rev, modified); done || err != nil {
		return err
	}
	for range 10 {
		cur, rev, ok, err := s.get(ctx, key)
		if err != nil {
			return err
		}
		if ok && !modified.After(cur) {
			s.remember(key, cur, rev)
			return nil
		}
		done, err := s.put(ctx, key, rev, modified)
		if done || err != nil {
			return err
		}
	}
	return fmt.Errorf("reconcile: seen %s: too much contention", key)
}

func (s *Seen) remember(key string, t time.Time, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.last[key]; ok && cur.rev >= rev {
		return
	}
	if len(s.last) >= seenCacheSize {
		clear(s.last)
	}
	s.last[key] = seenRev{t: t, rev: rev}
}

// put writes t conditioned on rev (0 = key absent); false on a lost race.
func (s *Seen) put(ctx context.Context, key string, rev uint64, t time.Time) (bool, error) {
	v := []byte(t.UTC().Format(time.RFC3339Nano))
	var err error
	var nrev uint64
	if rev == 0 {
		nrev, err = s.kv.Create(ctx, key, v)
	} else {
		nrev, err = s.kv.Update(ctx, key, v, rev)
	}
	if err == nil {
		s.remember(key, t, nrev)
		return true, nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, nil
	}
	return false, fmt.Errorf("reconcile: seen %s: %w", key, err)
}
