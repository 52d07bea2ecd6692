package worker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
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

// StepRecord is the state of one step of one rule for one event.
type StepRecord struct {
	State    string         `json:"state"`
	Action   string         `json:"action"`
	Output   map[string]any `json:"output,omitempty"`
	Attempts int            `json:"attempts"`
	At       time.Time      `json:"at"`
	// Started: when the last attempt was marked started (writes only).
	Started time.Time `json:"started,omitzero"`
	// Calls: the HTTP exchanges of the last attempt as the engine recorded
	// them (method, path, query, body, status, Zoho's code and message),
	// for people looking at the event; never secrets.
	Calls json.RawMessage `json:"calls,omitempty"`
	// OutputKey: the output is stored under this key of its own (too large
	// for the event's entry); Output is loaded from it on first use.
	OutputKey string `json:"output_key,omitempty"`

	// enc caches the record's encoding: a step is written with every later
	// write of its event, and is never changed once set (a new state is a
	// new StepRecord).
	enc []byte
}

// CallRecord is one HTTP exchange of a step as the journal keeps it
// (StepRecord.Calls) for people: the engine writes it, the console shows
// it. Bodies are JSON when they were JSON, text otherwise; never secrets.
type CallRecord struct {
	API      string          `json:"api"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Query    url.Values      `json:"query,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	BodyText string          `json:"body_text,omitempty"`
	BodySize int             `json:"body_size,omitempty"`
	Status   int             `json:"status"`
	Code     string          `json:"code,omitempty"`
	Message  string          `json:"message,omitempty"`
	Duration time.Duration   `json:"duration_ns"`
	Attempt  int             `json:"attempt"`
}

// MarshalJSON encodes the step once.
func (s *StepRecord) MarshalJSON() ([]byte, error) {
	if s.enc != nil {
		return s.enc, nil
	}
	type plain StepRecord
	b, err := json.Marshal((*plain)(s))
	if err != nil {
		return nil, err
	}
	s.enc = b
	return b, nil
}

// Attempt is one failed (or final) run of an event's handler.
type Attempt struct {
	At       time.Time     `json:"at"`
	Worker   string        `json:"worker,omitempty"`
	Delivery int           `json:"delivery"`
	Outcome  string        `json:"outcome"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// EventRecord is the journal entry of one event: what every process that
// handles the event needs to never repeat what Zoho accepted.
type EventRecord struct {
	Version int `json:"v"`
	// Record is the record snapshot the event's rules used (loaded once;
	// a redelivery uses the same one), with HasRecord telling an empty
	// snapshot from none.
	Record    map[string]any         `json:"record,omitempty"`
	HasRecord bool                   `json:"has_record,omitempty"`
	Steps     map[string]*StepRecord `json:"steps,omitempty"`
	// Failures counts handler runs that failed: the delivery limit counts
	// these, not the deliveries (a release at shutdown is not a failure).
	Failures int       `json:"failures,omitempty"`
	Attempts []Attempt `json:"attempts,omitempty"` // the last maxAttempts failures
	// Holder is the process (name/nonce) whose handler wrote last.
	Holder       string    `json:"holder"`
	Updated      time.Time `json:"updated"`
	DeadLettered time.Time `json:"dead_lettered,omitzero"`
}

const maxAttempts = 20

// JournalConfig configures the step journal. Zero fields take defaults.
type JournalConfig struct {
	// Bucket name. Default "zohook_journal".
	Bucket string
	// TTL keeps entries at least as long as events can be replayed, from
	// the history or the dead letters. Default JournalTTL(30 days): 90
	// days, the dead letters' default max age.
	TTL time.Duration
	// Replicas of the bucket. Default 1.
	Replicas int
	// KV bounds and reports the journal's calls (events.KVOptions: logger and
	// retry hook for calls NATS needed retries for). Default: its defaults.
	KV events.KVOptions
	// Holder names this process in entries it writes. Default a random id.
	Holder string
}

// Journal remembers, per event, which steps Zoho accepted, in a NATS KV
// bucket (one key per event), so a redelivered event never repeats one: the
// recorded output feeds later steps instead.
//
// Every write is a compare-and-set on the revision the handler read: two
// processes that somehow run the same event at once (a stall longer than
// the ack wait, a partition moved mid-event) cannot both claim a step; the
// second gets ErrClaimed and stops. Reads go to the bucket's stream leader
// (JournalSpec), so a write is never followed by a stale read.
type Journal struct {
	kv     jetstream.KeyValue
	holder string
}

// OpenJournal opens the journal bucket (creating it when missing: tests and
// the layout's owner).
func OpenJournal(ctx context.Context, js jetstream.JetStream, cfg JournalConfig) (*Journal, error) {
	kv, err := events.OpenKV(ctx, js, JournalSpec(cfg), cfg.KV)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	holder := cfg.Holder
	if holder == "" {
		holder = "worker"
	}
	return &Journal{kv: kv, holder: holder}, nil
}

// JournalSpec is the journal's bucket in the NATS layout. With replicas,
// reads go to the stream leader (read-your-writes: a replica that lags
// behind could show a step as not started right after a node restart,
// exactly when events are retried). With one replica there is none to lag,
// so reads are direct gets: the same server answers, without the stream API's
// JSON and base64 (in a profile, reading an entry cost about half as much).
func JournalSpec(cfg JournalConfig) events.KVSpec {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultJournalBucket
	}
	if cfg.TTL <= 0 {
		cfg.TTL = JournalTTL(events.DefaultMaxAge)
	}
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "zohook step journal: per event, the record snapshot and each step's state and output",
		TTL:         cfg.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		History:     1,
	}, LeaderReads: cfg.Replicas > 1}
}

// DefaultJournalBucket is the journal's bucket name.
const DefaultJournalBucket = "zohook_journal"

// plainKey reports whether s is a KV key token as it is: [A-Za-z0-9_-]+
// (a loop rather than a regexp: it runs several times per event).
func plainKey(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// entryKey is the event's key; event ids are hex, encoded otherwise.
func entryKey(eventID string) string {
	ev := eventID
	if !plainKey(ev) {
		ev = "b64_" + base64.RawURLEncoding.EncodeToString([]byte(eventID))
	}
	return "ev." + ev
}

// outputKey is where a large step output is stored.
func outputKey(eventID, stepKey string) string {
	h := sha256.Sum256([]byte(stepKey))
	return entryKey(eventID) + ".out." + hex.EncodeToString(h[:8])
}

// ErrClaimed: another process wrote this event's journal since this one
// read it; it is handling the event, so this one must stop (its steps would
// be sent twice).
var ErrClaimed = errors.New("journal: another worker is handling this event")

// Entry is one event's journal as one handler run sees it. It is not safe
// for concurrent use: one event's steps run one after another.
type Entry struct {
	j   *Journal
	id  string
	rev uint64 // 0: no entry stored yet
	rec EventRecord
	// recordJSON is the snapshot as stored: encoded once, decoded only when
	// asked for (Record).
	recordJSON json.RawMessage
	dirty      bool // changes not yet written (snapshot, read outputs)
	nonce      string
}

// Load reads the event's entry (empty when the event never wrote one).
func (j *Journal) Load(ctx context.Context, eventID string) (*Entry, error) {
	e := &Entry{j: j, id: eventID, nonce: newNonce()}
	kve, err := j.kv.Get(ctx, entryKey(eventID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		e.rec = EventRecord{Version: 1}
		return e, nil
	case err != nil:
		return nil, fmt.Errorf("journal get: %w", err)
	}
	var w entryWire
	if err := json.Unmarshal(kve.Value(), &w); err != nil {
		return nil, fmt.Errorf("journal entry %s: %w", kve.Key(), err)
	}
	e.rec, e.recordJSON = w.EventRecord, w.Record
	e.rev = kve.Revision()
	return e, nil
}

// entryWire is how an entry is stored: EventRecord with the snapshot kept
// as encoded (the outer field wins over the embedded one).
type entryWire struct {
	EventRecord
	Record json.RawMessage `json:"record,omitempty"`
}

func newNonce() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// EventID is the event the entry belongs to.
func (e *Entry) EventID() string { return e.id }

// Snapshot returns a copy of the entry as loaded and changed so far.
func (e *Entry) Snapshot() EventRecord {
	e.decodeRecord()
	r := e.rec
	r.Steps = maps.Clone(e.rec.Steps)
	r.Attempts = slices.Clone(e.rec.Attempts)
	return r
}

// Failures is how many handler runs of the event failed so far.
func (e *Entry) Failures() int { return e.rec.Failures }

// Step returns a step's record, or nil when it never started. A large
// output stored apart is read now.
func (e *Entry) Step(ctx context.Context, key string) (*StepRecord, error) {
	s := e.rec.Steps[key]
	if s == nil || s.OutputKey == "" || s.Output != nil {
		return s, nil
	}
	kve, err := e.j.kv.Get(ctx, s.OutputKey)
	if err != nil {
		return nil, fmt.Errorf("journal: output of %s: %w", key, err)
	}
	var out map[string]any
	if err := json.Unmarshal(kve.Value(), &out); err != nil {
		return nil, fmt.Errorf("journal: output of %s: %w", key, err)
	}
	s.Output = out
	return s, nil
}

// Record returns the journaled record snapshot.
func (e *Entry) Record() (map[string]any, bool) {
	e.decodeRecord()
	return e.rec.Record, e.rec.HasRecord
}

func (e *Entry) decodeRecord() {
	if e.rec.Record == nil && len(e.recordJSON) > 0 {
		_ = json.Unmarshal(e.recordJSON, &e.rec.Record)
	}
}

// SetRecord keeps the record snapshot; it is written with the next write
// (a snapshot matters only once a step used it).
func (e *Entry) SetRecord(rec map[string]any) {
	b, err := json.Marshal(rec)
	if err != nil {
		b = nil
	}
	e.rec.Record, e.recordJSON, e.rec.HasRecord, e.dirty = rec, b, true, true
}

// Start marks a step as about to call Zoho (a compare-and-set that claims
// the event): if the process dies before Done, the next delivery sees
// StepStarted and knows the call may have reached Zoho.
func (e *Entry) Start(ctx context.Context, key, action string, attempts int) error {
	now := time.Now().UTC()
	e.setStep(key, &StepRecord{State: StepStarted, Action: action, Attempts: attempts, At: now, Started: now})
	return e.write(ctx)
}

// Done records a step's output; the step will not run again for this
// event. A write step's Done is written at once; a read's rides with the
// next write (repeating a read changes nothing in Zoho).
func (e *Entry) Done(ctx context.Context, key, action string, attempts int, output map[string]any, calls json.RawMessage, write bool) error {
	prev := e.rec.Steps[key]
	s := &StepRecord{State: StepDone, Action: action, Attempts: attempts, Output: output, At: time.Now().UTC(), Calls: calls}
	if prev != nil {
		s.Started = prev.Started
	}
	e.setStep(key, s)
	if !write {
		return nil
	}
	return e.write(ctx)
}

// Refused records that Zoho refused the last attempt, so the next one is
// not in doubt: it changed nothing (zoho.NotApplied), or, for a batch Zoho
// partly accepted, partial holds the per-record results (the next attempt
// sends only the refused records).
func (e *Entry) Refused(ctx context.Context, key, action string, attempts int, calls json.RawMessage, partial map[string]any) error {
	e.setStep(key, &StepRecord{State: StepRefused, Action: action, Attempts: attempts, At: time.Now().UTC(), Calls: calls, Output: partial})
	return e.write(ctx)
}

// Failed records a failed handler run and returns the failures so far.
func (e *Entry) Failed(ctx context.Context, a Attempt) (int, error) {
	e.rec.Failures++
	e.addAttempt(a)
	return e.rec.Failures, e.write(ctx)
}

// Finished records the final outcome (dead-lettered) and refreshes the
// entry's age: a dead letter replayed weeks later still finds its steps.
func (e *Entry) Finished(ctx context.Context, a Attempt) error {
	e.addAttempt(a)
	if a.Outcome == OutcomeDeadLettered {
		e.rec.DeadLettered = a.At
	}
	return e.write(ctx)
}

// Flush writes pending changes (a snapshot, read outputs), if any.
func (e *Entry) Flush(ctx context.Context) error {
	if !e.dirty {
		return nil
	}
	return e.write(ctx)
}

func (e *Entry) addAttempt(a Attempt) {
	if a.Worker == "" {
		a.Worker = e.j.holder
	}
	e.rec.Attempts = append(e.rec.Attempts, a)
	if n := len(e.rec.Attempts); n > maxAttempts {
		e.rec.Attempts = slices.Clone(e.rec.Attempts[n-maxAttempts:])
	}
}

func (e *Entry) setStep(key string, s *StepRecord) {
	if e.rec.Steps == nil {
		e.rec.Steps = map[string]*StepRecord{}
	}
	e.rec.Steps[key] = s
	e.dirty = true
}

// entrySpill: above this size the largest step outputs are stored under
// keys of their own, so one entry stays well within NATS's max_payload (1
// MiB on a default server) however large a COQL answer is.
const entrySpill = 256 << 10

// write stores the entry with a compare-and-set on the revision read.
func (e *Entry) write(ctx context.Context) error {
	e.rec.Holder = e.j.holder + "/" + e.nonce
	e.rec.Updated = time.Now().UTC()
	b, err := e.encode()
	if err != nil {
		return fmt.Errorf("journal encode: %w", err)
	}
	if len(b) > entrySpill {
		if b, err = e.spill(ctx); err != nil {
			return err
		}
	}
	var rev uint64
	if e.rev == 0 {
		rev, err = e.j.kv.Create(ctx, entryKey(e.id), b)
	} else {
		rev, err = e.j.kv.Update(ctx, entryKey(e.id), b, e.rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Ours after all? A write whose answer was lost and that the
		// bounded KV retried lands as a conflict with itself.
		if kve, gerr := e.j.kv.Get(ctx, entryKey(e.id)); gerr == nil && string(kve.Value()) == string(b) {
			e.rev, e.dirty = kve.Revision(), false
			return nil
		}
		return fmt.Errorf("%w (event %s)", ErrClaimed, e.id)
	}
	if err != nil {
		return fmt.Errorf("journal put: %w", err)
	}
	e.rev, e.dirty = rev, false
	return nil
}

// spill moves the largest outputs to keys of their own until the entry is
// small enough, and returns the entry's new encoding.
func (e *Entry) spill(ctx context.Context) ([]byte, error) {
	keys := slices.Collect(maps.Keys(e.rec.Steps))
	size := func(k string) int {
		b, _ := json.Marshal(e.rec.Steps[k].Output)
		return len(b)
	}
	slices.SortFunc(keys, func(a, b string) int { return size(b) - size(a) })
	for _, k := range keys {
		s := e.rec.Steps[k]
		if s.Output == nil {
			continue
		}
		out, err := json.Marshal(s.Output)
		if err != nil {
			return nil, fmt.Errorf("journal encode: %w", err)
		}
		ok := outputKey(e.id, k)
		if _, err := e.j.kv.Put(ctx, ok, out); err != nil {
			return nil, fmt.Errorf("journal: store output of %s: %w", k, err)
		}
		cp := *s
		cp.Output, cp.OutputKey, cp.enc = nil, ok, nil
		e.rec.Steps[k] = &cp
		b, err := e.encode()
		if err != nil {
			return nil, fmt.Errorf("journal encode: %w", err)
		}
		if len(b) <= entrySpill {
			return b, nil
		}
	}
	return e.encode()
}

// encode is the entry as stored (entryWire). The snapshot and the steps are
// spliced in as they were encoded (SetRecord, StepRecord.MarshalJSON):
// encoding/json would re-scan and compact both on every write, and an
// event is written at least twice (in a profile, 5% of a worker's CPU).
func (e *Entry) encode() ([]byte, error) {
	bare := e.rec
	bare.Record, bare.Steps = nil, nil
	head, err := json.Marshal(&bare) // never empty: "v" has no omitempty
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(head)+len(e.recordJSON)+512*len(e.rec.Steps)+32)
	b = append(b, head[:len(head)-1]...)
	if len(e.rec.Steps) > 0 {
		b = append(b, `,"steps":{`...)
		for i, k := range slices.Sorted(maps.Keys(e.rec.Steps)) {
			if i > 0 {
				b = append(b, ',')
			}
			q, err := json.Marshal(k)
			if err != nil {
				return nil, err
			}
			b = append(append(b, q...), ':')
			step := []byte("null")
			if s := e.rec.Steps[k]; s != nil {
				if step, err = s.MarshalJSON(); err != nil {
					return nil, err
				}
			}
			b = append(b, step...)
		}
		b = append(b, '}')
	}
	if len(e.recordJSON) > 0 {
		b = append(append(b, `,"record":`...), e.recordJSON...)
	}
	return append(b, '}'), nil
}

// Get returns the journal entry of an event, nil when there is none.
func (j *Journal) Get(ctx context.Context, eventID string) (*EventRecord, error) {
	e, err := j.Load(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if e.rev == 0 {
		return nil, nil
	}
	r := e.Snapshot()
	return &r, nil
}

// Decide records an operator's decision on an in-doubt step (see
// ReplayInDoubt) outside any handler run.
func (j *Journal) decide(ctx context.Context, eventID, key, decision string) error {
	e, err := j.Load(ctx, eventID)
	if err != nil {
		return err
	}
	s := e.rec.Steps[key]
	if s == nil || s.State != StepStarted {
		state := "never started"
		if s != nil {
			state = s.State
		}
		return fmt.Errorf("step %s: %w (it is %s)", key, ErrNotInDoubt, state)
	}
	if decision == InDoubtDone {
		e.setStep(key, &StepRecord{State: StepDone, Action: s.Action, Attempts: s.Attempts, At: time.Now().UTC(),
			Output: map[string]any{"in_doubt": "done by operator"}})
	} else {
		e.setStep(key, &StepRecord{State: StepRefused, Action: s.Action, Attempts: s.Attempts, At: time.Now().UTC()})
	}
	return e.write(ctx)
}
