package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
)

// Publisher stores events durably; *events.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, envs []*events.Envelope) ([]events.PublishResult, error)
}

var _ Publisher = (*events.Publisher)(nil)

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// Publisher stores events. Required.
	Publisher Publisher
	// Ready reports whether NATS is connected and the stream exists; nil
	// means always ready. Used by GET /readyz.
	Ready func(ctx context.Context) error
	// CRMTokens verifies CRM notification tokens. Required for
	// /zoho/crm/notify; with none configured every notification gets 401.
	CRMTokens ChannelTokenVerifier
	// Connection names the Zoho connection events are attributed to.
	// Default "default".
	Connection string
	// BodyLimit caps a callback body in bytes; larger ones get 413.
	// Default 1 MiB.
	BodyLimit int64
	// MaxIDsPerNotification bounds how many records one CRM notification may
	// name. Default 1000.
	MaxIDsPerNotification int
	// CRMWorkflowHooks and BooksHooks by name (the URL's last segment).
	CRMWorkflowHooks map[string]HookConfig
	BooksHooks       map[string]HookConfig
	// Logger; default discards.
	Logger *slog.Logger
	// Registry receives the receiver's metrics; default a new registry.
	Registry *prometheus.Registry
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Server is the receiver's HTTP server.
type Server struct {
	cfg      Config
	echo     *echo.Echo
	validate *validator.Validate
	metrics  *metrics
	log      *slog.Logger
	http     *http.Server
	// secrets are the configured secrets no stored event may carry.
	secrets secretList
}

// New builds a Server; call Serve or use Handler.
func New(cfg Config) (*Server, error) {
	if cfg.Publisher == nil {
		return nil, errors.New("receiver: Config.Publisher is required")
	}
	if cfg.Connection == "" {
		cfg.Connection = "default"
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.MaxIDsPerNotification <= 0 {
		cfg.MaxIDsPerNotification = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CRMTokens == nil {
		cfg.CRMTokens = NewStaticTokens(nil)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registry), secrets: newSecretList(cfg)}
	var err error
	if s.validate, err = newValidator(); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.trace) // tracing.go; first, so its span sees the final status
	e.Use(s.observe)
	e.POST("/zoho/crm/notify", s.crmNotify)
	e.POST("/zoho/crm/workflow/:name", s.crmWorkflow)
	e.POST("/zoho/books/:name", s.books)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	// No /metrics here: operational endpoints live on the admin listener
	// (see internal/app), never on the public callback port.
	s.echo = e
	// Made here, not in Serve: a Shutdown that comes first (a signal right
	// at start) then makes Serve return at once instead of being a no-op.
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	return s, nil
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for in-flight requests (and
// so their publishes) to finish, or for ctx to end. Serve called after
// Shutdown returns at once.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

func (s *Server) readyz(c echo.Context) error {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			return c.JSON(http.StatusServiceUnavailable, ErrorBody{Error: "not ready: " + err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// observe records request counts and latency by route pattern (never by raw
// path, which would explode label cardinality).
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		return nil
	}
}

// errorHandler answers every error, including echo's own 404/405, with a
// JSON ErrorBody.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := http.StatusInternalServerError, ErrorBody{Error: "internal error"}
	var re *RequestError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &re):
		status, body = re.Status, re.Body
		// An operator must see why Zoho's callbacks bounce. Error bodies
		// name fields, never their values or secrets (fuzz-tested).
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		fields := make([]string, len(body.Fields))
		for i, f := range body.Fields {
			fields[i] = f.Field
		}
		s.log.Log(c.Request().Context(), level, "callback refused", "route", c.Path(), "status", status,
			"error", body.Error, "fields", fields, "remote", c.RealIP())
	case errors.As(err, &he):
		status, body = he.Code, ErrorBody{Error: fmt.Sprint(he.Message)}
	default:
		s.log.Error("request failed", "route", c.Path(), "err", err)
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		body = ErrorBody{Error: "internal error"}
	}
	if err := c.JSON(status, body); err != nil {
		s.log.Debug("writing error answer", "err", err)
	}
}
