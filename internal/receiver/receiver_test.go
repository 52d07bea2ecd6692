package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zohook/zohook/internal/channels"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/receiver"
	"github.com/zohook/zohook/internal/testutil"
	"net/http/httptest"
)

const token = "tok-3f9a1c-rotating-secret"

type harness struct {
	env *eventstest.Env
	url string
	srv *receiver.Server
}

func start(t *testing.T, env *eventstest.Env, mut ...func(*receiver.Config)) *harness {
	t.Helper()
	if env == nil {
		env = eventstest.Start(t)
	}
	h := &harness{env: env}
	cfg := receiver.Config{
		Publisher: events.NewPublisher(env.JS, env.Stream, events.WithPublishTimeout(time.Second)),
		CRMTokens: receiver.NewStaticTokens([]string{"old-token", token}),
		BodyLimit: 64 << 10,
		Ready: func(ctx context.Context) error {
			_, err := env.JS.Stream(ctx, env.Stream.Name)
			return err
		},
	}
	for _, m := range mut {
		m(&cfg)
	}
	srv, err := receiver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	h.srv, h.url = srv, "http://"+l.Addr().String()
	return h
}

func (h *harness) post(t *testing.T, path, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON (status %d): %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func notification(mut func(m map[string]any)) []byte {
	m := map[string]any{
		"server_time":     1718117126473,
		"query_params":    map[string]any{},
		"module":          "Deals",
		"resource_uri":    "https://www.zohoapis.com/crm/v2/Deals",
		"ids":             []any{"5725767000000524157", "5725767000000524158"},
		"affected_fields": []any{map[string]any{"5725767000000524157": []any{"Stage", "Amount"}}},
		"operation":       "update",
		"channel_id":      "1000000068001",
		"token":           token,
	}
	if mut != nil {
		mut(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func TestNotifyHappyPathOneEventPerRecord(t *testing.T) {
	h := start(t, nil)
	code, out := h.post(t, "/zoho/crm/notify", "application/json", notification(nil))
	if code != 200 || out["accepted"].(float64) != 2 {
		t.Fatalf("code %d body %v", code, out)
	}
	got := h.env.Envelopes(t)
	if len(got) != 2 {
		t.Fatalf("%d events stored", len(got))
	}
	byID := map[string]*events.Envelope{}
	for _, e := range got {
		byID[e.RecordID] = e
	}
	e := byID["5725767000000524157"]
	if e == nil || e.Module != "Deals" || e.Operation != "update" || e.Source != events.SourceCRMNotify ||
		e.ChannelID != "1000000068001" || e.Connection != "default" || e.ServerTime != 1718117126473 {
		t.Fatalf("envelope %+v", e)
	}
	if strings.Join(e.ChangedFields, ",") != "Stage,Amount" {
		t.Fatalf("changed fields %v", e.ChangedFields)
	}
	if len(byID["5725767000000524158"].ChangedFields) != 0 {
		t.Fatalf("other record got changed fields %v", byID["5725767000000524158"].ChangedFields)
	}
	if bytes.Contains(e.Raw, []byte(token)) || !bytes.Contains(e.Raw, []byte("resource_uri")) {
		t.Fatalf("raw must keep the body without the token: %s", e.Raw)
	}
}

func TestNotifyOperationAliases(t *testing.T) {
	h := start(t, nil)
	for op, want := range map[string]string{"insert": "create", "edit": "update", "delete": "delete"} {
		body := notification(func(m map[string]any) {
			m["operation"] = op
			m["ids"] = []any{"111"}
			m["server_time"] = 1718117126000 + int64(len(op))
		})
		if code, out := h.post(t, "/zoho/crm/notify", "application/json", body); code != 200 {
			t.Fatalf("%s: %d %v", op, code, out)
		}
		envs := h.env.Envelopes(t)
		if last := envs[len(envs)-1]; last.Operation != want {
			t.Fatalf("%s stored as %s", op, last.Operation)
		}
	}
}

func TestNotifyDuplicateStoredOnce(t *testing.T) {
	h := start(t, nil)
	body := notification(nil)
	for i := range 3 {
		code, out := h.post(t, "/zoho/crm/notify", "application/json", body)
		if code != 200 {
			t.Fatalf("attempt %d: %d %v", i, code, out)
		}
		if i > 0 && out["duplicates"].(float64) != 2 {
			t.Fatalf("attempt %d not reported as duplicate: %v", i, out)
		}
	}
	if n := h.env.Messages(t); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}

func TestNotifyRejects(t *testing.T) {
	h := start(t, nil)
	big := notification(func(m map[string]any) { m["resource_uri"] = strings.Repeat("x", 70<<10) })
	cases := []struct {
		name   string
		ctype  string
		body   []byte
		status int
		fields []string // field names the error must list
	}{
		{"wrong token", "application/json", notification(func(m map[string]any) { m["token"] = "nope" }), 401, nil},
		{"missing token", "application/json", notification(func(m map[string]any) { delete(m, "token") }), 401, nil},
		{"truncated JSON", "application/json", notification(nil)[:40], 400, nil},
		{"not an object", "application/json", []byte(`[1,2,3]`), 400, nil},
		{"missing fields", "application/json", []byte(`{"token":"` + token + `","channel_id":"1"}`), 400, []string{"module", "ids", "operation"}},
		{"ids not numbers", "application/json", notification(func(m map[string]any) { m["ids"] = []any{"12a", "x"} }), 400, []string{"ids[0]", "ids[1]"}},
		{"duplicate ids", "application/json", notification(func(m map[string]any) { m["ids"] = []any{"1", "1"} }), 400, []string{"ids"}},
		{"empty ids", "application/json", notification(func(m map[string]any) { m["ids"] = []any{} }), 400, []string{"ids"}},
		{"bad operation", "application/json", notification(func(m map[string]any) { m["operation"] = "merge" }), 400, []string{"operation"}},
		{"bad module", "application/json", notification(func(m map[string]any) { m["module"] = "Deals; DROP" }), 400, []string{"module"}},
		{"ids wrong type", "application/json", notification(func(m map[string]any) { m["ids"] = "123" }), 400, []string{"ids"}},
		{"oversize", "application/json", big, 413, nil},
		{"wrong content type", "application/xml", notification(nil), 415, nil},
		{"non UTF-8", "application/json", append([]byte(`{"module":"`), 0xff, 0xfe, '"', '}'), 400, nil},
		{"deep nesting", "application/json", []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := h.post(t, "/zoho/crm/notify", tc.ctype, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d (%v)", code, tc.status, out)
			}
			if msg, _ := out["error"].(string); msg == "" {
				t.Fatalf("no error message: %v", out)
			}
			listed := map[string]bool{}
			fields, _ := out["fields"].([]any)
			for _, f := range fields {
				listed[f.(map[string]any)["field"].(string)] = true
			}
			for _, f := range tc.fields {
				if !listed[f] {
					t.Errorf("error does not list field %q: %v", f, out)
				}
			}
			if strings.Contains(fmt.Sprint(out), token) {
				t.Fatal("error body leaks the token")
			}
		})
	}
	if n := h.env.Messages(t); n != 0 {
		t.Fatalf("rejected requests published %d events", n)
	}
}

// With channels zohook subscribed (tokens in NATS KV, each channel for one
// module), a notification naming another module than its channel's is
// refused, and a module no channel watches as well: Zoho would not send it.
func TestNotifyModuleMustBeTheChannels(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	kv, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: channels.DefaultBucket})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(channels.Entry{ChannelID: "1000000068001", Module: "Deals", Token: token})
	if _, err := kv.Put(ctx, "1000000068001", b); err != nil {
		t.Fatal(err)
	}
	v, err := channels.NewTokenVerifier(ctx, env.JS, channels.VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	h := start(t, env, func(c *receiver.Config) { c.CRMTokens = v })
	for _, module := range []string{"Leads", "Unicorns", "deals"} {
		code, out := h.post(t, "/zoho/crm/notify", "application/json", notification(func(m map[string]any) { m["module"] = module }))
		fields, _ := out["fields"].([]any)
		if code != http.StatusBadRequest || len(fields) != 1 || fields[0].(map[string]any)["field"] != "module" {
			t.Fatalf("module %s on a Deals channel: %d %v", module, code, out)
		}
	}
	if n := env.Messages(t); n != 0 {
		t.Fatalf("refused notifications published %d events", n)
	}
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", notification(nil)); code != http.StatusOK {
		t.Fatalf("the channel's own module: %d %v", code, out)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := start(t, nil, func(c *receiver.Config) { c.Registry = reg })
	h.post(t, "/zoho/crm/notify", "application/json", notification(nil))
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	// Operational endpoints are not on the public callback port.
	if code, _ := h.post(t, "/metrics", "", nil); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics on the public port: %d", code)
	}
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public port: %d, want 404", resp.StatusCode)
	}
	metricsSrv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metricsSrv.Close()
	resp, err = http.Get(metricsSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`zohook_receiver_requests_total{code="200",route="/zoho/crm/notify"} 1`,
		`zohook_events_published_total{result="stored",source="crm.notify"} 2`,
		`zohook_receiver_publish_duration_seconds_count 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(b), token) {
		t.Fatal("metrics leak the token")
	}
	code, out := h.post(t, "/no/such/route", "application/json", []byte(`{}`))
	if code != 404 || out["error"] == nil {
		t.Fatalf("unknown route: %d %v", code, out)
	}
}

// NATS goes away: the receiver answers 503 and publishes nothing half-way;
// when NATS comes back on the same address and directory, it recovers by
// itself and nothing stored before is lost.
func TestNATSDownThen503ThenRecovers(t *testing.T) {
	dir := t.TempDir()
	emb, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(emb.ClientURL(), "nats://")
	nc, err := nats.Connect(emb.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	scfg := events.StreamConfig{}.WithDefaults()
	if _, err := events.EnsureEventStreams(context.Background(), js, scfg, events.ConsumerConfig{}, events.CreateMissing); err != nil {
		t.Fatal(err)
	}
	env := &eventstest.Env{NC: nc, JS: js, Stream: scfg}
	h := start(t, env, func(c *receiver.Config) {
		c.Publisher = events.NewPublisher(js, scfg, events.WithPublishTimeout(500*time.Millisecond))
	})
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", notification(nil)); code != 200 {
		t.Fatalf("before outage: %d %v", code, out)
	}

	emb.Shutdown()
	body := notification(func(m map[string]any) { m["server_time"] = 1718117999999; m["ids"] = []any{"42"} })
	code, out := h.post(t, "/zoho/crm/notify", "application/json", body)
	if code != 503 {
		t.Fatalf("during outage: %d %v", code, out)
	}
	if resp, err := http.Get(h.url + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("readyz during outage: %v %v", resp.StatusCode, err)
	}

	emb2, err := events.StartEmbedded(events.EmbeddedConfig{DataDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer emb2.Shutdown()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out = h.post(t, "/zoho/crm/notify", "application/json", body)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not recover: %d %v", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := env.Messages(t); n != 3 {
		t.Fatalf("after recovery the stream holds %d events, want 3", n)
	}
}

// A notification token belongs to a connection: its events carry that
// connection's name (several Zoho organisations in one deployment).
func TestNotifyTokenSelectsConnection(t *testing.T) {
	h := start(t, nil, func(c *receiver.Config) {
		tokens := receiver.NewStaticTokens([]string{token})
		tokens.Add("acme-in", "acme-channel-token")
		c.CRMTokens = tokens
	})
	body := notification(func(m map[string]any) { m["token"] = "acme-channel-token"; m["ids"] = []any{"77"} })
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", body); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if code, out := h.post(t, "/zoho/crm/notify", "application/json", notification(nil)); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	conns := map[string]string{}
	for _, e := range h.env.Envelopes(t) {
		conns[e.RecordID] = e.Connection
	}
	if conns["77"] != "acme-in" || conns["5725767000000524157"] != "default" {
		t.Fatalf("connections by record: %v", conns)
	}
}

// Refused callbacks are logged (route, status, error, the fields at fault),
// so an operator sees why Zoho's calls bounce; the token is not.
func TestRefusedCallbacksAreLogged(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	h := start(t, nil, func(c *receiver.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	h.post(t, "/zoho/crm/notify", "application/json", notification(func(m map[string]any) { m["token"] = "nope-" + token }))
	h.post(t, "/zoho/crm/notify", "application/json", notification(func(m map[string]any) { m["ids"] = []any{"12a"} }))
	out := logs.String()
	for _, want := range []string{`msg="callback refused" route=/zoho/crm/notify status=401`,
		`status=400 error="invalid notification" fields=[ids[0]]`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, token) {
		t.Fatalf("log contains the token:\n%s", out)
	}
}
