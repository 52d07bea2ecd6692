package reconcile

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/zoho"
)

// CRM is the part of the Zoho CRM client the job uses.
type CRM interface {
	Records(ctx context.Context, module string, opts *zoho.ListOptions) iter.Seq2[zoho.Record, error]
	GetRecord(ctx context.Context, module, id string, opts *zoho.GetOptions) (zoho.Record, *zoho.Response, error)
	Raw(ctx context.Context, rr *zoho.RawRequest) (*zoho.RawResponse, *zoho.Response, error)
	DeletedRecords(ctx context.Context, module string, opts *zoho.DeletedListOptions) iter.Seq2[zoho.DeletedRecord, error]
}

var _ CRM = (*zoho.CRMService)(nil)

// Publisher stores events; *events.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, envs []*events.Envelope) ([]events.PublishResult, error)
}

var _ Publisher = (*events.Publisher)(nil)

// ChannelID marks reconciled events: they are published with Source
// crm.notify (so the rules that react to notifications fire) and this
// channel id, which no Zoho channel uses (channel ids are numbers).
const ChannelID = events.ReconcileChannelID

// DefaultStateBucket holds the jobs' cursors.
const DefaultStateBucket = "zohook_reconcile"

// Defaults.
const (
	DefaultInterval = 15 * time.Minute
	DefaultOverlap  = time.Minute
	DefaultSettle   = 2 * time.Minute
	DefaultLookback = 24 * time.Hour
	batchSize       = 200
)

// Config configures a Job: one per connection, for some modules.
type Config struct {
	// Connection is the Zoho connection name ("" = default).
	Connection string
	// Modules are the CRM modules to reconcile (API names): their changed
	// records and their deletions. May be empty when only WebhookFailures is
	// wanted.
	Modules []string
	// SkipDeletions leaves deletions out (e.g. when the Zoho user may not
	// read deleted records: NO_PERMISSION would fail every run).
	SkipDeletions bool
	// Interval between runs in Run (default 15 min).
	Interval time.Duration
	// Overlap re-reads this much before the cursor: Zoho's Modified_Time has
	// one-second resolution and If-Modified-Since is strict, so a change in
	// the cursor's second would otherwise be missed (default 1 min).
	Overlap time.Duration
	// Settle leaves changes younger than this to the notifications, which
	// normally arrive within seconds (default 2 min).
	Settle time.Duration
	// Lookback is where a module without a cursor starts (default 24 h).
	Lookback time.Duration
	// WebhookFailures also replays Zoho's workflow-webhook failure log
	// (UNCONFIRMED endpoint, API.md §6).
	WebhookFailures bool
	// StateBucket for cursors (default DefaultStateBucket); Replicas if created.
	StateBucket string
	Replicas    int
	Clock       func() time.Time
	Logger      *slog.Logger
	// Registerer exports the job's metrics (nil = none). Use one Registerer
	// per Job or share Metrics via NewMetrics.
	Metrics *Metrics
	// KV bounds and reports the cursor bucket's calls (events.BoundKV); its
	// Logger defaults to Logger.
	KV events.KVOptions
}

// Metrics of the reconciliation jobs of a process.
type Metrics struct {
	published *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	lastRun   *prometheus.GaugeVec
}

// NewMetrics registers the reconciliation metrics on reg (nil = not exported).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zohook_reconcile_published_total",
			Help: "Changes the reconciliation found that no webhook had delivered, by kind (record, deletion, webhook_failure)."}, []string{"connection", "module", "kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zohook_reconcile_already_seen_total",
			Help: "Changes (record changes and deletions) the reconciliation found already received."}, []string{"connection", "module"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zohook_reconcile_last_success_timestamp_seconds",
			Help: "When a reconciliation run last completed without error (Unix seconds)."}, []string{"connection"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.published, m.skipped, m.lastRun} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("reconcile: metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Job finds changes the webhooks did not deliver and publishes them.
type Job struct {
	crm   CRM
	pub   Publisher
	seen  *Seen
	state jetstream.KeyValue
	cfg   Config
	log   *slog.Logger
}

// NewJob checks cfg and opens the state bucket.
func NewJob(ctx context.Context, js jetstream.JetStream, crm CRM, pub Publisher, seen *Seen, cfg Config) (*Job, error) {
	if crm == nil || pub == nil || seen == nil || js == nil {
		return nil, errors.New("reconcile: CRM client, publisher, seen store and JetStream are required")
	}
	if len(cfg.Modules) == 0 && !cfg.WebhookFailures {
		return nil, errors.New("reconcile: no module and no webhook failures: nothing to do")
	}
	for _, m := range cfg.Modules {
		if strings.TrimSpace(m) == "" || strings.ContainsAny(m, "/?#. ") {
			return nil, fmt.Errorf("reconcile: invalid module name %q", m)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Interval, DefaultInterval)
	def(&cfg.Overlap, DefaultOverlap)
	def(&cfg.Settle, DefaultSettle)
	def(&cfg.Lookback, DefaultLookback)
	if cfg.StateBucket == "" {
		cfg.StateBucket = DefaultStateBucket
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	kv, err := openKV(ctx, js, jetstream.KeyValueConfig{Bucket: cfg.StateBucket, History: 1, Replicas: max(cfg.Replicas, 1),
		Storage: jetstream.FileStorage, Description: "zohook reconciliation cursors"}, cfg.KV.LoggingTo(cfg.Logger))
	if err != nil {
		return nil, err
	}
	return &Job{crm: crm, pub: pub, seen: seen, state: kv, cfg: cfg, log: cfg.Logger.With("connection", connLabel(cfg.Connection))}, nil
}

func connLabel(c string) string {
	if c == "" {
		return "default"
	}
	return c
}

// Stats says what a run did.
type Stats struct {
	Scanned     int // records and deletions listed
	Published   int // record change events JetStream stored now
	Deletions   int // delete events JetStream stored now
	Duplicates  int // events JetStream already had (same message id)
	AlreadySeen int // changes and deletions skipped because they were received
	Failures    int // webhook failures republished
}

func (s *Stats) add(o Stats) {
	s.Scanned += o.Scanned
	s.Published += o.Published
	s.Deletions += o.Deletions
	s.Duplicates += o.Duplicates
	s.AlreadySeen += o.AlreadySeen
	s.Failures += o.Failures
}

// RunOnce reconciles every module (changes, then deletions), then the
// webhook failure log. A module's error does not stop the others; the error
// joins them.
func (j *Job) RunOnce(ctx context.Context) (Stats, error) {
	var total Stats
	var errs []error
	for _, m := range j.cfg.Modules {
		st, err := j.module(ctx, m)
		total.add(st)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", m, err))
		}
		if j.cfg.SkipDeletions {
			continue
		}
		st, err = j.deletions(ctx, m)
		total.add(st)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s deletions: %w", m, err))
		}
	}
	if j.cfg.WebhookFailures {
		st, err := j.failures(ctx)
		total.add(st)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile webhook failures: %w", err))
		}
	}
	if len(errs) == 0 {
		j.cfg.Metrics.lastRun.WithLabelValues(connLabel(j.cfg.Connection)).Set(float64(j.cfg.Clock().Unix()))
	}
	return total, errors.Join(errs...)
}

func (j *Job) cursorKey(kind string) string {
	return kind + "." + events.Token(connLabel(j.cfg.Connection))
}

// Cursor returns the stored cursor of a module (zero when none).
func (j *Job) Cursor(ctx context.Context, module string) (time.Time, error) {
	return j.loadCursor(ctx, j.cursorKey("cursor")+"."+events.Token(module))
}

func (j *Job) loadCursor(ctx context.Context, key string) (time.Time, error) {
	e, err := j.state.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("cursor %s: %w", key, err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return time.Time{}, nil // unreadable: start over from the lookback
	}
	return t, nil
}

func (j *Job) saveCursor(ctx context.Context, key string, t time.Time) error {
	if _, err := j.state.Put(ctx, key, []byte(t.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("cursor %s: %w", key, err)
	}
	return nil
}

// pending is a change to publish, with what MarkSeen needs afterwards.
type pending struct {
	env      *events.Envelope
	module   string
	id       string
	modified time.Time
	// deletion: also remember the deletion (deletedSeenModule).
	deletion bool
}

// module walks the records modified since the cursor (minus Overlap), oldest
// first, across every page, and publishes the changes not seen yet.
func (j *Job) module(ctx context.Context, module string) (Stats, error) {
	var st Stats
	key := j.cursorKey("cursor") + "." + events.Token(module)
	cursor, err := j.loadCursor(ctx, key)
	if err != nil {
		return st, err
	}
	now := j.cfg.Clock()
	if cursor.IsZero() {
		cursor = now.Add(-j.cfg.Lookback)
	}
	upper := now.Add(-j.cfg.Settle)
	opts := &zoho.ListOptions{Fields: []string{"id", "Created_Time", "Modified_Time"}, SortBy: "Modified_Time", SortOrder: "asc",
		PerPage: 200, ModifiedSince: cursor.Add(-j.cfg.Overlap).Truncate(time.Second)}
	var batch []pending
	newCursor := cursor
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ps, err := j.publish(ctx, batch)
		st.Published += ps.Published
		st.Duplicates += ps.Duplicates
		if err != nil {
			return err
		}
		batch = batch[:0]
		// Everything up to newCursor is published or seen: a crash after this
		// point resumes from here instead of the start.
		return j.saveCursor(ctx, key, newCursor)
	}
	for rec, err := range j.crm.Records(ctx, module, opts) {
		if err != nil {
			return st, err
		}
		id := str(rec["id"])
		mt, err := time.Parse(time.RFC3339, str(rec["Modified_Time"]))
		if id == "" || err != nil {
			j.log.Warn("reconcile: record without id or Modified_Time skipped", "module", module, "id", id)
			continue
		}
		if mt.After(upper) {
			break // sorted ascending: the rest is too recent, left for the notifications
		}
		st.Scanned++
		seenAt, ok, err := j.seen.Get(ctx, j.cfg.Connection, module, id)
		if err != nil {
			return st, err
		}
		if ok && !mt.After(seenAt) {
			st.AlreadySeen++
			j.cfg.Metrics.skipped.WithLabelValues(connLabel(j.cfg.Connection), module).Inc()
		} else {
			batch = append(batch, pending{env: j.recordEnvelope(module, rec, id, mt, now), module: module, id: id, modified: mt})
		}
		if mt.After(newCursor) {
			newCursor = mt
		}
		if len(batch) >= batchSize {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if newCursor.After(cursor) {
		return st, j.saveCursor(ctx, key, newCursor)
	}
	return st, nil
}

func (j *Job) recordEnvelope(module string, rec zoho.Record, id string, mt, now time.Time) *events.Envelope {
	op := events.OpUpdate
	if str(rec["Created_Time"]) == str(rec["Modified_Time"]) {
		op = events.OpCreate
	}
	conn := j.cfg.Connection
	return &events.Envelope{
		Version: events.EnvelopeVersion,
		// Same change → same id, whichever worker or run finds it: JetStream
		// de-duplicates a republish within its window, Seen beyond it.
		ID:         events.DeriveID(string(events.SourceReconcile), conn, module, id, mt.UTC().Format(time.RFC3339)),
		Source:     events.SourceCRMNotify,
		Connection: conn,
		Module:     module,
		Operation:  op,
		RecordID:   id,
		Values:     map[string]any{"Modified_Time": str(rec["Modified_Time"])},
		ChannelID:  ChannelID,
		ServerTime: mt.UnixMilli(),
		ReceivedAt: now.UTC(),
	}
}

// publish stores a batch and marks each stored change seen.
func (j *Job) publish(ctx context.Context, batch []pending) (Stats, error) {
	var st Stats
	envs := make([]*events.Envelope, len(batch))
	for i, p := range batch {
		envs[i] = p.env
	}
	res, err := j.pub.Publish(ctx, envs)
	if err != nil {
		return st, fmt.Errorf("publish: %w", err)
	}
	for i, p := range batch {
		if res[i].Duplicate {
			st.Duplicates++
		} else {
			st.Published++
			kind := "record"
			switch {
			case p.env.Source == events.SourceCRMWorkflow:
				kind = "webhook_failure"
			case p.deletion:
				kind = "deletion"
			}
			j.cfg.Metrics.published.WithLabelValues(connLabel(j.cfg.Connection), p.module, kind).Inc()
		}
		if err := j.seen.MarkSeen(ctx, j.cfg.Connection, p.module, p.id, p.modified); err != nil {
			return st, err
		}
		if p.deletion {
			if err := j.seen.MarkSeen(ctx, j.cfg.Connection, deletedSeenModule(p.module), p.id, p.modified); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// Run reconciles every Interval while holding lease, so one worker of the
// fleet does it at a time. It returns when ctx ends.
func (j *Job) Run(ctx context.Context, lease *fleet.Lease) error {
	for ctx.Err() == nil {
		err := lease.Hold(ctx, func(hctx context.Context) {
			t := time.NewTimer(0)
			defer t.Stop()
			for {
				select {
				case <-hctx.Done():
					return
				case <-t.C:
				}
				st, err := j.RunOnce(hctx)
				switch {
				case err != nil && hctx.Err() == nil:
					j.log.Warn("reconcile: run failed; retrying next interval", "err", err, "interval", j.cfg.Interval)
				case st.Published+st.Deletions+st.Failures > 0:
					j.log.Warn("reconcile: found changes no webhook delivered", "published", st.Published, "deletions", st.Deletions,
						"webhook_failures", st.Failures, "scanned", st.Scanned, "already_seen", st.AlreadySeen)
				default:
					j.log.Debug("reconcile: nothing missed", "scanned", st.Scanned, "already_seen", st.AlreadySeen)
				}
				t.Reset(j.cfg.Interval)
			}
		})
		if err != nil && !errors.Is(err, fleet.ErrLeaseLost) && ctx.Err() == nil {
			return fmt.Errorf("reconcile: lease: %w", err)
		}
	}
	return nil
}

// failures replays the workflow-webhook failure log since its cursor.
func (j *Job) failures(ctx context.Context) (Stats, error) {
	var st Stats
	key := j.cursorKey("failures")
	cursor, err := j.loadCursor(ctx, key)
	if err != nil {
		return st, err
	}
	now := j.cfg.Clock()
	if cursor.IsZero() {
		cursor = now.Add(-j.cfg.Lookback)
	}
	newCursor := cursor
	var batch []pending
	for page := 1; ; page++ {
		q := url.Values{"from": {cursor.Add(-j.cfg.Overlap).Truncate(time.Second).Format(time.RFC3339)},
			"to": {now.Truncate(time.Second).Format(time.RFC3339)}, "page": {strconv.Itoa(page)}, "per_page": {"200"}}
		rr, _, err := j.crm.Raw(ctx, &zoho.RawRequest{Method: "GET", Path: "settings/automation/webhook_failures", Query: q})
		if err != nil {
			return st, err
		}
		if rr.Status == 204 {
			break
		}
		body, _ := rr.Body.(map[string]any)
		items, _ := body["webhook_failures"].([]any)
		for _, it := range items {
			f, _ := it.(map[string]any)
			p, at, ok, err := j.failureEvent(ctx, f, now)
			if err != nil {
				return st, err
			}
			if at.After(newCursor) {
				newCursor = at
			}
			if ok {
				batch = append(batch, p)
			}
		}
		info, _ := body["info"].(map[string]any)
		if more, _ := info["more_records"].(bool); !more || len(items) == 0 {
			break
		}
	}
	if len(batch) > 0 {
		ps, err := j.publish(ctx, batch)
		st.Failures += ps.Published
		st.Duplicates += ps.Duplicates
		if err != nil {
			return st, err
		}
	}
	if newCursor.After(cursor) {
		return st, j.saveCursor(ctx, key, newCursor)
	}
	return st, nil
}

// failureEvent turns a failure log entry into a crm.workflow event for the
// webhook it failed to deliver. The original body (an admin's template) is
// not in the log, so Values carry the record as it is now.
func (j *Job) failureEvent(ctx context.Context, f map[string]any, now time.Time) (pending, time.Time, bool, error) {
	fid := str(f["id"])
	at, _ := time.Parse(time.RFC3339, str(f["failed_time"]))
	mod, _ := f["module"].(map[string]any)
	module := str(mod["api_name"])
	rid := str(f["record_id"])
	if fid == "" || module == "" || rid == "" {
		return pending{}, at, false, nil
	}
	// Replayed once: the seen store remembers the failure id as a pseudo record.
	seenModule := "webhook_failure"
	if _, ok, err := j.seen.Get(ctx, j.cfg.Connection, seenModule, fid); err != nil || ok {
		return pending{}, at, false, err
	}
	wh, _ := f["webhook"].(map[string]any)
	hook := hookName(str(f["url"]), str(wh["name"]))
	values := map[string]any{"id": rid}
	rec, _, err := j.crm.GetRecord(ctx, module, rid, nil)
	switch {
	case err == nil && rec != nil:
		values = rec
	case err != nil:
		var ze *zoho.Error
		if !errors.As(err, &ze) {
			return pending{}, at, false, fmt.Errorf("read %s/%s: %w", module, rid, err)
		}
	}
	env := &events.Envelope{
		Version:    events.EnvelopeVersion,
		ID:         events.DeriveID("crm.workflow.failure", j.cfg.Connection, fid, str(f["failed_time"])),
		Source:     events.SourceCRMWorkflow,
		Connection: j.cfg.Connection,
		Module:     module,
		Operation:  events.OpUpdate,
		RecordID:   rid,
		Values:     values,
		Hook:       hook,
		ReceivedAt: now.UTC(),
	}
	return pending{env: env, module: seenModule, id: fid, modified: at}, at, true, nil
}

// hookName is the receiver's hook name when the failed URL is zohook's
// /zoho/crm/workflow/{name}, else Zoho's webhook name.
func hookName(rawURL, zohoName string) string {
	const marker = "/zoho/crm/workflow/"
	if u, err := url.Parse(rawURL); err == nil {
		if i := strings.Index(u.Path, marker); i >= 0 {
			if name, _, _ := strings.Cut(u.Path[i+len(marker):], "/"); name != "" {
				return name
			}
		}
	}
	return zohoName
}
