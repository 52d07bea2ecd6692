package tracing_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
	"github.com/zohook/zohook/internal/tracing"
)

// otelEnv lists every variable the tests set or clear.
var otelEnv = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
	"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}

func clearEnv(t *testing.T) {
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
		want    string
	}{
		{name: "nothing set: off"},
		{name: "sampler alone: off", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, on: true, want: "http://collector:4318"},
		{name: "traces endpoint wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/v1/traces"}, on: true, want: "http://b:4318/v1/traces"},
		{name: "disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "exporter otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "otlp"}, on: true, want: "http://a:4318"},
		{name: "other exporter refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTLP only"},
		{name: "grpc refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: "http/protobuf only"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, on: true, want: "http://a:4318"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tracing.FromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.On != tc.on || c.Endpoint != tc.want {
				t.Fatalf("got %+v, %v; want on=%v endpoint %q", c, err, tc.on, tc.want)
			}
		})
	}
}

// Without an endpoint Setup installs nothing: spans are no-ops that cost
// no allocation, nothing goes into message headers, logs get no trace_id,
// and a whole notification through the receiver and worker exports
// nothing, not even to a provider someone set as OpenTelemetry's global.
func TestOffWithoutEndpoint(t *testing.T) {
	clearEnv(t)
	shutdown, err := tracing.Setup(context.Background(), tracing.Options{ServiceName: "zohook-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown()
	if tracing.On() {
		t.Fatal("tracing on without an endpoint")
	}
	global := tracetest.NewInMemoryExporter()
	gtp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(global))
	prevGlobal := otel.GetTracerProvider()
	otel.SetTracerProvider(gtp)
	defer otel.SetTracerProvider(prevGlobal)

	ctx := context.Background()
	h := nats.Header{}
	allocs := testing.AllocsPerRun(1000, func() {
		sctx, span := tracing.Start(ctx, trace.SpanKindInternal, "rule ", "x")
		if span.IsRecording() || sctx != ctx {
			t.Fatal("a recording span while off")
		}
		tracing.Inject(sctx, h)
		_ = tracing.Extract(sctx, h)
		_ = tracing.LogAttrs(sctx)
		_ = tracing.Logger(sctx, slog.Default())
		span.End()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per span while off, want 0", allocs)
	}
	if len(h) != 0 {
		t.Errorf("headers written while off: %v", h)
	}

	p := startPipeline(t)
	p.notify(t)
	if n := len(global.GetSpans()); n != 0 {
		t.Errorf("%d spans exported while off", n)
	}
	if strings.Contains(p.logs.String(), "trace_id") {
		t.Errorf("trace_id logged while off:\n%s", p.logs.String())
	}
	// The stored event carries no trace context.
	msg := lastHistoryMsg(t, p.env)
	if v := msg.Header.Get("traceparent"); v != "" {
		t.Errorf("stored event has traceparent %q while off", v)
	}
}

func lastHistoryMsg(t *testing.T, env *eventstest.Env) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := env.JS.Stream(ctx, env.Stream.HistoryName)
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	waitFor(t, "the event in the history stream", func() bool {
		info, err := st.Info(ctx)
		if err != nil || info.State.Msgs == 0 {
			return false
		}
		msg, err = st.GetMsg(ctx, info.State.LastSeq)
		return err == nil
	})
	return msg
}

// Publish stores the W3C trace context of the span in its context in
// every event's headers, as the child span "publish <stream>".
func TestPublishCarriesTraceContextInHeaders(t *testing.T) {
	exp := installMemory(t)
	env := eventstest.Start(t)
	ctx, parent := tracing.Start(context.Background(), trace.SpanKindServer, "POST ", "/test")
	_, err := events.NewPublisher(env.JS, env.Stream).Publish(ctx, []*events.Envelope{{ID: "ev-trace-1", Source: events.SourceCRMNotify,
		Connection: "default", Module: "Deals", Operation: events.OpUpdate, RecordID: "1", ReceivedAt: time.Now().UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	parent.End()
	msg := lastHistoryMsg(t, env)
	pub := spanByName(t, exp.GetSpans(), "publish "+env.Stream.Name)
	if pub.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("publish span's parent %s, want %s", pub.Parent.SpanID(), parent.SpanContext().SpanID())
	}
	want := "00-" + pub.SpanContext.TraceID().String() + "-" + pub.SpanContext.SpanID().String() + "-01"
	if got := msg.Header.Get("traceparent"); got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	// The worker side: Extract gives the consumer's span that parent.
	cctx, child := tracing.Start(tracing.Extract(context.Background(), msg.Header), trace.SpanKindConsumer, "handle ", "x")
	child.End()
	c := spanByName(t, exp.GetSpans(), "handle x")
	if c.Parent.SpanID() != pub.SpanContext.SpanID() || !c.Parent.IsRemote() || c.SpanContext.TraceID() != pub.SpanContext.TraceID() {
		t.Errorf("consumer span parent %v remote %v", c.Parent.SpanID(), c.Parent.IsRemote())
	}
	if got := tracing.LogAttrs(cctx); len(got) != 2 || got[0] != "trace_id" || got[1] != pub.SpanContext.TraceID().String() {
		t.Errorf("LogAttrs %v", got)
	}
}

func TestHeaderCarrier(t *testing.T) {
	h := nats.Header{"Nats-Msg-Id": {"x"}}
	c := tracing.HeaderCarrier(h)
	c.Set("traceparent", "v")
	if c.Get("traceparent") != "v" || h.Get("traceparent") != "v" || len(c.Keys()) != 2 {
		t.Fatalf("carrier %v keys %v", h, c.Keys())
	}
	if got := tracing.Extract(context.Background(), nats.Header{"traceparent": {"garbage"}}); trace.SpanContextFromContext(got).IsValid() {
		t.Fatal("a malformed traceparent gave a valid span context")
	}
}

// otlpSink is a real HTTP server standing in for a collector's OTLP/HTTP
// receiver: it keeps what is POSTed to /v1/traces.
type otlpSink struct {
	mu     sync.Mutex
	bodies [][]byte
	ctypes []string
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		s.ctypes = append(s.ctypes, r.Header.Get("Content-Type"))
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (s *otlpSink) all() ([]byte, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.bodies, nil), append([]string(nil), s.ctypes...)
}

// With an endpoint, Setup exports over OTLP/HTTP to it, with the service
// name of OTEL_SERVICE_NAME over the program's default, and shutdown
// flushes what is left. OTEL_TRACES_SAMPLER=always_off samples nothing.
func TestSetupExportsToTheEndpoint(t *testing.T) {
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "zohook-receiver-eu")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
	shutdown, err := tracing.Setup(context.Background(), tracing.Options{ServiceName: "zohook-receiver", Version: "v9.9.9", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !tracing.On() {
		t.Fatal("tracing off with an endpoint")
	}
	_, span := tracing.Start(context.Background(), trace.SpanKindServer, "POST ", "/zoho/crm/notify")
	if !span.IsRecording() {
		t.Fatal("span not recording")
	}
	span.End()
	shutdown()
	if tracing.On() {
		t.Error("tracing still on after shutdown")
	}
	body, ctypes := sink.all()
	for _, want := range []string{"POST /zoho/crm/notify", "zohook-receiver-eu", "staging", "v9.9.9", tracing.ScopeName} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("exported OTLP has no %q", want)
		}
	}
	if len(ctypes) == 0 || ctypes[0] != "application/x-protobuf" {
		t.Errorf("content types %v", ctypes)
	}
	if !strings.Contains(logs.String(), "tracing on") {
		t.Errorf("no log line saying tracing is on: %s", logs.String())
	}

	// Sampling is the SDK's, from the environment.
	sink2 := &otlpSink{}
	srv2 := httptest.NewServer(sink2)
	defer srv2.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv2.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	shutdown, err = tracing.Setup(context.Background(), tracing.Options{ServiceName: "zohook-worker", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tracing.Start(context.Background(), trace.SpanKindConsumer, "handle ", "crm.notify")
	if span.IsRecording() || tracing.LogAttrs(ctx) != nil {
		t.Error("always_off: span recording or trace_id logged")
	}
	h := nats.Header{}
	tracing.Inject(ctx, h)
	span.End()
	shutdown()
	if body, _ := sink2.all(); len(body) != 0 {
		t.Errorf("always_off exported %d bytes", len(body))
	}
	// An unsampled context still travels (so that parent-based samplers
	// downstream agree), flagged unsampled.
	if v := h.Get("traceparent"); !strings.HasSuffix(v, "-00") {
		t.Errorf("traceparent %q, want the unsampled flag", v)
	}
}

// BenchmarkSpanOff is the cost per span while tracing is off; compare
// BenchmarkSpanOn.
func BenchmarkSpanOff(b *testing.B) {
	restore := tracing.Install(nil)
	defer restore()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		sctx, span := tracing.Start(ctx, trace.SpanKindInternal, "step ", "crm.update_record")
		if span.IsRecording() {
			b.Fatal("recording")
		}
		tracing.Inject(sctx, nil)
		span.End()
	}
}

func BenchmarkSpanOn(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	restore := tracing.Install(tp)
	defer restore()
	ctx := context.Background()
	h := nats.Header{}
	b.ReportAllocs()
	for b.Loop() {
		sctx, span := tracing.Start(ctx, trace.SpanKindInternal, "step ", "crm.update_record")
		tracing.Inject(sctx, h)
		span.End()
	}
}
