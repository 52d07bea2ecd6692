package rulescmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/rules/ruleevent"
)

// callback is a request as Zoho would POST it to the receiver.
type callback struct {
	// URL is the receiver's path and query: /zoho/crm/notify,
	// /zoho/crm/workflow/NAME, /zoho/books/NAME?operation=paid.
	URL string `yaml:"url"`
	// Body is a mapping (sent as JSON) or a string (sent as it is, e.g. a
	// form with content_type application/x-www-form-urlencoded).
	Body any `yaml:"body"`
	// ContentType defaults to application/json.
	ContentType string `yaml:"content_type"`
	// Hook is the hook's entry of the -config file (module, operation,
	// record_id_field...); its secret is not needed.
	Hook *config.Hook `yaml:"hook"`
}

// hookSecret authenticates the test's own request to the in-process
// receiver; the user's real secrets are never needed.
const hookSecret = "zohook-rules-test"

// capturePublisher is the receiver's publisher in a test: it keeps the
// events instead of storing them in JetStream.
type capturePublisher struct{ envs []*events.Envelope }

func (p *capturePublisher) Publish(_ context.Context, envs []*events.Envelope) ([]events.PublishResult, error) {
	p.envs = append(p.envs, envs...)
	out := make([]events.PublishResult, len(envs))
	for i, e := range envs {
		out[i] = events.PublishResult{ID: e.ID}
	}
	return out, nil
}

// anyToken accepts every CRM channel token: a test checks what happens to
// a notification, not who may send it.
type anyToken struct{}

func (anyToken) VerifyChannelToken(context.Context, string, string) (string, string, bool) {
	return "", "", true
}

// callbackEvents runs the callback through zohook's receiver, in process
// (no listener, no NATS), and returns the events it would store, as the
// worker reads them back. A receiver refusal (400, 401, 404...) is an
// error quoting its answer.
func callbackEvents(cb callback, now time.Time) ([]*rules.Event, error) {
	u, err := url.Parse(cb.URL)
	if err != nil || !strings.HasPrefix(u.Path, "/zoho/") {
		return nil, fmt.Errorf("callback url %q: want the receiver's path, e.g. /zoho/crm/notify or /zoho/books/NAME", cb.URL)
	}
	var body []byte
	switch b := cb.Body.(type) {
	case string:
		body = []byte(b)
	case nil:
		return nil, fmt.Errorf("callback: no body")
	default:
		if body, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("callback body: %w", err)
		}
	}
	ct := cb.ContentType
	if ct == "" {
		ct = "application/json"
	}
	hc := receiver.HookConfig{Secret: hookSecret}
	if h := cb.Hook; h != nil {
		hc = receiver.HookConfig{Connection: h.Connection, Secret: hookSecret, SecretHeader: h.SecretHeader,
			Module: h.Module, ModuleField: h.ModuleField, Operation: h.Operation, OperationField: h.OperationField,
			RecordIDField: h.RecordIDField}
	}
	name := u.Path[strings.LastIndex(u.Path, "/")+1:]
	pub := &capturePublisher{}
	srv, err := receiver.New(receiver.Config{
		Publisher: pub, CRMTokens: anyToken{}, Now: func() time.Time { return now },
		CRMWorkflowHooks: map[string]receiver.HookConfig{name: hc}, BooksHooks: map[string]receiver.HookConfig{name: hc},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	req := httptest.NewRequest(http.MethodPost, cb.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	header := hc.SecretHeader
	if header == "" {
		header = "X-Zohook-Secret"
	}
	req.Header.Set(header, hookSecret)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("the receiver answers %d: %s", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	out := make([]*rules.Event, 0, len(pub.envs))
	for _, env := range pub.envs {
		// Through JSON, as the worker reads it from the stream: numbers in
		// values become float64 there too.
		data, err := json.Marshal(env)
		if err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		stored, err := events.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		out = append(out, toRulesEvent(stored))
	}
	return out, nil
}

// toRulesEvent is what the worker's engine does with a stored event
// (engine.ToRulesEvent): rulescmd cannot import the engine (it would pull
// the worker, NATS consumers and the journal into `rules test`), so the
// few lines are repeated here; TestCallbackEventsAsTheEngineSeesThem pins
// the fields.
func toRulesEvent(env *events.Envelope) *rules.Event { return ruleevent.FromEnvelope(env) }
