package channels

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// DefaultBucket is the KV bucket holding channel entries. It holds channel
// tokens: give it the same protection as the token bucket.
const DefaultBucket = "zohook_channels"

// Entry is what the bucket stores per channel (key = the channel id). The
// manager needs the token in clear to resend it on every renewal (API.md
// G11); the receiver only uses its hash.
type Entry struct {
	ChannelID  string    `json:"channel_id"`
	Connection string    `json:"connection"`
	Module     string    `json:"module"`
	Token      string    `json:"token"`
	CreatedAt  time.Time `json:"created_at"`
}

// String and LogValue keep the token out of logs and error strings.
func (e Entry) String() string {
	return fmt.Sprintf("channel %s (%s/%s)", e.ChannelID, e.Connection, e.Module)
}

// LogValue renders the entry without its token.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(slog.String("channel_id", e.ChannelID), slog.String("connection", e.Connection),
		slog.String("module", e.Module))
}

// BucketSpec is the channels bucket of the NATS layout.
func BucketSpec(bucket string, replicas int) events.KVSpec {
	if bucket == "" {
		bucket = DefaultBucket
	}
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{Bucket: bucket, History: 1, Replicas: max(replicas, 1),
		Storage: jetstream.FileStorage, Description: "zohook notification channels and their tokens"}}
}

func openBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, o events.KVOptions) (jetstream.KeyValue, error) {
	kv, err := events.OpenKV(ctx, js, BucketSpec(bucket, replicas), o)
	if err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	return kv, nil
}

func loadEntries(ctx context.Context, kv jetstream.KeyValue) (map[string]Entry, error) {
	out := map[string]Entry{}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("channels: list keys: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("channels: get %s: %w", k, err)
		}
		var en Entry
		if err := json.Unmarshal(e.Value(), &en); err != nil {
			continue // not ours to interpret; Sync leaves it alone
		}
		out[k] = en
	}
	return out, nil
}

func putEntry(ctx context.Context, kv jetstream.KeyValue, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, e.ChannelID, b); err != nil {
		return fmt.Errorf("channels: store channel %s: %w", e.ChannelID, err)
	}
	return nil
}

// newToken returns 32 random hex characters (Zoho allows at most 50).
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("channels: token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func tokenSum(t string) [32]byte { return sha256.Sum256([]byte(t)) }
