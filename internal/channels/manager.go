package channels

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/zoho"
)

// CRM is the part of the Zoho CRM client the manager uses.
type CRM interface {
	EnableChannel(ctx context.Context, ch zoho.Channel) ([]zoho.RecordResult, *zoho.Response, error)
	UpdateChannel(ctx context.Context, ch zoho.Channel) ([]zoho.RecordResult, *zoho.Response, error)
	PatchChannel(ctx context.Context, ch zoho.Channel) ([]zoho.RecordResult, *zoho.Response, error)
	DisableEvents(ctx context.Context, channelID string, events []string) ([]zoho.RecordResult, *zoho.Response, error)
	DisableChannels(ctx context.Context, channelIDs []string) ([]zoho.RecordResult, *zoho.Response, error)
	ListChannels(ctx context.Context, opts *zoho.ChannelListOptions) ([]zoho.Channel, *zoho.Response, error)
}

var _ CRM = (*zoho.CRMService)(nil)

// Defaults. The expiry stays an hour short of Zoho's one-week maximum: a
// request even a second beyond it (clock skew) silently gets Zoho's 1 h
// default instead (API.md §5.1).
const (
	DefaultExpiry      = 7*24*time.Hour - time.Hour
	MaxExpiry          = 7 * 24 * time.Hour
	DefaultRenewMargin = 24 * time.Hour
	DefaultInterval    = time.Hour
	DefaultIDBase      = 7_000_000_000_000
	idSpace            = 1_000_000_000
)

// Config configures a Manager: one per Zoho connection.
type Config struct {
	// Connection is the Zoho connection name ("" = default).
	Connection string
	// NotifyURL is the receiver's public callback URL, e.g.
	// https://hooks.example.com/zoho/crm/notify. Required.
	NotifyURL string
	// Expiry requested for each channel (default DefaultExpiry, max MaxExpiry).
	Expiry time.Duration
	// RenewMargin: a channel expiring within it is renewed (default 1 day).
	RenewMargin time.Duration
	// Interval between syncs in Run (default 1 h; must be below RenewMargin).
	Interval time.Duration
	// IDBase is the lowest channel id used; ids are IDBase + a hash of
	// (connection, module) below 10^9. Channels Zoho lists in that range are
	// considered zohook's (default DefaultIDBase).
	IDBase uint64
	// OmitAffectedValues stops asking Zoho for the changed fields' values
	// (return_affected_field_values); rules' `changed:` then see no fields.
	OmitAffectedValues bool
	// NotifyOnRelatedAction: Zoho's default (true) also notifies when related
	// records change; zohook asks for false unless this is set.
	NotifyOnRelatedAction bool
	// Bucket for channel entries (default DefaultBucket); Replicas if it must be created.
	Bucket   string
	Replicas int
	// Clock (default time.Now) decides expiries and renewals.
	Clock func() time.Time
	// Logger (default slog.Default()); Metrics (default: unregistered).
	Logger  *slog.Logger
	Metrics *Metrics
	// KV bounds and reports the bucket's calls (events.BoundKV); its Logger
	// defaults to Logger.
	KV events.KVOptions
}

// Manager keeps the channels of one connection in line with what the rules need.
type Manager struct {
	crm CRM
	kv  jetstream.KeyValue
	cfg Config
	log *slog.Logger
	m   *Metrics

	// syncHook, when set (tests), is called at the start and end of each Sync.
	syncHook func(start bool)
}

// NewManager checks cfg and opens the channel bucket.
func NewManager(ctx context.Context, js jetstream.JetStream, crm CRM, cfg Config) (*Manager, error) {
	if cfg.NotifyURL == "" {
		return nil, errors.New("channels: NotifyURL is required")
	}
	if crm == nil || js == nil {
		return nil, errors.New("channels: CRM client and JetStream are required")
	}
	if cfg.Expiry == 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.Expiry < time.Minute || cfg.Expiry > MaxExpiry {
		return nil, fmt.Errorf("channels: expiry %s outside 1m..%s", cfg.Expiry, MaxExpiry)
	}
	if cfg.RenewMargin == 0 {
		cfg.RenewMargin = min(DefaultRenewMargin, cfg.Expiry/2)
	}
	if cfg.RenewMargin >= cfg.Expiry {
		return nil, fmt.Errorf("channels: renew margin %s must be below the expiry %s", cfg.RenewMargin, cfg.Expiry)
	}
	if cfg.Interval == 0 {
		cfg.Interval = min(DefaultInterval, cfg.RenewMargin/2)
	}
	if cfg.Interval >= cfg.RenewMargin {
		return nil, fmt.Errorf("channels: interval %s must be below the renew margin %s, or channels expire between syncs", cfg.Interval, cfg.RenewMargin)
	}
	if cfg.IDBase == 0 {
		cfg.IDBase = DefaultIDBase
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
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
	kv, err := openBucket(ctx, js, cfg.Bucket, cfg.Replicas, cfg.KV.LoggingTo(cfg.Logger))
	if err != nil {
		return nil, err
	}
	return &Manager{crm: crm, kv: kv, cfg: cfg, m: cfg.Metrics,
		log: cfg.Logger.With("connection", connLabel(cfg.Connection))}, nil
}

func connLabel(c string) string {
	if c == "" {
		return "default"
	}
	return c
}

// ChannelID returns the stable channel id of a module of this connection.
func (m *Manager) ChannelID(module string) string {
	h := fnv.New64a()
	h.Write([]byte(connLabel(m.cfg.Connection)))
	h.Write([]byte{0})
	h.Write([]byte(module))
	return strconv.FormatUint(m.cfg.IDBase+h.Sum64()%idSpace, 10)
}

func (m *Manager) ours(id string) bool {
	n, err := strconv.ParseUint(id, 10, 64)
	return err == nil && n >= m.cfg.IDBase && n < m.cfg.IDBase+idSpace
}

// ChannelError is one channel's failure within Sync or Disable.
type ChannelError struct {
	ChannelID, Module, Action string
	Err                       error
}

func (e *ChannelError) Error() string {
	return fmt.Sprintf("channels: %s channel %s (%s): %v", e.Action, e.ChannelID, e.Module, e.Err)
}

func (e *ChannelError) Unwrap() error { return e.Err }

// Report says what a Sync did, by channel id.
type Report struct {
	Created, Resubscribed, Updated, Renewed, Disabled, Unchanged []string
}

// Status is one of zohook's channels as Zoho and the bucket see it.
type Status struct {
	ChannelID, Module string
	Events            []string
	NotifyURL         string
	Expiry            time.Time // zero when Zoho does not have the channel
	AtZoho, InBucket  bool
	TokenMatches      bool // Zoho's token equals the stored one
}

// listZoho returns every channel Zoho has, all pages.
func (m *Manager) listZoho(ctx context.Context) (map[string]zoho.Channel, error) {
	out := map[string]zoho.Channel{}
	for page := 1; ; page++ {
		chs, resp, err := m.crm.ListChannels(ctx, &zoho.ChannelListOptions{Page: page, PerPage: 200})
		if err != nil {
			return nil, fmt.Errorf("channels: list Zoho channels: %w", err)
		}
		for _, c := range chs {
			out[c.ChannelID] = c
		}
		if resp == nil || resp.Info == nil || !resp.Info.MoreRecords || len(chs) == 0 {
			return out, nil
		}
	}
}

// entries returns the bucket entries of this connection.
func (m *Manager) entries(ctx context.Context) (map[string]Entry, error) {
	all, err := loadEntries(ctx, m.kv)
	if err != nil {
		return nil, err
	}
	maps.DeleteFunc(all, func(_ string, e Entry) bool { return connLabel(e.Connection) != connLabel(m.cfg.Connection) })
	return all, nil
}

// List returns zohook's channels of this connection: those in the bucket and
// those Zoho has in zohook's id range.
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	zc, err := m.listZoho(ctx)
	if err != nil {
		return nil, err
	}
	ents, err := m.entries(ctx)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for id := range ents {
		ids[id] = true
	}
	for id := range zc {
		if m.ours(id) {
			ids[id] = true
		}
	}
	var out []Status
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		e, inB := ents[id]
		c, atZ := zc[id]
		st := Status{ChannelID: id, Module: e.Module, AtZoho: atZ, InBucket: inB}
		if atZ {
			st.Events, st.NotifyURL, st.Expiry = c.Events, c.NotifyURL, c.ChannelExpiry
			st.TokenMatches = inB && c.Token == e.Token
			if st.Module == "" && len(c.Events) > 0 {
				st.Module = moduleOf(c.Events[0])
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func moduleOf(event string) string {
	for i := 0; i < len(event); i++ {
		if event[i] == '.' {
			return event[:i]
		}
	}
	return event
}

// Sync makes Zoho's channels match needed ("Module.op" events, see
// NeededEvents): it creates missing channels (token stored in the bucket
// first, so the receiver accepts the very first callback), re-subscribes
// channels Zoho lost, rewrites channels whose events, URL or token drifted,
// renews those expiring within the renew margin, and disables zohook's
// channels (and events) no longer needed. It carries on past one channel's
// failure; the error joins every *ChannelError.
func (m *Manager) Sync(ctx context.Context, needed []string) (Report, error) {
	if m.syncHook != nil {
		m.syncHook(true)
		defer m.syncHook(false)
	}
	var rep Report
	zc, err := m.listZoho(ctx)
	if err != nil {
		return rep, err
	}
	all, err := loadEntries(ctx, m.kv)
	if err != nil {
		return rep, err
	}
	ents, foreign := map[string]Entry{}, map[string]bool{}
	for id, e := range all {
		if connLabel(e.Connection) == connLabel(m.cfg.Connection) {
			ents[id] = e
		} else {
			foreign[id] = true
		}
	}
	want := groupEvents(needed)
	wanted := map[string]bool{}
	var errs []error
	for _, module := range slices.Sorted(maps.Keys(want)) {
		id := m.ChannelID(module)
		if wanted[id] {
			errs = append(errs, &ChannelError{ChannelID: id, Module: module, Action: "allocate", Err: errors.New("channel id collides with another module's; change IDBase")})
			continue
		}
		wanted[id] = true
		action, err := m.syncOne(ctx, id, module, want[module], ents, zc)
		if err != nil {
			m.m.renewFailures.WithLabelValues(connLabel(m.cfg.Connection), module).Inc()
			errs = append(errs, err)
			m.warnIfExpiring(id, module, zc)
			continue
		}
		if action != "unchanged" {
			m.m.changes.WithLabelValues(connLabel(m.cfg.Connection), action).Inc()
		}
		switch action {
		case "created":
			rep.Created = append(rep.Created, id)
		case "resubscribed":
			rep.Resubscribed = append(rep.Resubscribed, id)
		case "updated":
			rep.Updated = append(rep.Updated, id)
		case "renewed":
			rep.Renewed = append(rep.Renewed, id)
		default:
			rep.Unchanged = append(rep.Unchanged, id)
		}
	}
	// zohook's channels no longer needed: at Zoho in our id range (unless
	// another connection's entry claims the id), or only in the bucket.
	var drop []string
	for id := range zc {
		if m.ours(id) && !wanted[id] && !foreign[id] {
			drop = append(drop, id)
		}
	}
	slices.Sort(drop)
	forget := map[string]bool{}
	if len(drop) > 0 {
		if _, _, err := m.crm.DisableChannels(ctx, drop); err != nil {
			errs = append(errs, &ChannelError{ChannelID: fmt.Sprint(drop), Action: "disable", Err: err})
		} else {
			rep.Disabled = append(rep.Disabled, drop...)
			m.m.changes.WithLabelValues(connLabel(m.cfg.Connection), "disabled").Add(float64(len(drop)))
			for _, id := range drop {
				forget[id] = true
				m.log.Info("channels: disabled a channel no rule needs", "channel_id", id, "module", ents[id].Module)
			}
		}
	}
	for id := range ents {
		if _, atZoho := zc[id]; !wanted[id] && !atZoho {
			forget[id] = true
		}
	}
	for id := range forget {
		m.m.expiry.DeleteLabelValues(connLabel(m.cfg.Connection), id, ents[id].Module)
		if _, ok := ents[id]; !ok {
			continue
		}
		if err := m.kv.Delete(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("channels: forget channel %s: %w", id, err))
		}
	}
	if len(errs) == 0 {
		m.m.lastSync.WithLabelValues(connLabel(m.cfg.Connection)).Set(float64(m.cfg.Clock().Unix()))
	}
	return rep, errors.Join(errs...)
}

func (m *Manager) warnIfExpiring(id, module string, zc map[string]zoho.Channel) {
	c, ok := zc[id]
	if !ok {
		m.log.Warn("channels: channel is not subscribed at Zoho and could not be (re)created: its events are not delivered",
			"channel_id", id, "module", module)
		return
	}
	left := c.ChannelExpiry.Sub(m.cfg.Clock())
	m.log.Warn("channels: channel failed to renew and expires soon", "channel_id", id, "module", module,
		"expires_in", left.Round(time.Second), "expiry", c.ChannelExpiry)
}

// syncOne brings one module's channel in line and returns what it did.
func (m *Manager) syncOne(ctx context.Context, id, module string, events []string, ents map[string]Entry, zc map[string]zoho.Channel) (string, error) {
	fail := func(action string, err error) (string, error) {
		return "", &ChannelError{ChannelID: id, Module: module, Action: action, Err: err}
	}
	e, known := ents[id]
	if !known || e.Token == "" {
		tok, err := newToken()
		if err != nil {
			return fail("create", err)
		}
		e = Entry{ChannelID: id, Connection: m.cfg.Connection, Module: module, Token: tok, CreatedAt: m.cfg.Clock()}
		// Stored before Zoho knows the channel: the first callback may come at once.
		if err := putEntry(ctx, m.kv, e); err != nil {
			return fail("create", err)
		}
		ents[id] = e
	}
	now := m.cfg.Clock()
	exp := now.Add(m.cfg.Expiry)
	full := m.channel(id, events, e.Token, exp)
	cur, live := zc[id]
	switch {
	case !live:
		if _, _, err := m.crm.EnableChannel(ctx, full); err != nil {
			return fail("enable", err)
		}
		m.setExpiry(id, module, exp)
		if known {
			m.log.Warn("channels: re-subscribed a channel Zoho no longer had; events in between may be missing (reconciliation catches up)",
				"channel_id", id, "module", module, "events", events)
			return "resubscribed", nil
		}
		m.log.Info("channels: subscribed", "channel_id", id, "module", module, "events", events, "expiry", exp)
		return "created", nil
	case cur.NotifyURL != m.cfg.NotifyURL || cur.Token != e.Token || hasExtra(events, cur.Events):
		// PUT replaces the whole subscription: fixes URL, token and events at once.
		if _, _, err := m.crm.UpdateChannel(ctx, full); err != nil {
			if notSubscribed(err) {
				if _, _, err := m.crm.EnableChannel(ctx, full); err != nil {
					return fail("enable", err)
				}
				m.setExpiry(id, module, exp)
				return "resubscribed", nil
			}
			return fail("update", err)
		}
		m.setExpiry(id, module, exp)
		m.log.Info("channels: channel rewritten (events, URL or token drifted)", "channel_id", id, "module", module, "events", events)
		return "updated", nil
	}
	action := "unchanged"
	if removed := without(cur.Events, events); len(removed) > 0 {
		if _, _, err := m.crm.DisableEvents(ctx, id, removed); err != nil {
			return fail("disable events", err)
		}
		action = "updated"
		m.log.Info("channels: events no rule needs removed", "channel_id", id, "module", module, "removed", removed)
	}
	if cur.ChannelExpiry.Sub(now) > m.cfg.RenewMargin {
		m.setExpiry(id, module, cur.ChannelExpiry)
		return action, nil
	}
	// Renew: PATCH with events and token too, or Zoho nulls the token (G11).
	if _, _, err := m.crm.PatchChannel(ctx, zoho.Channel{ChannelID: id, Events: events, Token: e.Token, ChannelExpiry: exp}); err != nil {
		if notSubscribed(err) {
			if _, _, err := m.crm.EnableChannel(ctx, full); err != nil {
				return fail("enable", err)
			}
			m.setExpiry(id, module, exp)
			return "resubscribed", nil
		}
		return fail("renew", err)
	}
	m.setExpiry(id, module, exp)
	m.log.Debug("channels: renewed", "channel_id", id, "module", module, "expiry", exp)
	return "renewed", nil
}

func (m *Manager) channel(id string, events []string, token string, exp time.Time) zoho.Channel {
	affected, related := !m.cfg.OmitAffectedValues, m.cfg.NotifyOnRelatedAction
	return zoho.Channel{ChannelID: id, Events: events, NotifyURL: m.cfg.NotifyURL, Token: token, ChannelExpiry: exp,
		ReturnAffectedFieldValues: &affected, NotifyOnRelatedAction: &related}
}

func (m *Manager) setExpiry(id, module string, t time.Time) {
	m.m.expiry.WithLabelValues(connLabel(m.cfg.Connection), id, module).Set(float64(t.Unix()))
}

// hasExtra reports whether want holds an event have lacks.
func hasExtra(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// without returns the events of have that want does not list.
func without(have, want []string) []string {
	var out []string
	for _, h := range have {
		if !slices.Contains(want, h) {
			out = append(out, h)
		}
	}
	return out
}

// notSubscribed reports Zoho's NOT_SUBSCRIBED (the channel vanished).
func notSubscribed(err error) bool {
	var be *zoho.BatchError
	if errors.As(err, &be) {
		for _, f := range be.Failed {
			if f.Code == "NOT_SUBSCRIBED" {
				return true
			}
		}
	}
	var ze *zoho.Error
	return errors.As(err, &ze) && ze.Code == "NOT_SUBSCRIBED"
}

// Disable unsubscribes channels at Zoho and forgets them; no ids = every
// zohook channel of this connection. Run keeps re-creating channels the
// rules need: stop the workers' channel sync first.
func (m *Manager) Disable(ctx context.Context, ids ...string) ([]string, error) {
	if len(ids) == 0 {
		sts, err := m.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range sts {
			ids = append(ids, s.ChannelID)
		}
	}
	zc, err := m.listZoho(ctx)
	if err != nil {
		return nil, err
	}
	var atZoho []string
	for _, id := range ids {
		if _, ok := zc[id]; ok {
			atZoho = append(atZoho, id)
		}
	}
	if len(atZoho) > 0 {
		if _, _, err := m.crm.DisableChannels(ctx, atZoho); err != nil {
			return nil, &ChannelError{ChannelID: fmt.Sprint(atZoho), Action: "disable", Err: err}
		}
	}
	for _, id := range ids {
		if err := m.kv.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return ids, fmt.Errorf("channels: forget channel %s: %w", id, err)
		}
	}
	return ids, nil
}

// Run syncs every Interval while holding lease, so one worker of the fleet
// does it at a time; needed is asked before each sync (rules may reload). It
// returns when ctx ends. Sync errors are logged and retried next interval.
func (m *Manager) Run(ctx context.Context, lease *fleet.Lease, needed func() []string) error {
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
				rep, err := m.Sync(hctx, needed())
				if err != nil && hctx.Err() == nil {
					m.log.Warn("channels: sync failed; retrying next interval", "err", err, "interval", m.cfg.Interval)
				} else if len(rep.Created)+len(rep.Resubscribed)+len(rep.Updated)+len(rep.Disabled) > 0 {
					m.log.Info("channels: synced", "created", len(rep.Created), "resubscribed", len(rep.Resubscribed),
						"updated", len(rep.Updated), "renewed", len(rep.Renewed), "disabled", len(rep.Disabled))
				}
				t.Reset(m.cfg.Interval)
			}
		})
		if err != nil && !errors.Is(err, fleet.ErrLeaseLost) && ctx.Err() == nil {
			return fmt.Errorf("channels: lease: %w", err)
		}
	}
	return nil
}
