package receiver

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/zohook/zohook/internal/events"
)

// Accepted is the JSON body of a 200 answer.
type Accepted struct {
	Accepted   int      `json:"accepted"`   // events stored now
	Duplicates int      `json:"duplicates"` // events JetStream already had
	EventIDs   []string `json:"event_ids"`
}

// readBody enforces the content type and the body limit, and refuses bodies
// that are not UTF-8 (Go's JSON decoder would silently replace the bytes).
func (s *Server) readBody(c echo.Context, allowed ...string) ([]byte, string, error) {
	r := c.Request()
	mt := "application/json"
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, "", &RequestError{Status: http.StatusUnsupportedMediaType, Body: ErrorBody{Error: "malformed Content-Type"}}
		}
	}
	ok := false
	for _, a := range allowed {
		ok = ok || mt == a
	}
	if !ok {
		return nil, "", &RequestError{Status: http.StatusUnsupportedMediaType,
			Body: ErrorBody{Error: fmt.Sprintf("unsupported Content-Type %q; send one of %v", mt, allowed)}}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.cfg.BodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "", &RequestError{Status: http.StatusRequestEntityTooLarge,
				Body: ErrorBody{Error: fmt.Sprintf("body larger than %d bytes", s.cfg.BodyLimit)}}
		}
		return nil, "", badRequest("reading body: " + err.Error())
	}
	if len(body) == 0 {
		return nil, "", badRequest("empty body")
	}
	if !utf8.Valid(body) {
		return nil, "", badRequest("body is not valid UTF-8")
	}
	return body, mt, nil
}

// publish stores the events and answers: 200 once JetStream acknowledged all
// of them, 503 (so Zoho retries) if any was not stored. Re-delivery of the
// ones that were stored is harmless: their ids de-duplicate.
func (s *Server) publish(c echo.Context, envs []*events.Envelope) error {
	start := time.Now()
	results, err := s.cfg.Publisher.Publish(c.Request().Context(), envs)
	s.metrics.publish.Observe(time.Since(start).Seconds())
	out := Accepted{EventIDs: make([]string, 0, len(envs))}
	for i, r := range results {
		if r.ID == "" {
			continue
		}
		out.EventIDs = append(out.EventIDs, r.ID)
		result := "stored"
		if r.Duplicate {
			result = "duplicate"
			out.Duplicates++
		} else {
			out.Accepted++
		}
		s.metrics.published.WithLabelValues(string(envs[i].Source), result).Inc()
	}
	if errors.Is(err, events.ErrTooLarge) {
		s.log.Error("callback too large for the NATS server; answering 413", "route", c.Path(), "events", len(envs), "err", err)
		return &RequestError{Status: http.StatusRequestEntityTooLarge, Body: ErrorBody{Error: "callback too large to store"}}
	}
	if err != nil {
		s.log.Error("events not stored; answering 503 so Zoho retries",
			"route", c.Path(), "events", len(envs), "stored", len(out.EventIDs), "err", err)
		c.Response().Header().Set("Retry-After", "5")
		return &RequestError{Status: http.StatusServiceUnavailable, Body: ErrorBody{Error: "event store unavailable, retry later"}}
	}
	s.log.Debug("events stored", "route", c.Path(), "accepted", out.Accepted, "duplicates", out.Duplicates)
	if s.cfg.OnStored != nil {
		s.stored.Add(1)
		go func() {
			defer s.stored.Done()
			s.cfg.OnStored(envs)
		}()
	}
	return c.JSON(http.StatusOK, out)
}
