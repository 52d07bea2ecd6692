package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogKey is the log attribute naming the trace a line belongs to.
const LogKey = "trace_id"

// LogAttrs returns "trace_id", <id> for ctx's span when it is sampled (so
// the trace exists in the backend), for appending to slog key-value
// arguments; nil otherwise (tracing off: no allocation).
func LogAttrs(ctx context.Context) []any {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return []any{LogKey, sc.TraceID().String()}
}

// Logger returns l with trace_id of ctx's sampled span, or l itself.
func Logger(ctx context.Context, l *slog.Logger) *slog.Logger {
	if a := LogAttrs(ctx); a != nil {
		return l.With(a...)
	}
	return l
}
