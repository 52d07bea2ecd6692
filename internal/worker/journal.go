package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// Step states in the journal.
const (
	StepStarted = "started" // the call was (maybe) sent; its answer was not recorded
	StepDone    = "done"    // Zoho answered; Output holds the step's output
	// StepRefused: Zoho's answer (or a refusal before sending) proves the
	// last attempt changed nothing; the step is not in doubt.
	StepRefused = "refused"
)

// StepRecord is one journal entry: the state of one step of one rule for
// one event.
type StepRecord struct {
	State    string         `json:"state"`
	Action   string         `json:"action"`
	Output   map[string]any `json:"output,omitempty"`
	Attempts int            `json:"attempts"`
	At       time.Time      `json:"at"`
}

// JournalConfig configures the step journal. Zero fields take defaults.
type JournalConfig struct {
	// Bucket name. Default "zohook_journal".
	Bucket string
	// TTL keeps entries at least as long as events can be replayed, from
	// the events stream or the dead letters. Default JournalTTL(30 days):
	// 90 days, the dead letters' default max age.
	TTL time.Duration
	// Replicas of the bucket. Default 1.
	Replicas int
	// KV bounds and reports the journal's calls (events.KVOptions: logger and
	// retry hook for calls NATS needed retries for). Default: its defaults.
	KV events.KVOptions
}

// Journal remembers which steps of which event are done, in a NATS KV
// bucket keyed by event id and step, so a redelivered event never repeats a
// step Zoho already accepted: the recorded output feeds later steps instead.
type Journal struct {
	kv jetstream.KeyValue
}

// OpenJournal creates or opens the journal bucket.
func OpenJournal(ctx context.Context, js jetstream.JetStream, cfg JournalConfig) (*Journal, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "zohook_journal"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = JournalTTL(30 * 24 * time.Hour)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "zohook step journal: event id + step → state and output",
		TTL:         cfg.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("journal bucket %s: %w", cfg.Bucket, err)
	}
	// Bounded calls: see events.BoundKV.
	return &Journal{kv: events.BoundKV(kv, cfg.KV)}, nil
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_\-]+$`)

// key builds a valid KV key; event ids are hex, step keys are rule/step
// names, encoded when they hold characters KV keys do not allow.
func journalKey(eventID, stepKey string) string {
	k := stepKey
	if !plainKey.MatchString(k) {
		k = "b64_" + base64.RawURLEncoding.EncodeToString([]byte(stepKey))
	}
	ev := eventID
	if !plainKey.MatchString(ev) {
		ev = "b64_" + base64.RawURLEncoding.EncodeToString([]byte(eventID))
	}
	return "ev." + ev + "." + k
}

// Get returns the record of a step, or nil when the step never started.
func (j *Journal) Get(ctx context.Context, eventID, stepKey string) (*StepRecord, error) {
	e, err := j.kv.Get(ctx, journalKey(eventID, stepKey))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal get: %w", err)
	}
	var r StepRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("journal entry %s: %w", e.Key(), err)
	}
	return &r, nil
}

// Start records that a step is about to call Zoho. If the process dies
// before Done, the next delivery sees StepStarted and knows the call may
// have reached Zoho (see the executor's in-doubt handling).
func (j *Journal) Start(ctx context.Context, eventID, stepKey, action string, attempts int) error {
	return j.put(ctx, eventID, stepKey, StepRecord{State: StepStarted, Action: action, Attempts: attempts, At: time.Now().UTC()})
}

// Done records a step's output; the step will not run again for this event.
func (j *Journal) Done(ctx context.Context, eventID, stepKey, action string, attempts int, output map[string]any) error {
	return j.put(ctx, eventID, stepKey, StepRecord{State: StepDone, Action: action, Attempts: attempts, Output: output, At: time.Now().UTC()})
}

// Refused records that the last attempt provably changed nothing in Zoho
// (zoho.NotApplied), so the next attempt is not in doubt.
func (j *Journal) Refused(ctx context.Context, eventID, stepKey, action string, attempts int) error {
	return j.put(ctx, eventID, stepKey, StepRecord{State: StepRefused, Action: action, Attempts: attempts, At: time.Now().UTC()})
}

func (j *Journal) put(ctx context.Context, eventID, stepKey string, r StepRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal encode: %w", err)
	}
	if _, err := j.kv.Put(ctx, journalKey(eventID, stepKey), b); err != nil {
		return fmt.Errorf("journal put: %w", err)
	}
	return nil
}
