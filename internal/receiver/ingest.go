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
	body, err := readAll(http.MaxBytesReader(c.Response(), r.Body, s.cfg.BodyLimit), r.ContentLength, s.cfg.BodyLimit)
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

// readAll is io.ReadAll starting from the announced length (when it is
// within the limit), so a body is read into one buffer instead of growing
// one from 512 bytes.
func readAll(r io.Reader, announced, limit int64) ([]byte, error) {
	if announced <= 0 || announced > limit {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, announced+1) // +1: io.EOF is seen without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow as ReadAll does
		}
	}
}

// errTooDeep: the body of a stored event is one level down in it, and a
// worker refuses events nested deeper than events.MaxDepth.
var errTooDeep = badRequest(fmt.Sprintf("callback cannot be stored: JSON nested deeper than %d levels", events.MaxDepth-1))

// nestedDeeper reports JSON nested deeper than max levels: a byte scan
// (strings and their escapes skipped), far cheaper than a decode.
func nestedDeeper(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i) - 1
		case '{', '[':
			if depth++; depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// publish stores the events and answers: 200 once JetStream acknowledged all
// of them, 503 (so Zoho retries) if any was not stored. Re-delivery of the
// ones that were stored is harmless: their ids de-duplicate.
func (s *Server) publish(c echo.Context, envs []*events.Envelope) error {
	if len(envs) > 1 {
		// Encoding refuses an event nested deeper than a worker decodes
		// (answered 400 below), but the other records of the callback
		// would be stored by then: check them all first, so that a 4xx
		// stores nothing. One record needs no such scan.
		for _, e := range envs {
			if nestedDeeper(e.Raw, events.MaxDepth-1) {
				return errTooDeep
			}
		}
	}
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
	if errors.Is(err, events.ErrInvalidEnvelope) {
		// Encoding checks what a worker can decode (events.Encode), so
		// the receiver does not scan the callback for it first. A
		// validated callback fails only by nesting deeper than
		// events.MaxDepth (its body is one level down in the event).
		s.log.Info("callback cannot be stored as an event; answering 400", "route", c.Path(), "events", len(envs), "err", err)
		return errTooDeep
	}
	if errors.Is(err, events.ErrTooLarge) {
		s.log.Error("callback too large for the NATS server; answering 413", "route", c.Path(), "events", len(envs), "err", err)
		return &RequestError{Status: http.StatusRequestEntityTooLarge, Body: ErrorBody{Error: "callback too large to store"}}
	}
	if errors.Is(err, events.ErrFull) {
		// Workers are behind by the whole work stream: come back in a
		// minute, not in seconds. Nothing accepted is dropped meanwhile.
		s.log.Error("the work stream is full (unhandled events reached -work-max-bytes); answering 503 so Zoho retries later",
			"route", c.Path(), "events", len(envs), "stored", len(out.EventIDs))
		c.Response().Header().Set("Retry-After", "60")
		return &RequestError{Status: http.StatusServiceUnavailable, Body: ErrorBody{Error: "event store full, retry later"}}
	}
	if err != nil {
		s.log.Error("events not stored; answering 503 so Zoho retries",
			"route", c.Path(), "events", len(envs), "stored", len(out.EventIDs), "err", err)
		c.Response().Header().Set("Retry-After", "5")
		return &RequestError{Status: http.StatusServiceUnavailable, Body: ErrorBody{Error: "event store unavailable, retry later"}}
	}
	s.log.Debug("events stored", "route", c.Path(), "accepted", out.Accepted, "duplicates", out.Duplicates)
	return c.JSON(http.StatusOK, out)
}
