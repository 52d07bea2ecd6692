package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EnvelopeVersion is the schema version written in every envelope. Readers
// accept versions up to this one; a bump means a field changed meaning.
const EnvelopeVersion = 1

// Source says which Zoho mechanism delivered an event.
type Source string

// The event sources zohook accepts.
const (
	SourceCRMNotify   Source = "crm.notify"   // CRM Notifications API ("watch") callback
	SourceCRMWorkflow Source = "crm.workflow" // CRM workflow-rule webhook
	SourceBooks       Source = "books.webhook"
	SourceReconcile   Source = "crm.reconcile" // found by the reconciliation job, not pushed by Zoho
)

// ReconcileChannelID is the channel id of events the reconciliation job
// publishes (Source crm.notify, so rules treat them as notifications).
const ReconcileChannelID = "reconcile"

// Operations, normalized: Zoho's notification callbacks say insert/update/
// delete while channel events say create/edit/delete; rules see one vocabulary.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// NormalizeOperation maps Zoho's operation words to create/update/delete and
// returns other words lower-cased (webhooks may define their own).
func NormalizeOperation(op string) string {
	switch strings.ToLower(strings.TrimSpace(op)) {
	case "insert", "create", "created":
		return OpCreate
	case "update", "edit", "edited", "updated":
		return OpUpdate
	case "delete", "deleted", "remove":
		return OpDelete
	default:
		return strings.ToLower(strings.TrimSpace(op))
	}
}

// Envelope is one event: one record changed in Zoho. A callback naming N
// records becomes N envelopes.
type Envelope struct {
	Version       int             `json:"v"`
	ID            string          `json:"id"` // deterministic, also the Nats-Msg-Id
	Source        Source          `json:"source"`
	Connection    string          `json:"connection"` // Zoho connection (org / data center) name
	Module        string          `json:"module"`     // CRM module API name or Books entity
	Operation     string          `json:"operation"`  // normalized, see NormalizeOperation
	RecordID      string          `json:"record_id"`
	ChangedFields []string        `json:"changed_fields,omitempty"`
	Values        map[string]any  `json:"values,omitempty"` // affected values when Zoho sent them
	ChannelID     string          `json:"channel_id,omitempty"`
	Hook          string          `json:"hook,omitempty"` // webhook name for crm.workflow / books.webhook
	ServerTime    int64           `json:"server_time,omitempty"`
	ReceivedAt    time.Time       `json:"received_at"`
	Raw           json.RawMessage `json:"raw,omitempty"` // the callback body, secrets removed
	// Origin is set on events that zohook itself caused (loop detection); empty for Zoho's.
	Origin string `json:"origin,omitempty"`
	// Replay is non-zero when an operator re-published the event (DLQ replay
	// or history replay). The id stays the same, so steps already done are
	// not repeated; only the message id changes, see MsgID.
	Replay int64 `json:"replay,omitempty"`
}

// MsgID is the Nats-Msg-Id of the envelope: its id, plus the replay number
// for a replay (which must not be swallowed by the duplicate window).
func MsgID(e *Envelope) string {
	if e.Replay == 0 {
		return e.ID
	}
	return e.ID + "/replay/" + strconv.FormatInt(e.Replay, 10)
}

// Validate checks the fields every consumer relies on.
func (e *Envelope) Validate() error {
	var missing []string
	if e.ID == "" {
		missing = append(missing, "id")
	}
	if e.Source == "" {
		missing = append(missing, "source")
	}
	if e.Module == "" {
		missing = append(missing, "module")
	}
	if e.Operation == "" {
		missing = append(missing, "operation")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrInvalidEnvelope, strings.Join(missing, ", "))
	}
	if e.Version > EnvelopeVersion {
		return fmt.Errorf("%w: version %d is newer than this build understands (%d)", ErrUnsupportedVersion, e.Version, EnvelopeVersion)
	}
	return nil
}

// Decode parses and validates an envelope from a stored message, with the
// limits Encode applies (MaxDepth).
func Decode(data []byte) (*Envelope, error) {
	if err := checkDepth(data, MaxDepth); err != nil {
		return nil, err
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Encode validates e and returns what is stored: every event stored is one
// Decode accepts (MaxDepth). e.Raw must be valid JSON (the receiver's
// decoded body, or a stored envelope's): it is spliced in as it is rather
// than re-validated and re-compacted by encoding/json, which cost a sixth
// of the receiver's CPU per request; its depth is still checked.
func Encode(e *Envelope) ([]byte, error) {
	if e.Version == 0 {
		e.Version = EnvelopeVersion
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	// raw sits one level below the envelope.
	if err := checkDepth(e.Raw, MaxDepth-1); err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	out, err := appendEnvelope(make([]byte, 0, 320+len(e.Raw)), e, e.Raw)
	if errors.Is(err, ErrInvalidEnvelope) {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: encode %s: %v", ErrInvalidEnvelope, e.ID, err)
	}
	return out, nil
}

// DeriveID returns a deterministic event id from the parts that identify one
// change. It must depend only on the callback's content, never on a process
// counter or clock: a callback Zoho sends twice must yield the same id so
// JetStream's duplicate window stores it once, and after a restart new events
// must not collide with old ones.
func DeriveID(parts ...string) string {
	h := sha256.New()
	var buf []byte
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		buf = strconv.AppendInt(buf[:0], int64(len(p)), 10)
		buf = append(buf, ':')
		buf = append(buf, p...)
		buf = append(buf, ';')
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
