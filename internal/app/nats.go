package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// NATSOptions says how a process reaches JetStream.
type NATSOptions struct {
	URL                    string // empty: embed a server (receiver) / use EmbeddedURL (worker)
	Creds, NKey            string
	TLSCert, TLSKey, TLSCA string
	Listen                 string // embedded server's listener for workers
	DataDir                string
	SyncAlways             bool // embedded server: fsync each write before acknowledging it
	StreamReplicas         int
	StreamMaxAge           time.Duration
	StreamMaxBytes         int64
	DuplicateWindow        time.Duration
	Partitions             int
}

// DefaultEmbeddedListen is where the embedded server listens for workers, and
// where a worker without -nats-url looks for it.
const DefaultEmbeddedListen = "127.0.0.1:4222"

// Register adds the NATS flags to fs.
func (o *NATSOptions) Register(fs *flag.FlagSet, embedded bool) {
	fs.StringVar(&o.URL, "nats-url", "", "comma-separated NATS server `URLs` of an existing cluster (nats://a:4222,nats://b:4222)"+
		map[bool]string{true: "; empty embeds a NATS server", false: "; empty means the receiver's embedded server at nats://" + DefaultEmbeddedListen}[embedded])
	fs.StringVar(&o.Creds, "nats-creds", "", "NATS credentials `file` (JWT + NKey seed)")
	fs.StringVar(&o.NKey, "nats-nkey", "", "NATS NKey user seed `file`")
	fs.StringVar(&o.TLSCert, "nats-tls-cert", "", "client certificate `file` for NATS mutual TLS")
	fs.StringVar(&o.TLSKey, "nats-tls-key", "", "client key `file` for NATS mutual TLS")
	fs.StringVar(&o.TLSCA, "nats-tls-ca", "", "CA bundle `file` that signs the NATS servers' certificates")
	fs.IntVar(&o.StreamReplicas, "stream-replicas", 1, "replicas of the events stream (3 on a 3-node cluster)")
	fs.DurationVar(&o.StreamMaxAge, "stream-max-age", events.DefaultMaxAge, "how long events are kept for replay")
	fs.Int64Var(&o.StreamMaxBytes, "stream-max-bytes", events.DefaultMaxBytes, "size cap of the events stream in bytes; oldest go first")
	fs.DurationVar(&o.DuplicateWindow, "duplicate-window", events.DefaultDuplicateWindow, "a callback repeated within this window is stored once")
	fs.IntVar(&o.Partitions, "partitions", events.DefaultPartitions, "ordering partitions of the events stream (keep it fixed for a stream's life)")
	if embedded {
		fs.StringVar(&o.Listen, "nats-listen", DefaultEmbeddedListen, "host:port where the embedded NATS server accepts workers (keep it on loopback); empty for none")
		fs.StringVar(&o.DataDir, "data-dir", "data", "directory for the embedded NATS server's JetStream files")
		fs.BoolVar(&o.SyncAlways, "nats-sync-always", true, "embedded NATS fsyncs every event before the receiver answers 2xx, so an accepted event survives a power loss (false: NATS's default, fsync every 2 minutes; about 3× the ingest rate)")
	}
}

// Stream returns the stream configuration from the flags.
func (o *NATSOptions) Stream() events.StreamConfig {
	return events.StreamConfig{
		Replicas: o.StreamReplicas, MaxAge: o.StreamMaxAge, MaxBytes: o.StreamMaxBytes,
		DuplicateWindow: o.DuplicateWindow, Partitions: o.Partitions,
	}.WithDefaults()
}

// Backbone is an open NATS connection with JetStream and the events stream.
type Backbone struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Stream   events.StreamConfig
	Embedded *events.Embedded // nil when connected to a cluster
}

// Close closes the connection and stops the embedded server, if any.
func (b *Backbone) Close() {
	if b.NC != nil {
		_ = b.NC.Drain()
	}
	if b.Embedded != nil {
		b.Embedded.Shutdown()
	}
}

// Ready reports whether NATS is connected and the stream exists.
func (b *Backbone) Ready(ctx context.Context) error {
	if !b.NC.IsConnected() {
		return fmt.Errorf("nats: %s", b.NC.Status())
	}
	if _, err := b.JS.Stream(ctx, b.Stream.Name); err != nil {
		return fmt.Errorf("stream %s: %w", b.Stream.Name, err)
	}
	return nil
}

// OpenBackbone connects to the cluster in o.URL, or embeds a server when
// embed is true and o.URL is empty; then ensures the events stream.
func OpenBackbone(ctx context.Context, o NATSOptions, name string, embed bool, log *slog.Logger) (*Backbone, error) {
	b := &Backbone{Stream: o.Stream()}
	var err error
	switch {
	case o.URL == "" && embed:
		b.Embedded, err = events.StartEmbedded(events.EmbeddedConfig{DataDir: o.DataDir, Listen: o.Listen, Logger: log, SyncAlways: o.SyncAlways})
		if err != nil {
			return nil, err
		}
		b.NC, err = b.Embedded.Connect(nats.Name(name))
		if err != nil {
			b.Embedded.Shutdown()
			return nil, err
		}
		log.Info("embedded NATS started", "data_dir", o.DataDir, "listen", b.Embedded.ClientURL(), "sync_always", b.Embedded.SyncAlways())
	default:
		url := o.URL
		if url == "" {
			url = "nats://" + DefaultEmbeddedListen
		}
		b.NC, err = events.Connect(events.ConnectConfig{URLs: url, Name: name, CredsFile: o.Creds, NKeySeedFile: o.NKey,
			TLSCert: o.TLSCert, TLSKey: o.TLSKey, TLSCA: o.TLSCA, Logger: log})
		if err != nil {
			return nil, err
		}
	}
	b.JS, err = jetstream.New(b.NC)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := events.EnsureStream(sctx, b.JS, b.Stream); err != nil {
		connected := b.NC.IsConnected()
		b.Close()
		if !connected {
			return nil, fmt.Errorf("cannot reach NATS (%s): check -nats-url and that the server runs with JetStream: %w", name, err)
		}
		return nil, err
	}
	return b, nil
}
