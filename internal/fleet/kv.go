package fleet

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// Default bucket names (see doc.go for the layout).
const (
	DefaultTokenBucket = "zohook_tokens"
	DefaultRateBucket  = "zohook_ratelimits"
	DefaultLeaseBucket = "zohook_leases"
)

// ensureKV opens bucket cfg.Bucket, creating it when missing; see
// events.OpenKV (an existing bucket is used as it is, calls are bounded).
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, o events.KVOptions) (jetstream.KeyValue, error) {
	kv, err := events.OpenKV(ctx, js, events.KVSpec{KeyValueConfig: cfg}, o)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return kv, nil
}

// TokenBucketSpec is the bucket holding the shared access tokens (and the
// refresh locks) in the NATS layout.
func TokenBucketSpec(bucket string, replicas int) events.KVSpec {
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:      cmp.Or(bucket, DefaultTokenBucket),
		Description: "zohook shared Zoho access tokens (fleet.TokenSource); protect this account",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}}
}

// RateBucketSpec is the bucket of the shared rate limits in the NATS
// layout: memory storage, as losing it on a restart only refills them.
func RateBucketSpec(bucket string, replicas int, storage jetstream.StorageType) events.KVSpec {
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:      cmp.Or(bucket, DefaultRateBucket),
		Description: "zohook shared rate limits (fleet.RateLimiter)",
		History:     1,
		Storage:     storage,
		Replicas:    max(replicas, 1),
	}}
}

// LeaseBucketSpec is the leases bucket of the NATS layout.
func LeaseBucketSpec(bucket string, replicas int) events.KVSpec {
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:      cmp.Or(bucket, DefaultLeaseBucket),
		Description: "zohook leases (fleet.Lease)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}}
}

// validKey mirrors the KV key rule ([-/_=.a-zA-Z0-9]+, no leading or
// trailing dot) so that bad names fail at construction, not on first use.
func validKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '/', c == '_', c == '=', c == '.':
		default:
			return false
		}
	}
	return true
}

// DefaultHolderID names this process: host, pid and a random suffix, so a
// restarted process (same host and maybe the same pid in a container) is a
// different holder from its dead predecessor.
func DefaultHolderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// isConflict reports an optimistic-concurrency failure of Create/Update.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}
