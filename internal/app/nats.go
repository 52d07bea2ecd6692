package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// NATSOptions says how a process reaches NATS: an existing cluster, or (the
// receiver) an embedded server.
type NATSOptions struct {
	URL                    string // empty: embed a server (receiver) / the receiver's embedded server (others)
	Creds, NKey            string
	TLSCert, TLSKey, TLSCA string
	Listen                 string // embedded server's listener for workers
	DataDir                string
	SyncAlways             bool // embedded server: fsync each write before acknowledging it
	// FailFast: an operator command fails within seconds when NATS cannot
	// be reached, instead of waiting for it like a long-running process.
	FailFast bool
}

// DefaultEmbeddedListen is where the embedded server listens for workers, and
// where a worker without -nats-url looks for it.
const DefaultEmbeddedListen = "127.0.0.1:4222"

// Register adds the NATS connection flags to fs. embedded adds the embedded
// server's flags (the receiver).
func (o *NATSOptions) Register(fs *flag.FlagSet, embedded bool) {
	fs.StringVar(&o.URL, "nats-url", "", "comma-separated NATS server `URLs` of an existing cluster (nats://a:4222,nats://b:4222)"+
		map[bool]string{true: "; empty embeds a NATS server", false: "; empty means the receiver's embedded server at nats://" + DefaultEmbeddedListen}[embedded])
	fs.StringVar(&o.Creds, "nats-creds", "", "NATS credentials `file` (JWT + NKey seed)")
	fs.StringVar(&o.NKey, "nats-nkey", "", "NATS NKey user seed `file`"+
		map[bool]string{true: "", false: "; empty with an embedded server: the seed the receiver wrote under -data-dir"}[embedded])
	fs.StringVar(&o.TLSCert, "nats-tls-cert", "", "client certificate `file` for NATS mutual TLS")
	fs.StringVar(&o.TLSKey, "nats-tls-key", "", "client key `file` for NATS mutual TLS")
	fs.StringVar(&o.TLSCA, "nats-tls-ca", "", "CA bundle `file` that signs the NATS servers' certificates")
	fs.StringVar(&o.DataDir, "data-dir", "data", map[bool]string{
		true:  "`directory` for the embedded NATS server's JetStream files and the NATS credentials it creates",
		false: "the receiver's -data-dir (`directory`), where a process on the same machine finds the embedded server's NATS credentials"}[embedded])
	if embedded {
		fs.StringVar(&o.Listen, "nats-listen", DefaultEmbeddedListen, "host:port where the embedded NATS server accepts workers (they need the credentials under -data-dir); empty for none")
		fs.BoolVar(&o.SyncAlways, "nats-sync-always", true, "embedded NATS fsyncs every event before the receiver answers 2xx, so an accepted event survives a power loss (false: NATS's default, fsync every 2 minutes; about 3× the ingest rate)")
	}
}

// LayoutOptions are the settings of the NATS layout (streams, consumers,
// buckets). Only its owner takes them: the receiver, which creates what is
// missing at its first start, and `worker setup`, which changes them.
type LayoutOptions struct {
	StreamReplicas  int
	Partitions      int
	WorkMaxBytes    int64
	HistoryMaxAge   time.Duration
	HistoryMaxBytes int64
	DuplicateWindow time.Duration
	AckWait         time.Duration
	PinnedTTL       time.Duration
}

// Register adds the layout flags to fs.
func (o *LayoutOptions) Register(fs *flag.FlagSet) {
	fs.IntVar(&o.StreamReplicas, "stream-replicas", 1, "replicas of every stream and bucket (3 on a 3-node cluster)")
	fs.IntVar(&o.Partitions, "partitions", events.DefaultPartitions, "ordering partitions of the work stream (fixed for the layout's life)")
	fs.Int64Var(&o.WorkMaxBytes, "work-max-bytes", events.DefaultWorkMaxBytes, "size cap in bytes of the events waiting to be handled; when reached the receiver answers 503 and Zoho retries later (nothing accepted is dropped)")
	fs.DurationVar(&o.HistoryMaxAge, "history-max-age", events.DefaultMaxAge, "how long the history stream keeps events for replay and inspection")
	fs.Int64Var(&o.HistoryMaxBytes, "history-max-bytes", events.DefaultMaxBytes, "size cap in bytes of the history stream; the oldest events go first")
	fs.DurationVar(&o.DuplicateWindow, "duplicate-window", events.DefaultDuplicateWindow, "a callback repeated within this window is stored once")
	fs.DurationVar(&o.AckWait, "ack-wait", events.DefaultAckWait, "redelivery timeout of an unacknowledged event (workers keep running events alive)")
	fs.DurationVar(&o.PinnedTTL, "pinned-ttl", events.DefaultPinnedTTL, "backstop: how long NATS lets a silent worker keep a partition (workers hand partitions over sooner)")
}

// withDefaults gives options built in code without any layout setting the
// flags' defaults. Parsed flags are left as they are: a 0 typed on the
// command line is refused by Validate, not silently replaced.
func (o LayoutOptions) withDefaults() LayoutOptions {
	if o != (LayoutOptions{}) {
		return o
	}
	s := o.Stream()
	c := o.Consumer()
	return LayoutOptions{StreamReplicas: s.Replicas, Partitions: s.Partitions, WorkMaxBytes: s.WorkMaxBytes,
		HistoryMaxAge: s.HistoryMaxAge, HistoryMaxBytes: s.HistoryMaxBytes, DuplicateWindow: s.DuplicateWindow,
		AckWait: c.AckWait, PinnedTTL: c.PinnedTTL}
}

// Stream returns the stream configuration the flags ask for.
func (o *LayoutOptions) Stream() events.StreamConfig {
	return events.StreamConfig{
		Replicas: o.StreamReplicas, Partitions: o.Partitions, WorkMaxBytes: o.WorkMaxBytes,
		HistoryMaxAge: o.HistoryMaxAge, HistoryMaxBytes: o.HistoryMaxBytes, DuplicateWindow: o.DuplicateWindow,
	}.WithDefaults()
}

// Consumer returns the consumer configuration the flags ask for.
func (o *LayoutOptions) Consumer() events.ConsumerConfig {
	return events.ConsumerConfig{AckWait: o.AckWait, PinnedTTL: o.PinnedTTL}.WithDefaults()
}

// Validate refuses flag combinations NATS would refuse (or that make no
// sense), naming the flags, before anything connects.
func (o *LayoutOptions) Validate() error {
	var errs []error
	switch {
	case o.StreamReplicas < 1 || o.StreamReplicas > 5:
		errs = append(errs, fmt.Errorf("-stream-replicas %d: want 1 to 5 (3 on a 3-node cluster)", o.StreamReplicas))
	case o.StreamReplicas == 2 || o.StreamReplicas == 4:
		errs = append(errs, fmt.Errorf("-stream-replicas %d: use an odd number (1, 3 or 5); an even count adds no fault tolerance", o.StreamReplicas))
	}
	if o.Partitions < 1 || o.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("-partitions %d: want 1 to 1024", o.Partitions))
	}
	if o.WorkMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("-work-max-bytes %d: want at least 1 MiB (1048576)", o.WorkMaxBytes))
	}
	if o.HistoryMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("-history-max-bytes %d: want at least 1 MiB (1048576)", o.HistoryMaxBytes))
	}
	if o.HistoryMaxAge < time.Second {
		errs = append(errs, fmt.Errorf("-history-max-age %s: want at least 1s", events.FormatDuration(o.HistoryMaxAge)))
	}
	if o.DuplicateWindow < time.Second {
		errs = append(errs, fmt.Errorf("-duplicate-window %s: want at least 1s", events.FormatDuration(o.DuplicateWindow)))
	}
	if o.DuplicateWindow > o.HistoryMaxAge {
		errs = append(errs, fmt.Errorf("-duplicate-window %s is longer than -history-max-age %s: a duplicate could arrive after its original left the history; lower -duplicate-window or raise -history-max-age",
			events.FormatDuration(o.DuplicateWindow), events.FormatDuration(o.HistoryMaxAge)))
	}
	if o.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("-ack-wait %s: want at least 1s", events.FormatDuration(o.AckWait)))
	}
	if o.PinnedTTL < time.Second {
		errs = append(errs, fmt.Errorf("-pinned-ttl %s: want at least 1s", events.FormatDuration(o.PinnedTTL)))
	}
	return errors.Join(errs...)
}

// Backbone is an open NATS connection with JetStream and the layout it found.
type Backbone struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Stream   events.StreamConfig   // as stored in NATS (after EnsureLayout or AwaitLayout)
	Consumer events.ConsumerConfig // as stored in NATS
	Embedded *events.Embedded      // nil when connected to a cluster
	url      string                // for messages; no credentials
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

// Ready reports whether NATS is connected and the work stream exists.
func (b *Backbone) Ready(ctx context.Context) error {
	if !b.NC.IsConnected() {
		return fmt.Errorf("nats: %s", b.NC.Status())
	}
	if _, err := b.JS.Stream(ctx, b.Stream.Name); err != nil {
		return fmt.Errorf("stream %s: %w", b.Stream.Name, err)
	}
	return nil
}

// failFastTimeout bounds how long an operator command waits for NATS.
const failFastTimeout = 4 * time.Second

// OpenBackbone connects to the cluster in o.URL, or embeds a server when
// embed is true and o.URL is empty. It does not touch the layout: see
// EnsureLayout (the owner) and AwaitLayout (everyone else).
func OpenBackbone(ctx context.Context, o NATSOptions, name string, embed bool, log *slog.Logger) (*Backbone, error) {
	b := &Backbone{}
	var err error
	switch {
	case o.URL == "" && embed:
		b.Embedded, err = startEmbedded(o, log)
		if err != nil {
			return nil, err
		}
		b.NC, err = b.Embedded.Connect(nats.Name(name))
		if err != nil {
			b.Embedded.Shutdown()
			return nil, err
		}
		b.url = "embedded"
		log.Info("embedded NATS started", "data_dir", o.DataDir, "listen", b.Embedded.ClientURL(), "sync_always", b.Embedded.SyncAlways())
	default:
		url := o.URL
		if url == "" {
			url = "nats://" + DefaultEmbeddedListen
		}
		nkey := o.NKey
		if nkey == "" && o.Creds == "" {
			// A receiver's embedded server on this machine: use the seed it
			// wrote for this kind of process, when there is one.
			if f := events.EmbeddedSeedFile(o.DataDir, roleOf(name)); fileExists(f) {
				nkey = f
			}
		}
		b.url = events.RedactURL(url)
		cc := events.ConnectConfig{URLs: url, Name: name, CredsFile: o.Creds, NKeySeedFile: nkey,
			TLSCert: o.TLSCert, TLSKey: o.TLSKey, TLSCA: o.TLSCA, Logger: log, FailFast: true, Timeout: failFastTimeout}
		b.NC, err = events.Connect(cc)
		if err != nil && !o.FailFast && !isAuthError(err) {
			// A long-running process waits for NATS to come up; a refused
			// login, though, will not fix itself.
			log.Warn("NATS not reachable yet; waiting for it", "url", b.url, "err", err)
			cc.FailFast = false
			b.NC, err = events.Connect(cc)
		}
		if err != nil {
			hint := ""
			if isAuthError(err) && nkey == "" && o.Creds == "" {
				hint = " (the server requires credentials: give -nats-nkey or -nats-creds, or -data-dir of the receiver whose embedded server this is)"
			}
			return nil, fmt.Errorf("cannot reach NATS at %s: %w%s", b.url, err, hint)
		}
	}
	b.JS, err = jetstream.New(b.NC)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return b, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// isAuthError reports NATS refusing the credentials (or their absence).
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// roleOf maps a process name to its embedded-server credentials.
func roleOf(name string) events.Role {
	if name == "zohook-worker" {
		return events.RoleWorker
	}
	return events.RoleAdmin
}

func startEmbedded(o NATSOptions, log *slog.Logger) (*events.Embedded, error) {
	return events.StartEmbedded(events.EmbeddedConfig{DataDir: o.DataDir, Listen: o.Listen, Logger: log, SyncAlways: o.SyncAlways, Auth: true})
}
