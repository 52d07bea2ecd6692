package receiver

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/zohook/zohook/internal/tracing"
)

// trace makes one server span per Zoho callback (routes under /zoho/),
// named by method and route template ("POST /zoho/crm/workflow/:name":
// never the raw path), ending with the answer's status. The handler's
// request context carries the span, so the publisher stores its context in
// the headers of each event and the worker's span for the event is its
// child. A callback starts a new trace: a traceparent sent from the
// internet is not trusted. Probes and unmatched paths are not traced.
// While tracing is off it returns next itself: echo applies middleware
// per request, and a wrapper would cost an allocation on every callback.
func (s *Server) trace(next echo.HandlerFunc) echo.HandlerFunc {
	if !tracing.On() {
		return next
	}
	return func(c echo.Context) error {
		route := c.Path()
		if !strings.HasPrefix(route, "/zoho/") {
			return next(c)
		}
		req := c.Request()
		ctx, span := tracing.Start(req.Context(), trace.SpanKindServer, req.Method+" ", route)
		defer span.End()
		c.SetRequest(req.WithContext(ctx))
		if err := next(c); err != nil {
			c.Error(err) // as observe does: the answer is written here
		}
		status := c.Response().Status
		if span.IsRecording() {
			span.SetAttributes(tracing.HTTPMethod.String(req.Method), tracing.HTTPRoute.String(route), tracing.HTTPStatus.Int(status))
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		return nil
	}
}
