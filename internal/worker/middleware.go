package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/zohook/zohook/internal/tracing"
)

// Recover turns a panic in the handler into a permanent error, so one bad
// event cannot crash the worker or be redelivered forever.
func Recover(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) (err error) {
			defer func() {
				if r := recover(); r != nil {
					tracing.Logger(ctx, log).Error("handler panicked", "event_id", m.Envelope.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = Permanent(fmt.Errorf("handler panicked: %v", r))
				}
			}()
			return next.Handle(ctx, m)
		})
	}
}

// Timeout bounds one handling attempt; the context deadline makes Zoho calls
// stop, and the event is retried.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			if d <= 0 {
				return next.Handle(ctx, m)
			}
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next.Handle(ctx, m)
		})
	}
}

// Log writes one line per handled event with its id and outcome.
func Log(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := next.Handle(ctx, m)
			attrs := []any{
				"event_id", m.Envelope.ID, "source", m.Envelope.Source, "module", m.Envelope.Module,
				"operation", m.Envelope.Operation, "record_id", m.Envelope.RecordID,
				"delivery", m.Delivered, "duration", time.Since(start).Round(time.Microsecond),
			}
			attrs = append(attrs, tracing.LogAttrs(ctx)...)
			if err != nil {
				log.Warn("event failed", append(attrs, "err", err)...)
			} else {
				log.Info("event handled", attrs...)
			}
			return err
		})
	}
}
