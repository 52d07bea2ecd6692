package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Default admin listeners: loopback, so metrics (and the console) are never
// on a public port by accident. Bind them elsewhere on purpose, for a
// Prometheus on another host (-admin-addr :9091), behind a firewall.
const (
	DefaultReceiverAdminAddr = "127.0.0.1:9091"
	DefaultWorkerAdminAddr   = "127.0.0.1:9090"
)

// adminServer is a process's admin listener: /healthz, /readyz, /metrics,
// and whatever else is mounted on mux before it starts.
type adminServer struct {
	mux  *http.ServeMux
	srv  *http.Server
	addr string
}

// newAdmin prepares the admin listener; ready answers /readyz.
func newAdmin(reg *prometheus.Registry, ready func(ctx context.Context) error) *adminServer {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"error\":%q}\n", err.Error())
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Profiles of the running process, for "why is it slow" (go tool pprof
	// http://127.0.0.1:9090/debug/pprof/profile). The admin listener is
	// loopback by default; it shows code paths, never event data.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return &adminServer{mux: mux}
}

// start listens on addr (empty: no listener) and serves until stop.
func (a *adminServer) start(addr string, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	a.addr = l.Addr().String()
	a.srv = &http.Server{Handler: a.mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "err", err)
		}
	}()
	log.Info("admin endpoints (metrics, health)", "addr", a.addr)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(ctx)
	}, nil
}
