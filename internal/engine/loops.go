package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// LoopGuard remembers zohook's own recent CRM writes in NATS KV (shared by
// every worker), so that the notification Zoho sends about a write zohook
// made does not run the rules again: a rule that updates its own Deal runs
// once, not forever.
//
// An event is self-caused when, for its record, zohook wrote within the TTL
// and either every changed field the notification names is a field zohook
// wrote, or (when it names none) the record's current Modified_Time is the
// one Zoho returned for zohook's write. A change someone else made after
// zohook's write always has a later Modified_Time, so it is never skipped.
type LoopGuard struct {
	kv jetstream.KeyValue
}

// LoopGuardConfig configures the guard. Zero fields take defaults.
type LoopGuardConfig struct {
	Bucket   string           // default "zohook_writes"
	TTL      time.Duration    // how long a write is remembered; default 10m
	Replicas int              // default 1
	KV       events.KVOptions // bounds and reports KV calls (events.BoundKV); default its defaults
}

type writeMark struct {
	Fields       []string  `json:"fields"`
	ModifiedTime string    `json:"modified_time,omitempty"`
	At           time.Time `json:"at"`
}

// OpenLoopGuard creates or opens the guard's bucket.
func OpenLoopGuard(ctx context.Context, js jetstream.JetStream, cfg LoopGuardConfig) (*LoopGuard, error) {
	kv, err := events.OpenKV(ctx, js, LoopGuardSpec(cfg), cfg.KV)
	if err != nil {
		return nil, fmt.Errorf("loop guard: %w", err)
	}
	return &LoopGuard{kv: kv}, nil
}

// LoopGuardSpec is the loop guard's bucket in the NATS layout.
func LoopGuardSpec(cfg LoopGuardConfig) events.KVSpec {
	if cfg.Bucket == "" {
		cfg.Bucket = "zohook_writes"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLoopGuardTTL
	}
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "zohook's own recent CRM writes and handled changes, per record",
		TTL:         cfg.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		History:     1,
	}}
}

// DefaultLoopGuardTTL: how long zohook remembers its writes to a record
// (and the changes it handled): longer than Zoho takes to notify, and than
// a reconciliation run lags behind.
const DefaultLoopGuardTTL = 2 * time.Hour

func markKey(conn, module, id string) string {
	return "w." + events.Token(conn) + "." + events.Token(module) + "." + events.Token(id)
}

// Remember records that zohook wrote fields of a record; modifiedTime is the
// Modified_Time Zoho returned for the write ("" if unknown).
func (g *LoopGuard) Remember(ctx context.Context, conn, module, id string, fields []string, modifiedTime string) error {
	key := markKey(conn, module, id)
	m := writeMark{Fields: slices.Clone(fields), ModifiedTime: modifiedTime, At: time.Now().UTC()}
	if prev, err := g.get(ctx, key); err == nil && prev != nil {
		for _, f := range prev.Fields {
			if !slices.Contains(m.Fields, f) {
				m.Fields = append(m.Fields, f)
			}
		}
		if m.ModifiedTime == "" {
			m.ModifiedTime = prev.ModifiedTime
		}
	}
	slices.Sort(m.Fields)
	b, _ := json.Marshal(m)
	if _, err := g.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("loop guard: %w", err)
	}
	return nil
}

// SelfCaused reports whether an event about the record was caused by
// zohook's own recent write (see LoopGuard). When the event names no changed
// fields and recordModifiedTime is unknown, it asks currentModifiedTime (a
// Zoho read) rather than guess: skipping a real change would lose it.
func (g *LoopGuard) SelfCaused(ctx context.Context, conn, module, id string, changed []string, recordModifiedTime string,
	currentModifiedTime func(ctx context.Context) (string, error)) (bool, error) {
	m, err := g.get(ctx, markKey(conn, module, id))
	if err != nil || m == nil {
		return false, err
	}
	if recordModifiedTime != "" && m.ModifiedTime != "" {
		// Exact: the record's latest modification is (or is not) zohook's write.
		return sameInstant(recordModifiedTime, m.ModifiedTime), nil
	}
	if len(changed) > 0 {
		for _, f := range changed {
			if !slices.Contains(m.Fields, f) {
				return false, nil
			}
		}
		return true, nil
	}
	if currentModifiedTime != nil && m.ModifiedTime != "" {
		if recordModifiedTime, err = currentModifiedTime(ctx); err != nil {
			return false, err
		}
		return recordModifiedTime != "" && sameInstant(recordModifiedTime, m.ModifiedTime), nil
	}
	return false, nil // no evidence: run the rules rather than risk losing a change
}

func (g *LoopGuard) get(ctx context.Context, key string) (*writeMark, error) {
	e, err := g.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loop guard: %w", err)
	}
	var m writeMark
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, fmt.Errorf("loop guard entry: %w", err)
	}
	return &m, nil
}

// sameInstant compares Zoho timestamps, which may differ in offset notation.
func sameInstant(a, b string) bool {
	if a == b {
		return true
	}
	ta, errA := time.Parse(time.RFC3339, a)
	tb, errB := time.Parse(time.RFC3339, b)
	return errA == nil && errB == nil && ta.Equal(tb)
}
