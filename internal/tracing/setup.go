package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Options are what the program knows about itself; everything else comes
// from the standard OTEL_* environment variables.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES sets one (zohook-receiver, zohook-worker).
	ServiceName string
	// Version is service.version (the build's version).
	Version string
	// Logger receives the SDK's errors (an unreachable collector, a bad
	// OTEL_TRACES_SAMPLER) and the line saying tracing is on. Default
	// slog.Default().
	Logger *slog.Logger
	// ShutdownTimeout bounds the last export at exit. Default 5s.
	ShutdownTimeout time.Duration
}

// Config is what the environment says about tracing.
type Config struct {
	// On: an OTLP endpoint is set and tracing is not disabled.
	On bool
	// Endpoint: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
	// OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces to the
	// latter).
	Endpoint string
	// Sampler: OTEL_TRACES_SAMPLER and its argument, as given ("" is the
	// SDK's default, parentbased_always_on).
	Sampler, SamplerArg string
}

// FromEnv reads the tracing configuration from getenv (os.Getenv in
// Setup). It refuses settings zohook cannot honour rather than ignoring
// them: another exporter than OTLP, or OTLP over gRPC.
func FromEnv(getenv func(string) string) (Config, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{Endpoint: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), Sampler: env("OTEL_TRACES_SAMPLER"), SamplerArg: env("OTEL_TRACES_SAMPLER_ARG")}
	if c.Endpoint == "" {
		c.Endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if c.Endpoint == "" || strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return Config{}, nil
	}
	switch exp := strings.ToLower(env("OTEL_TRACES_EXPORTER")); exp {
	case "", "otlp":
	case "none":
		return Config{}, nil
	default:
		return Config{}, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%s: zohook exports traces with OTLP only (otlp or none)", exp)
	}
	proto := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return Config{}, fmt.Errorf("tracing: OTLP protocol %q: zohook exports over http/protobuf only (port 4318 of a collector)", proto)
	}
	c.On = true
	return c, nil
}

// Setup turns tracing on when the environment configures an OTLP
// endpoint: an OTLP/HTTP exporter (which reads OTEL_EXPORTER_OTLP_* itself:
// endpoint, headers, timeout, certificates, compression), a batching SDK
// provider with the sampler of OTEL_TRACES_SAMPLER / _ARG and the resource
// of OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, installed for zohook's
// spans and as OpenTelemetry's global provider. Without an endpoint it does
// nothing: zohook's spans are no-ops and no exporter runs.
//
// shutdown exports the spans not yet exported (within ShutdownTimeout),
// stops the exporter and logs what could not be sent; call it once, at exit.
func Setup(ctx context.Context, o Options) (shutdown func(), err error) {
	nothing := func() {}
	cfg, err := FromEnv(os.Getenv)
	if err != nil || !cfg.On {
		return nothing, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	// The SDK reports what goes wrong later (exports failing, a sampler
	// it cannot parse) through the global handler: into our log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nothing, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := newResource(ctx, o)
	if err != nil {
		log.Warn("tracing: resource attributes", "err", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	restore := Install(tp)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	log.Info("tracing on", "endpoint", redactURL(cfg.Endpoint), "sampler", cfg.Sampler, "sampler_arg", cfg.SamplerArg)
	timeout := o.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return func() {
		restore()
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans not exported at exit", "err", err)
		}
	}, nil
}

// newResource: the program's defaults, overridden by OTEL_RESOURCE_ATTRIBUTES
// and OTEL_SERVICE_NAME (detectors merge in order, later ones win).
func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	if o.ServiceName != "" {
		attrs = append(attrs, attribute.String("service.name", o.ServiceName))
	}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	return resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
}

// redactURL drops credentials an endpoint URL may carry, for the log.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User("REDACTED")
	return u.String()
}
