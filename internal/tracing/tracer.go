package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of every zohook span.
const ScopeName = "github.com/zohook/zohook"

// current is the tracer zohook's spans come from; nil while tracing is off.
var current atomic.Pointer[trace.Tracer]

// noopSpan is returned by Start while tracing is off: a package value, so
// handing it out allocates nothing.
var noopSpan trace.Span = noop.Span{}

// Install makes zohook's spans come from tp (nil: tracing off) and returns
// a function that puts back what was installed before. Setup calls it;
// tests call it with an SDK provider around an in-memory exporter.
func Install(tp trace.TracerProvider) (restore func()) {
	var next *trace.Tracer
	if tp != nil {
		t := tp.Tracer(ScopeName)
		next = &t
	}
	prev := current.Swap(next)
	return func() { current.Store(prev) }
}

// On reports whether tracing is on in this process.
func On() bool { return current.Load() != nil }

// Start starts a span named prefix+name (two parts so that callers build
// no string while tracing is off) as a child of the span in ctx. Off, it
// returns ctx itself and a no-op span: no allocation. Set attributes after
// checking span.IsRecording(), so that they cost nothing either.
func Start(ctx context.Context, kind trace.SpanKind, prefix, name string) (context.Context, trace.Span) {
	t := current.Load()
	if t == nil {
		return ctx, noopSpan
	}
	return (*t).Start(ctx, prefix+name, trace.WithSpanKind(kind))
}
