package tracing

import "go.opentelemetry.io/otel/attribute"

// Attribute keys of zohook's spans. The OpenTelemetry semantic-convention
// names are used where one exists. No attribute ever holds a token, a
// secret, a query value or a record's field values: paths are templates
// (ids replaced by {id}), errors are named by class and Zoho code, never
// by message.
const (
	// Receiver (server span) and Zoho calls (client spans).
	HTTPMethod = attribute.Key("http.request.method")
	HTTPRoute  = attribute.Key("http.route")
	HTTPStatus = attribute.Key("http.response.status_code")
	// URLTemplate: the path of a Zoho call with ids replaced, e.g.
	// /crm/v8/Deals/{id}.
	URLTemplate   = attribute.Key("url.template")
	ServerAddress = attribute.Key("server.address")
	ErrorType     = attribute.Key("error.type")

	// Publish (producer) and event (consumer) spans.
	MessagingSystem      = attribute.Key("messaging.system")
	MessagingDestination = attribute.Key("messaging.destination.name")
	MessagingOperation   = attribute.Key("messaging.operation.type")

	// zohook's own.
	EventID   = attribute.Key("zohook.event.id")
	Source    = attribute.Key("zohook.event.source")
	Module    = attribute.Key("zohook.event.module")
	Operation = attribute.Key("zohook.event.operation")
	Partition = attribute.Key("zohook.partition")
	Sequence  = attribute.Key("zohook.stream.sequence")
	Delivery  = attribute.Key("zohook.delivery")
	Attempt   = attribute.Key("zohook.attempt")
	Duplicate = attribute.Key("zohook.duplicate")
	// Outcome: what the worker did with the delivery (acked, retried,
	// dead_lettered, rate_limited, held); Result: the engine's word for the
	// run (done, no_rule, condition_false, self_caused, failed, ...).
	Outcome  = attribute.Key("zohook.outcome")
	Result   = attribute.Key("zohook.result")
	Rule     = attribute.Key("zohook.rule")
	Step     = attribute.Key("zohook.step")
	Action   = attribute.Key("zohook.action")
	ZohoAPI  = attribute.Key("zoho.api")
	ZohoCode = attribute.Key("zoho.code")
)
