package rules

import "time"

// Sources of events.
const (
	SourceCRMNotify    = "crm.notify"
	SourceCRMWorkflow  = "crm.workflow"
	SourceBooksWebhook = "books.webhook"
)

var knownSources = []string{SourceCRMNotify, SourceCRMWorkflow, SourceBooksWebhook}

// Event is what rules match on. The worker converts its JetStream envelope
// into it; `rules test` reads it from JSON (snake_case keys).
type Event struct {
	ID            string         `json:"id"`
	Source        string         `json:"source"`     // crm.notify | crm.workflow | books.webhook
	Connection    string         `json:"connection"` // Zoho connection name, "default" when empty
	Module        string         `json:"module"`     // CRM module API name or Books entity
	Operation     string         `json:"operation"`  // create|update|delete for CRM; hook-defined otherwise
	RecordID      string         `json:"record_id"`
	ChangedFields []string       `json:"changed_fields,omitempty"`
	Values        map[string]any `json:"values,omitempty"`
	ChannelID     string         `json:"channel_id,omitempty"`
	Hook          string         `json:"hook,omitempty"`
	ReceivedAt    time.Time      `json:"received_at"`
	Payload       map[string]any `json:"payload,omitempty"`
}

// exprEvent is the event as expressions see it: a struct, so that
// `event.unknown` is a load error rather than a silent nil.
type exprEvent struct {
	ID            string         `expr:"id"`
	Source        string         `expr:"source"`
	Connection    string         `expr:"connection"`
	Module        string         `expr:"module"`
	Operation     string         `expr:"operation"`
	RecordID      string         `expr:"record_id"`
	ChangedFields []string       `expr:"changed_fields"`
	Values        map[string]any `expr:"values"`
	ChannelID     string         `expr:"channel_id"`
	Hook          string         `expr:"hook"`
	ReceivedAt    time.Time      `expr:"received_at"`
	Payload       map[string]any `expr:"payload"`
}

func toExprEvent(ev *Event) *exprEvent {
	if ev == nil {
		return &exprEvent{}
	}
	return &exprEvent{
		ID: ev.ID, Source: ev.Source, Connection: connectionOf(ev), Module: ev.Module, Operation: ev.Operation,
		RecordID: ev.RecordID, ChangedFields: ev.ChangedFields, Values: ev.Values, ChannelID: ev.ChannelID,
		Hook: ev.Hook, ReceivedAt: ev.ReceivedAt, Payload: ev.Payload,
	}
}

func connectionOf(ev *Event) string {
	if ev.Connection == "" {
		return "default"
	}
	return ev.Connection
}

// exprEnv is the whole expression environment. Compiling against this type
// makes unknown top-level names load errors.
type exprEnv struct {
	Event  *exprEvent     `expr:"event"`
	Record map[string]any `expr:"record"`
	Steps  map[string]any `expr:"steps"`
	Vars   map[string]any `expr:"vars"`
}
