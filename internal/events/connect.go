package events

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectConfig describes how to reach an existing NATS cluster.
type ConnectConfig struct {
	// URLs: comma-separated nats:// or tls:// URLs of the cluster's servers.
	URLs string
	// Name shows in the server's connection list (e.g. "zohook-receiver").
	Name string
	// CredsFile: a NATS .creds file (JWT + NKey seed). Optional.
	CredsFile string
	// NKeySeedFile: a file holding an NKey user seed. Optional.
	NKeySeedFile string
	// TLSCert, TLSKey: client certificate for mutual TLS. Optional.
	TLSCert, TLSKey string
	// TLSCA: CA bundle that signs the servers' certificates. Optional.
	TLSCA string
	// Logger receives connection state changes; nil discards them.
	Logger *slog.Logger
	// FailFast: fail when no server answers within Timeout, instead of
	// retrying in the background (operator commands; long-running
	// processes wait for NATS).
	FailFast bool
	// Timeout bounds one connection attempt. Default 2s (nats.go's).
	Timeout time.Duration
}

// Connect dials the cluster. It reconnects forever after a disconnect: the
// receiver answers 503 while NATS is away and recovers by itself.
func Connect(cfg ConnectConfig) (*nats.Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		// Keep publishing callers from blocking on a dead connection: a
		// publish during a disconnect fails fast and is retried by Publisher.
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(!cfg.FailFast),
		// Our own Close (or Drain) is not news: no "disconnected" warning
		// for it at every shutdown.
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.Timeout > 0 {
		opts = append(opts, nats.Timeout(cfg.Timeout))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("events: nkey seed file: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	nc, err := nats.Connect(cfg.URLs, opts...)
	if err != nil {
		// nats.go's errors do not include credentials, but the URL may carry
		// user:password; report only that the connect failed.
		return nil, fmt.Errorf("events: connect to nats: %w", err)
	}
	return nc, nil
}
