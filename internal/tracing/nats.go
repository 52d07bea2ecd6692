package tracing

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts NATS message headers to OpenTelemetry's
// TextMapCarrier. NATS header names are case-sensitive; the W3C names
// (traceparent, tracestate) are lower case on both sides.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set replaces the values of key.
func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// propagator is fixed (W3C trace context), not the global one: the
// headers are zohook's own wire format between its processes.
var propagator = propagation.TraceContext{}

// Inject writes the trace context of ctx's span into h (traceparent, and
// tracestate when there is one). Nothing is written while tracing is off
// or when ctx has no span. h must not be nil.
func Inject(ctx context.Context, h nats.Header) {
	if !On() {
		return
	}
	propagator.Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx with the remote span context found in h, to start
// the consumer's span as its child. While tracing is off, or without a
// valid traceparent, it returns ctx unchanged.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if !On() || h.Get("traceparent") == "" {
		return ctx
	}
	return propagator.Extract(ctx, HeaderCarrier(h))
}
