package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/worker"
)

// Health is the health page: who serves which partition, the backlog, the
// dead letters, the channels, the rules and the Zoho budget left.
type Health struct {
	At          time.Time       `json:"at"`
	Partitions  []PartitionView `json:"partitions"`
	Members     []Member        `json:"members"`
	Pending     uint64          `json:"pending"`
	AckPending  int             `json:"ack_pending"`
	Oldest      time.Time       `json:"oldest_waiting,omitzero"`
	DeadLetters uint64          `json:"dead_letters"`
	Channels    []Channel       `json:"channels"`
	Rules       *RulesStatus    `json:"rules,omitempty"`
	Rates       []RateView      `json:"rates"`
	Index       IndexStats      `json:"index"`
	// Problems: parts that could not be read (the rest is shown).
	Problems []string `json:"problems,omitempty"`
}

// PartitionView is one partition's backlog and the member serving it.
type PartitionView struct {
	worker.PartitionBacklog
	// Member: the live worker whose heartbeat says it holds the partition.
	Member string `json:"member,omitempty"`
}

// Member is a live worker process (members bucket zohook_workers, read
// with worker.ReadMembers).
type Member struct {
	Name     string    `json:"name"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Holds    []int     `json:"holds"`
	LastBeat time.Time `json:"last_heartbeat"`
}

// RateView is a shared rate limit with the budget left now.
type RateView struct {
	RateLimit
	Configured bool      `json:"configured"` // this process knows its rate (else only the stored state)
	Available  float64   `json:"available"`
	Granted    uint64    `json:"granted"`
	LastTake   time.Time `json:"last_take,omitzero"`
}

// Health reads the health page's data.
func (c *Console) Health(ctx context.Context) *Health {
	h := &Health{At: time.Now().UTC(), Partitions: []PartitionView{}, Members: []Member{}, Channels: []Channel{}, Rates: []RateView{}, Index: c.ix.Stats()}
	problem := func(what string, err error) { h.Problems = append(h.Problems, what+": "+err.Error()) }
	members, err := worker.ReadMembers(ctx, c.cfg.JS)
	if err != nil && !errors.Is(err, worker.ErrNoMembersBucket) {
		problem("workers", err)
	}
	for _, m := range members {
		holds := m.Holds
		if holds == nil {
			holds = []int{}
		}
		h.Members = append(h.Members, Member{Name: m.Name, Host: m.Host, PID: m.PID, Holds: holds, LastBeat: m.At})
	}
	holder := worker.Holders(members, c.cfg.Stream.Partitions)
	bl, err := worker.Backlog(ctx, c.cfg.JS, c.cfg.Stream, c.cfg.Consumer)
	if err != nil {
		problem("backlog", err)
	}
	for _, b := range bl {
		v := PartitionView{PartitionBacklog: b}
		if b.Partition < len(holder) {
			v.Member = holder[b.Partition]
		}
		h.Partitions = append(h.Partitions, v)
		h.Pending += b.Pending
		h.AckPending += b.AckPending
		if !b.OldestWaiting.IsZero() && (h.Oldest.IsZero() || b.OldestWaiting.Before(h.Oldest)) {
			h.Oldest = b.OldestWaiting
		}
	}
	if n, err := c.cfg.DLQ.Count(ctx); err != nil {
		problem("dead letters", err)
	} else {
		h.DeadLetters = n
	}
	if c.cfg.Channels != nil {
		chs, err := c.cfg.Channels(ctx)
		if err != nil {
			problem("channels", err)
		}
		h.Channels = append(h.Channels, chs...)
	}
	if c.cfg.RulesStatus != nil {
		rs := c.cfg.RulesStatus()
		h.Rules = &rs
	} else if c.cfg.Rules != nil {
		if set := c.cfg.Rules.Current(); set != nil {
			rs := RulesStatus{File: set.File(), Version: set.Version(), Rules: len(set.Rules())}
			for _, w := range set.Warnings() {
				rs.Warnings = append(rs.Warnings, w.String())
			}
			h.Rules = &rs
		}
	}
	readings, err := fleet.ReadRates(ctx, c.cfg.JS, c.cfg.RateBucket)
	if err != nil {
		problem("rate limits", err)
	}
	byName := map[string]fleet.RateReading{}
	for _, r := range readings {
		byName[r.Name] = r
	}
	for _, rl := range c.cfg.Rates {
		v := RateView{RateLimit: rl, Configured: true}
		if rl.Burst == 0 {
			v.Burst = fleet.DefaultBurst(rl.Limit, rl.Per)
		}
		if r, ok := byName[rl.Name]; ok {
			v.Available, v.Granted, v.LastTake = r.Available(h.At, rl.Limit, rl.Per, v.Burst), r.Granted, r.At
			delete(byName, rl.Name)
		} else {
			v.Available = float64(v.Burst) // untouched: the bucket starts full
		}
		h.Rates = append(h.Rates, v)
	}
	for _, r := range readings {
		if _, left := byName[r.Name]; left {
			api, conn, _ := strings.Cut(r.Name, "-")
			h.Rates = append(h.Rates, RateView{RateLimit: RateLimit{Name: r.Name, API: api, Connection: conn}, Available: r.Tokens, Granted: r.Granted, LastTake: r.At})
		}
	}
	return h
}

// rateText is a rate as people write it: "90/1m", "50000/24h".
func rateText(limit int, per time.Duration) string {
	if limit <= 0 {
		return "unlimited"
	}
	switch {
	case per%time.Hour == 0:
		return fmt.Sprintf("%d/%dh", limit, per/time.Hour)
	case per%time.Minute == 0:
		return fmt.Sprintf("%d/%dm", limit, per/time.Minute)
	case per%time.Second == 0:
		return fmt.Sprintf("%d/%ds", limit, per/time.Second)
	}
	return fmt.Sprintf("%d/%s", limit, per)
}
