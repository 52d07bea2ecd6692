package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MemberInfo is a live worker process as its last heartbeat in the members
// bucket describes it (operator commands read it; see Membership).
type MemberInfo struct {
	Name string `json:"name"`
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Holds: the partitions the process consumes right now.
	Holds []int `json:"holds"`
	// At: its last heartbeat (every DefaultMemberTTL/4).
	At time.Time `json:"at"`
}

// ErrNoMembersBucket: the members bucket does not exist (no layout yet).
var ErrNoMembersBucket = errors.New("worker: the members bucket " + DefaultMembersBucket + " does not exist")

// ReadMembers returns the live workers, sorted by name. It only reads: the
// bucket is looked up, never created. A key the bucket still holds but
// whose heartbeat is older than the bucket's TTL is left out (the process
// is gone; NATS removes the key shortly).
func ReadMembers(ctx context.Context, js jetstream.JetStream) ([]MemberInfo, error) {
	kv, err := js.KeyValue(ctx, DefaultMembersBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoMembersBucket
	}
	if err != nil {
		return nil, fmt.Errorf("worker members: %w", err)
	}
	ttl := DefaultMemberTTL
	if st, err := kv.Status(ctx); err == nil && st.TTL() > 0 {
		ttl = st.TTL()
	}
	w, err := kv.WatchFiltered(ctx, []string{"m.>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("worker members: watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []MemberInfo
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("worker members: %w", ctx.Err())
		}
		if e == nil {
			break // the current values have all arrived
		}
		var mi memberInfo
		if err := json.Unmarshal(e.Value(), &mi); err != nil || mi.Name == "" {
			continue // not a heartbeat
		}
		at := mi.At
		if at.IsZero() {
			at = e.Created()
		}
		if time.Since(at) > ttl {
			continue
		}
		out = append(out, MemberInfo{Name: mi.Name, Host: mi.Host, PID: mi.PID, Holds: slices.Sorted(slices.Values(mi.Holds)), At: at})
	}
	slices.SortFunc(out, func(a, b MemberInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Holders maps each partition to the member that says it holds it ("" for
// none). A partition two members claim (a handover seen mid-way) goes to
// the first by name.
func Holders(members []MemberInfo, partitions int) []string {
	out := make([]string, partitions)
	for _, m := range members {
		for _, p := range m.Holds {
			if p >= 0 && p < partitions && out[p] == "" {
				out[p] = m.Name
			}
		}
	}
	return out
}
