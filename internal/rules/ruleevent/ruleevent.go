// Package ruleevent converts a stored event (events.Envelope) into what
// rules see (rules.Event). It is its own package because internal/rules
// knows nothing of NATS or the envelope, while both the worker's engine and
// the offline tools (rules test, the "what if" history comparison) need the
// one conversion the worker uses.
package ruleevent

import (
	"encoding/json"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
)

// FromEnvelope returns the event as rules see it. The raw callback becomes
// event.payload when it is a JSON object; anything else leaves payload
// null, as the worker always did.
func FromEnvelope(env *events.Envelope) *rules.Event {
	ev := &rules.Event{
		ID: env.ID, Source: string(env.Source), Connection: env.Connection, Module: env.Module,
		Operation: env.Operation, RecordID: env.RecordID, ChangedFields: env.ChangedFields, Values: env.Values,
		ChannelID: env.ChannelID, Hook: env.Hook, ReceivedAt: env.ReceivedAt,
	}
	if len(env.Raw) > 0 {
		_ = json.Unmarshal(env.Raw, &ev.Payload)
	}
	return ev
}
