package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
)

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	p := strings.TrimSuffix(Prefix, "/")
	mux.Handle("GET "+p+"/static/", http.StripPrefix(p+"/static/", staticHandler()))
	mux.HandleFunc("GET "+p+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/events", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+p+"/events", c.pageEvents)
	mux.HandleFunc("GET "+p+"/events/rows", c.pageEventRows)
	mux.HandleFunc("GET "+p+"/events/{id}", c.pageEvent)
	mux.HandleFunc("GET "+p+"/dead-letters", c.pageDeadLetters)
	mux.HandleFunc("POST "+p+"/dead-letters/preview", c.pagePreview)
	mux.HandleFunc("POST "+p+"/dead-letters/replay", c.pageReplay)
	mux.HandleFunc("POST "+p+"/dead-letters/{id}/replay", c.pageReplayOne)
	mux.HandleFunc("POST "+p+"/dead-letters/{id}/resolve", c.pageResolve)
	mux.HandleFunc("GET "+p+"/health", c.pageHealth)

	mux.HandleFunc("GET "+p+"/api/events", c.apiEvents)
	mux.HandleFunc("GET "+p+"/api/events/stream", c.apiStream)
	mux.HandleFunc("GET "+p+"/api/events/{id}", c.apiEvent)
	mux.HandleFunc("GET "+p+"/api/dead-letters", c.apiDeadLetters)
	mux.HandleFunc("POST "+p+"/api/dead-letters/replay", c.apiReplay)
	mux.HandleFunc("POST "+p+"/api/dead-letters/{id}/replay", c.apiReplayOne)
	mux.HandleFunc("POST "+p+"/api/dead-letters/{id}/resolve", c.apiResolve)
	mux.HandleFunc("GET "+p+"/api/health", c.apiHealth)
	return c.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		}
		mux.ServeHTTP(w, r)
	}))
}

func isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/")+"/api/") || !strings.Contains(r.Header.Get("Accept"), "text/html")
}

// fail answers an error: JSON for the API (and clients that do not ask for
// HTML), a page otherwise.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if isAPI(r) {
		c.writeJSON(w, r, status, map[string]any{"error": msg})
		return
	}
	c.render(w, status, "error", errorView{base: c.base(r, "Error"), Status: status, Message: msg})
}

// writeJSON answers v as JSON (indented with ?pretty), with known secrets
// scrubbed.
func (c *Console) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if _, pretty := r.URL.Query()["pretty"]; pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(c.scrub.bytes(buf.Bytes()))
}

// ListQuery is an events query as the list page and the API take it.
type ListQuery struct {
	Filter Filter
	// Q is an event id or a record id (search box).
	Q      string
	Before uint64
	After  uint64
	Limit  int
}

// DefaultPageSize is the events list's page size.
const DefaultPageSize = 50

// parseListQuery reads an events query from URL parameters: source,
// connection, module, operation, record, status (or outcome), since,
// until, q, before, after, limit.
func parseListQuery(v url.Values, now time.Time) (ListQuery, error) {
	q := ListQuery{Limit: DefaultPageSize, Q: strings.TrimSpace(v.Get("q"))}
	f := &q.Filter
	f.Source, f.Connection = strings.TrimSpace(v.Get("source")), strings.TrimSpace(v.Get("connection"))
	f.Module, f.Operation = strings.TrimSpace(v.Get("module")), strings.TrimSpace(v.Get("operation"))
	f.RecordID = strings.TrimSpace(v.Get("record"))
	f.Status = strings.TrimSpace(v.Get("status"))
	if f.Status == "" {
		f.Status = strings.TrimSpace(v.Get("outcome"))
	}
	var err error
	if f.Since, err = parseWhen(v.Get("since"), now); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseWhen(v.Get("until"), now); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	for _, p := range []struct {
		name string
		dst  *uint64
	}{{"before", &q.Before}, {"after", &q.After}} {
		if s := v.Get(p.name); s != "" {
			if *p.dst, err = strconv.ParseUint(s, 10, 64); err != nil {
				return q, fmt.Errorf("%s: want a sequence number from a previous page", p.name)
			}
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 {
			return q, fmt.Errorf("limit: want 1 to %d", MaxPage)
		}
		q.Limit = min(q.Limit, MaxPage)
	}
	return q, nil
}

// parseWhen reads a time: RFC 3339, "2006-01-02T15:04" or "2006-01-02"
// (UTC), or a duration back from now ("90m", "2h", "7d").
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-12-01T10:00:00Z), 2026-12-01T10:00 (UTC), a date, or a duration back from now (2h, 7d)", s)
}

// ListResult is the answer of the events list.
type ListResult struct {
	Page
	// Via: "index" (the in-memory index), "streams" (a record lookup read
	// from the history and outcome streams by the record's subject token,
	// when the index does not hold the whole history) or "id" (one event
	// by id).
	Via string `json:"via"`
	// Loaded: the index has read the history to its end once (before, the
	// newest events may be missing).
	Loaded bool `json:"loaded"`
}

// ListEvents answers an events query.
func (c *Console) ListEvents(ctx context.Context, q ListQuery) (ListResult, error) {
	res := ListResult{Loaded: c.ix.Loaded()}
	if q.Q != "" {
		if sum, ok := c.ix.Lookup(q.Q); ok {
			res.Via, res.Page = "id", Page{Events: []EventSummary{sum}}
			if !q.Filter.Matches(sum) {
				res.Events = []EventSummary{}
			}
			return res, nil
		}
		q.Filter.RecordID = q.Q
	}
	if q.Filter.RecordID != "" && !(c.ix.Loaded() && c.ix.Complete()) {
		// The index lacks part of the history: read the record's events
		// from the streams instead.
		ix, err := c.recordIndex(ctx, q.Filter)
		if err != nil {
			return res, err
		}
		res.Via, res.Page = "streams", ix.List(q.Filter, q.Before, q.After, q.Limit)
		return res, nil
	}
	res.Via, res.Page = "index", c.ix.List(q.Filter, q.Before, q.After, q.Limit)
	return res, nil
}

// maxRecordEvents bounds a record lookup.
const maxRecordEvents = 10_000

// recordIndex builds a small index of one record's events from the
// streams: the history and outcome subjects end with the record id, so
// JetStream reads only that record's messages, over the whole history.
func (c *Console) recordIndex(ctx context.Context, f Filter) (*Index, error) {
	rec := events.Token(f.RecordID)
	conn, mod := "*", "*"
	if f.Connection != "" {
		conn = events.Token(f.Connection)
	}
	if f.Module != "" {
		mod = events.Token(events.ModuleKey(f.Module))
	}
	ix := NewIndex(maxRecordEvents)
	var first time.Time
	err := readStream(ctx, c.cfg.JS, c.cfg.Stream.HistoryName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectPrefix + ".*.*." + conn + "." + mod + ".*.*." + rec},
	}, maxRecordEvents, func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		var env historyEnvelope
		if json.Unmarshal(m.Data(), &env) != nil || env.ID == "" || env.RecordID != f.RecordID {
			return
		}
		if first.IsZero() {
			first = meta.Timestamp
		}
		ix.AddEvent(IndexedEvent{Seq: meta.Sequence.Stream, WorkSeq: workSeqOf(m.Headers().Get(sourceHeader)), At: meta.Timestamp,
			ID: env.ID, Source: env.Source, Connection: env.Connection, Module: env.Module, Operation: env.Operation, RecordID: env.RecordID})
	})
	if err != nil {
		return nil, fmt.Errorf("history of record %s: %w", f.RecordID, err)
	}
	if first.IsZero() {
		return ix, nil
	}
	start := first.Add(-time.Minute)
	err = readStream(ctx, c.cfg.JS, worker.DefaultOutcomesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{worker.OutcomeSubjectPrefix + ".*.*.*." + conn + "." + mod + ".*." + rec},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
	}, 10*maxRecordEvents, func(m jetstream.Msg) {
		var r worker.OutcomeRecord
		if json.Unmarshal(m.Data(), &r) == nil {
			ix.AddOutcome(&r)
		}
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("outcomes of record %s: %w", f.RecordID, err)
	}
	return ix, nil
}

func (c *Console) apiEvents(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query(), time.Now())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	res, err := c.ListEvents(r.Context(), q)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	c.writeJSON(w, r, http.StatusOK, res)
}

func (c *Console) apiEvent(w http.ResponseWriter, r *http.Request) {
	d, err := c.Event(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrEventNotFound) {
		c.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	c.writeJSON(w, r, http.StatusOK, d)
}

// apiStream sends the events the index adds or changes as server-sent
// events ("event: event", data: an EventSummary), filtered like the list
// (and by id=, which first sends the event's current state); "event:
// reset" when a list reader connects and when changes were dropped for a
// slow reader, who should reload.
func (c *Console) apiStream(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.Query(), time.Now())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	id := r.URL.Query().Get("id")
	if q.Q != "" && id == "" {
		if _, ok := c.ix.Lookup(q.Q); ok {
			id = q.Q
		} else {
			q.Filter.RecordID = q.Q
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sub := c.ix.Subscribe()
	defer sub.Close()
	// What changed between the page's rendering and this subscription
	// would be missed: a reader of one event gets its state now (the page
	// compares it with what it shows), a list reader a reset (it reloads
	// its rows once).
	_, _ = fmt.Fprint(w, "retry: 2000\n: connected\n\n")
	if id != "" {
		if s, ok := c.ix.Lookup(id); ok {
			b, _ := json.Marshal(s)
			_, _ = fmt.Fprintf(w, "event: event\ndata: %s\n\n", c.scrub.bytes(b))
		}
	} else {
		_, _ = fmt.Fprint(w, "event: reset\ndata: {}\n\n")
	}
	if err := rc.Flush(); err != nil {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.stopped:
			return
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case s := <-sub.C:
			if sub.Lagged() {
				if _, err := fmt.Fprint(w, "event: reset\ndata: {}\n\n"); err != nil {
					return
				}
			}
			if (id != "" && s.ID != id) || !q.Filter.Matches(s) {
				continue
			}
			b, _ := json.Marshal(s)
			if _, err := fmt.Fprintf(w, "event: event\ndata: %s\n\n", c.scrub.bytes(b)); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func deadLetterFilter(v url.Values) DeadLetterFilter {
	return DeadLetterFilter{Rule: strings.TrimSpace(v.Get("rule")), Step: strings.TrimSpace(v.Get("step")),
		Module: strings.TrimSpace(v.Get("module")), Error: strings.TrimSpace(v.Get("error"))}
}

func (c *Console) apiDeadLetters(w http.ResponseWriter, r *http.Request) {
	list, total, err := c.DeadLetters(r.Context(), deadLetterFilter(r.URL.Query()))
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err.Error())
		return
	}
	c.writeJSON(w, r, http.StatusOK, map[string]any{"dead_letters": list, "matching": len(list), "total": total})
}

// ReplayRequest is the body of POST /console/api/dead-letters/replay.
type ReplayRequest struct {
	Selection
	// DryRun: answer the preview, send nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Expect: the count a preview showed; required to replay (a replay
	// whose selection changed meanwhile sends nothing and answers 409).
	Expect *int `json:"expect,omitempty"`
}

func (c *Console) apiReplay(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		c.fail(w, r, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if req.DryRun {
		p, err := c.PreviewReplay(r.Context(), req.Selection)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, err.Error())
			return
		}
		c.writeJSON(w, r, http.StatusOK, map[string]any{"dry_run": true, "would_replay": p.Count, "preview": p})
		return
	}
	if req.Expect == nil {
		c.fail(w, r, http.StatusBadRequest, `preview first: POST the same selection with "dry_run": true, then again with "expect": <would_replay>`)
		return
	}
	res, p, err := c.Replay(r.Context(), req.Selection, *req.Expect)
	if errors.Is(err, ErrPreviewChanged) {
		c.writeJSON(w, r, http.StatusConflict, map[string]any{"error": err.Error(), "would_replay": p.Count, "preview": p})
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	c.writeJSON(w, r, http.StatusOK, res)
}

func (c *Console) replayError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, worker.ErrNotFound):
		c.fail(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, worker.ErrNotAnEvent), errors.Is(err, worker.ErrNotInDoubt):
		c.fail(w, r, http.StatusConflict, err.Error())
	default:
		c.fail(w, r, http.StatusConflict, err.Error())
	}
}

func (c *Console) apiReplayOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := c.ReplayOne(r.Context(), id); err != nil {
		c.replayError(w, r, err)
		return
	}
	c.writeJSON(w, r, http.StatusOK, ReplayResult{Replayed: []string{id}})
}

func (c *Console) apiResolve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Decision string `json:"decision"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		c.fail(w, r, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	id := r.PathValue("id")
	if err := c.Resolve(r.Context(), id, req.Decision); err != nil {
		c.replayError(w, r, err)
		return
	}
	c.writeJSON(w, r, http.StatusOK, map[string]any{"replayed": []string{id}, "decision": req.Decision})
}

func (c *Console) apiHealth(w http.ResponseWriter, r *http.Request) {
	c.writeJSON(w, r, http.StatusOK, c.Health(r.Context()))
}
