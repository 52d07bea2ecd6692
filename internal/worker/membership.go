package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/events"
)

// Membership is how worker processes share the partitions: each one keeps
// a key alive in the members bucket (a heartbeat every MemberTTL/4; the
// bucket forgets a key MemberTTL after its last write, and tells watchers),
// and every member computes the same assignment from the live names:
// sorted, partition p goes to names[p mod N]. So with N workers each serves
// P/N partitions (±1); a new worker gets its share within a heartbeat; a
// stopped one (SIGTERM: its key is deleted at once; SIGKILL: after
// MemberTTL) leaves its partitions to the others.
//
// Members may briefly disagree (a watch update reaches them at different
// times). That is safe: each partition's consumer pins one process at a
// time, so two processes never get the same partition's events at once,
// and the runner fences a partition it takes over (see Runner).
//
// Why not orbit.go/pcgroups: its elastic groups copy every event into a
// second work-queue stream and recreate consumers on every membership
// change, and membership there is administrative (someone must add and
// remove members); its static groups cannot change membership. zohook's
// work stream already has one pinned consumer per partition, so a live
// member list and a pure assignment function are all that is missing.
type Membership struct {
	kv   jetstream.KeyValue
	name string
	key  string
	ttl  time.Duration
	log  *slog.Logger
	n    int // partitions

	mu       sync.Mutex
	members  map[string]memberInfo // live, by key
	held     []int                 // what this process reports it holds
	lastBeat time.Time             // last successful heartbeat
	assigned []int
	changed  chan struct{} // closed and replaced on every assignment change
}

// memberInfo is a member's heartbeat value.
type memberInfo struct {
	Name    string    `json:"name"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started"`
	// Holds: the partitions the member consumes right now.
	Holds []int     `json:"holds"`
	At    time.Time `json:"at"`
}

// Defaults of the members bucket.
const (
	DefaultMembersBucket = "zohook_workers"
	DefaultMemberTTL     = 10 * time.Second
)

// MembersSpec is the members bucket of the NATS layout: a key lives
// DefaultMemberTTL after its last heartbeat; its expiry leaves a marker so
// watchers learn of it.
func MembersSpec(replicas int) events.KVSpec {
	return events.KVSpec{KeyValueConfig: jetstream.KeyValueConfig{
		Bucket:         DefaultMembersBucket,
		Description:    "zohook worker processes alive and the partitions each holds",
		TTL:            DefaultMemberTTL,
		LimitMarkerTTL: DefaultMemberTTL,
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       max(replicas, 1),
	}}
}

// DefaultMemberName is host-pid: unique per running process, readable in
// `worker status`.
func DefaultMemberName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// Join starts heartbeating as name and watching the other members. It
// returns once this process's first heartbeat is stored and the current
// members are known.
func Join(ctx context.Context, js jetstream.JetStream, name string, partitions int, o events.KVOptions, log *slog.Logger) (*Membership, error) {
	if name == "" {
		name = DefaultMemberName()
	}
	kv, err := events.OpenKV(ctx, js, MembersSpec(1), o)
	if err != nil {
		return nil, fmt.Errorf("worker membership: %w", err)
	}
	ttl := DefaultMemberTTL
	if st, err := kv.Status(ctx); err == nil && st.TTL() > 0 {
		ttl = st.TTL()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Membership{kv: kv, name: name, key: memberKey(name), ttl: ttl, log: log, n: partitions,
		members: map[string]memberInfo{}, changed: make(chan struct{})}
	if err := m.beat(ctx); err != nil {
		return nil, fmt.Errorf("worker membership: first heartbeat: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("worker membership: watch: %w", err)
	}
	// The initial values end with a nil entry.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		m.apply(e)
	}
	m.reassign()
	go m.run(ctx, w)
	return m, nil
}

// memberKey is the member's key: names may hold characters keys do not.
func memberKey(name string) string { return "m." + events.Token(name) }

// Name is this member's name.
func (m *Membership) Name() string { return m.name }

// TTL is how long a silent member stays in the list.
func (m *Membership) TTL() time.Duration { return m.ttl }

// Assigned returns the partitions this process should consume and a
// channel closed at the next change.
func (m *Membership) Assigned() ([]int, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.assigned), m.changed
}

// SetHeld records the partitions this process consumes, for the next
// heartbeat (others wait for a partition until no live member holds it).
func (m *Membership) SetHeld(held []int) {
	m.mu.Lock()
	m.held = slices.Sorted(slices.Values(held))
	m.mu.Unlock()
}

// HeldByOther reports whether a live member other than this one says it
// holds partition p.
func (m *Membership) HeldByOther(p int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, mi := range m.members {
		if k != m.key && slices.Contains(mi.Holds, p) {
			return true
		}
	}
	return false
}

// Members returns the live members' names, sorted.
func (m *Membership) Members() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.namesLocked()
}

func (m *Membership) namesLocked() []string {
	names := make([]string, 0, len(m.members))
	for _, mi := range m.members {
		names = append(names, mi.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Leave deletes this member's key so the others take its partitions at
// once rather than after the TTL.
func (m *Membership) Leave(ctx context.Context) error {
	if err := m.kv.Delete(ctx, m.key); err != nil {
		return fmt.Errorf("worker membership: leave: %w", err)
	}
	return nil
}

func (m *Membership) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	t := time.NewTicker(m.ttl / 4)
	defer t.Stop()
	updates := w.Updates()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				// The watch ended (NATS trouble): watch again, from scratch.
				nw, err := m.kv.WatchAll(ctx)
				if err != nil {
					m.log.Warn("worker membership: watch ended; retrying", "err", err)
					updates = nil
					continue
				}
				w = nw
				m.mu.Lock()
				m.members = map[string]memberInfo{}
				m.mu.Unlock()
				updates = nw.Updates()
				continue
			}
			if e != nil {
				m.apply(e)
				m.reassign()
			}
		case <-t.C:
			bctx, cancel := context.WithTimeout(ctx, m.ttl/4)
			err := m.beat(bctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				m.log.Warn("worker membership: heartbeat failed", "err", err)
			}
			if updates == nil {
				if nw, err := m.kv.WatchAll(ctx); err == nil {
					w, updates = nw, nw.Updates()
				}
			}
			// Without a recent heartbeat this process may already be out of
			// the others' lists: it gives up its partitions (reassign sees
			// the stale beat) rather than risk serving them beside their
			// new holder.
			m.reassign()
		}
	}
}

func (m *Membership) beat(ctx context.Context) error {
	m.mu.Lock()
	info := memberInfo{Name: m.name, PID: os.Getpid(), Holds: slices.Clone(m.held), At: time.Now().UTC()}
	m.mu.Unlock()
	info.Host, _ = os.Hostname()
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if _, err := m.kv.Put(ctx, m.key, b); err != nil {
		return err
	}
	m.mu.Lock()
	m.lastBeat = time.Now()
	m.members[m.key] = info
	m.mu.Unlock()
	return nil
}

func (m *Membership) apply(e jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.members, e.Key())
		return
	}
	var mi memberInfo
	if err := json.Unmarshal(e.Value(), &mi); err != nil || mi.Name == "" {
		return
	}
	m.members[e.Key()] = mi
}

// reassign recomputes this process's partitions and signals a change.
func (m *Membership) reassign() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var mine []int
	if time.Since(m.lastBeat) < m.ttl/2 {
		if _, ok := m.members[m.key]; ok {
			mine = Assign(m.namesLocked(), m.n)[m.name]
		}
	}
	if slices.Equal(mine, m.assigned) {
		return
	}
	m.log.Info("partitions assigned", "member", m.name, "partitions", mine, "members", m.namesLocked())
	m.assigned = mine
	close(m.changed)
	m.changed = make(chan struct{})
}

// Assign maps partitions to members: sorted names, partition p to
// names[p mod N]. Every member computes the same answer from the same list.
func Assign(names []string, partitions int) map[string][]int {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	out := map[string][]int{}
	if len(names) == 0 {
		return out
	}
	for p := range partitions {
		n := names[p%len(names)]
		out[n] = append(out[n], p)
	}
	return out
}
