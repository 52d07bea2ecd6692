package events

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures an in-process NATS server with JetStream.
type EmbeddedConfig struct {
	// DataDir keeps JetStream's files, so a restart loses nothing. Required.
	DataDir string
	// Listen is where other processes (workers) connect, host:port. Empty
	// means no TCP listener (in-process clients only). Port 0 picks a free
	// port. Bind it to loopback unless you also configure authentication.
	Listen string
	// ServerName; default "zohook-embedded".
	ServerName string
	// Logger receives the server's notices and errors; nil keeps it quiet.
	Logger *slog.Logger
	// SyncAlways makes JetStream fsync every write before acknowledging it,
	// so an acknowledged event survives a power loss or kernel crash, not
	// only a process crash. Default false: NATS's default, fsync every 2
	// minutes (on a cluster, replicas on other machines cover that window).
	SyncAlways bool
	// Auth requires every client to authenticate with the NKey of a Role;
	// the seeds are created under DataDir on first start (EmbeddedSeedFile)
	// and read on later ones. Anonymous clients are refused.
	Auth bool
}

// Embedded is a running in-process NATS server.
type Embedded struct {
	srv     *server.Server
	dataDir string
	auth    bool
}

// StartEmbedded starts a NATS server with JetStream and waits until it
// accepts connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("events: embedded nats: DataDir is required")
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		NoSigs:     true, // the host process owns signal handling
		MaxPayload: 8 << 20,
		SyncAlways: cfg.SyncAlways,
	}
	if opts.ServerName == "" {
		opts.ServerName = "zohook-embedded"
	}
	if cfg.Auth {
		users, err := embeddedUsers(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		opts.Nkeys = users
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("events: embedded nats listen %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("events: embedded nats listen %q: bad port", cfg.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: embedded nats: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(&slogAdapter{l: cfg.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("events: embedded nats did not become ready (data dir %s)", cfg.DataDir)
	}
	return &Embedded{srv: srv, dataDir: cfg.DataDir, auth: cfg.Auth}, nil
}

// SyncAlways reports whether the running server fsyncs every write (what
// the server applied, not what was asked).
func (e *Embedded) SyncAlways() bool {
	c := e.srv.JetStreamConfig()
	return c != nil && c.SyncAlways
}

// ClientURL is the nats:// URL other processes use; empty without a listener.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Connect opens an in-process connection (no TCP) to the embedded server,
// as RoleAdmin when the server requires authentication.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(e.srv), nats.Name("zohook-inprocess")}, opts...)
	if e.auth {
		o, err := nats.NkeyOptionFromSeed(EmbeddedSeedFile(e.dataDir, RoleAdmin))
		if err != nil {
			return nil, fmt.Errorf("events: embedded nats credentials: %w", err)
		}
		opts = append(opts, o)
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("events: connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has flushed its files.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Server exposes the underlying server for tests and advanced wiring.
func (e *Embedded) Server() *server.Server { return e.srv }

// slogAdapter routes nats-server's logger to slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "component", "nats")
}
func (a *slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn(fmt.Sprintf(format, v...), "component", "nats")
}
func (a *slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "component", "nats")
}
func (a *slogAdapter) Errorf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "component", "nats")
}
func (a *slogAdapter) Debugf(format string, v ...any) {}
func (a *slogAdapter) Tracef(format string, v ...any) {}
