package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zohook/zohook/internal/worker"
)

// DeadLetterView is a dead letter as the console shows it.
type DeadLetterView struct {
	ID         string    `json:"id"`
	Source     string    `json:"source,omitempty"`
	Connection string    `json:"connection,omitempty"`
	Module     string    `json:"module,omitempty"`
	Operation  string    `json:"operation,omitempty"`
	RecordID   string    `json:"record_id,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Step       string    `json:"step,omitempty"`
	Action     string    `json:"action,omitempty"`
	Error      string    `json:"error"`
	Permanent  bool      `json:"permanent"` // false: it ran out of deliveries
	Attempts   int       `json:"attempts"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	DeadAt     time.Time `json:"dead_at"`
	// Replayable: the dead letter holds an event (not unreadable bytes).
	Replayable bool `json:"replayable"`
	// InDoubt: its step is journaled as started with no recorded answer:
	// someone must say whether Zoho did it (Resolve) before a replay.
	InDoubt bool `json:"in_doubt"`
}

func (c *Console) deadLetterView(ctx context.Context, dl *worker.DeadLetter) DeadLetterView {
	v := DeadLetterView{ID: dl.ID(), Rule: dl.Rule, Step: dl.Step, Action: dl.Action, Error: redactText(dl.Error), Permanent: dl.Permanent,
		Attempts: dl.Attempts, ReceivedAt: dl.ReceivedAt, DeadAt: dl.DeadAt, Replayable: dl.Event != nil}
	if e := dl.Event; e != nil {
		v.Source, v.Connection, v.Module, v.Operation, v.RecordID = string(e.Source), e.Connection, e.Module, e.Operation, e.RecordID
		if dl.Rule != "" && dl.Step != "" {
			if rec, err := c.cfg.Journal.Get(ctx, e.ID); err == nil && rec != nil {
				if s := rec.Steps[dl.Rule+"/"+dl.Step]; s != nil && s.State == worker.StepStarted {
					v.InDoubt = true
				}
			}
		}
	}
	return v
}

// DeadLetterFilter selects dead letters; empty fields match all. Text
// matches case-insensitively; Error matches a part of the error.
type DeadLetterFilter struct {
	Rule   string `json:"rule,omitempty"`
	Step   string `json:"step,omitempty"`
	Module string `json:"module,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (f DeadLetterFilter) matches(dl *worker.DeadLetter) bool {
	eq := func(want, have string) bool { return want == "" || strings.EqualFold(want, have) }
	module := ""
	if dl.Event != nil {
		module = dl.Event.Module
	}
	return eq(f.Rule, dl.Rule) && eq(f.Step, dl.Step) && eq(f.Module, module) &&
		(f.Error == "" || strings.Contains(strings.ToLower(dl.Error), strings.ToLower(f.Error)))
}

// maxDeadLetters bounds one listing.
const maxDeadLetters = 5000

// DeadLetters lists the dead letters matching f, newest first, and the
// number of dead letters in all.
func (c *Console) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetterView, uint64, error) {
	total, err := c.cfg.DLQ.Count(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := []DeadLetterView{}
	for dl, err := range c.cfg.DLQ.List(ctx) {
		if err != nil {
			return out, total, err
		}
		if f.matches(dl) {
			out = append(out, c.deadLetterView(ctx, dl))
		}
		if len(out) >= maxDeadLetters {
			break
		}
	}
	slices.Reverse(out)
	return out, total, nil
}

// Selection names dead letters to replay: by id, or every one matching
// Filter when All is set.
type Selection struct {
	IDs    []string         `json:"ids,omitempty"`
	All    bool             `json:"all,omitempty"`
	Filter DeadLetterFilter `json:"filter,omitzero"`
}

// ReplayPreview is what a replay would do, before anything is sent.
type ReplayPreview struct {
	Count int              `json:"count"`
	Items []DeadLetterView `json:"items"`
	// Skipped: selected ids that cannot be replayed now (gone, not an
	// event, or in doubt: resolve those one by one).
	Skipped []SkippedReplay `json:"skipped,omitempty"`
}

// SkippedReplay is a selected dead letter a replay leaves out, and why.
type SkippedReplay struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// PreviewReplay resolves a selection into the dead letters a replay would
// send now.
func (c *Console) PreviewReplay(ctx context.Context, sel Selection) (ReplayPreview, error) {
	p := ReplayPreview{Items: []DeadLetterView{}}
	var cands []DeadLetterView
	switch {
	case sel.All:
		all, _, err := c.DeadLetters(ctx, sel.Filter)
		if err != nil {
			return p, err
		}
		cands = all
	case len(sel.IDs) > 0:
		seen := map[string]bool{}
		for _, id := range sel.IDs {
			if id = strings.TrimSpace(id); id == "" || seen[id] {
				continue
			}
			seen[id] = true
			dl, err := c.cfg.DLQ.Get(ctx, id)
			if errors.Is(err, worker.ErrNotFound) {
				p.Skipped = append(p.Skipped, SkippedReplay{ID: id, Reason: "no longer a dead letter"})
				continue
			}
			if err != nil {
				return p, err
			}
			cands = append(cands, c.deadLetterView(ctx, dl))
		}
	default:
		return p, errors.New("select dead letters: ids, or all (with an optional filter)")
	}
	for _, v := range cands {
		switch {
		case !v.Replayable:
			p.Skipped = append(p.Skipped, SkippedReplay{ID: v.ID, Reason: "not a valid event: nothing to replay"})
		case v.InDoubt:
			p.Skipped = append(p.Skipped, SkippedReplay{ID: v.ID, Reason: "in doubt: say whether Zoho did the step (done or resend) first"})
		default:
			p.Items = append(p.Items, v)
		}
	}
	p.Count = len(p.Items)
	return p, nil
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Replayed []string        `json:"replayed"`
	Failed   []SkippedReplay `json:"failed,omitempty"`
}

// ErrPreviewChanged: the selection no longer resolves to the number of
// dead letters the preview showed; nothing was sent.
var ErrPreviewChanged = errors.New("the selection changed since the preview")

// Replay replays the selection, but only if it still resolves to expect
// dead letters (the count the preview showed): nothing is sent otherwise.
func (c *Console) Replay(ctx context.Context, sel Selection, expect int) (ReplayResult, ReplayPreview, error) {
	res := ReplayResult{Replayed: []string{}}
	p, err := c.PreviewReplay(ctx, sel)
	if err != nil {
		return res, p, err
	}
	if p.Count != expect {
		return res, p, fmt.Errorf("%w: it would now replay %d events, not %d", ErrPreviewChanged, p.Count, expect)
	}
	// Oldest first, as they were received: a record's create goes back to
	// the work stream before its update (the worker keeps that order).
	items := slices.Clone(p.Items)
	slices.SortStableFunc(items, func(a, b DeadLetterView) int {
		if c := a.ReceivedAt.Compare(b.ReceivedAt); c != 0 {
			return c
		}
		return a.DeadAt.Compare(b.DeadAt)
	})
	for _, v := range items {
		if err := c.cfg.DLQ.Replay(ctx, v.ID); err != nil {
			res.Failed = append(res.Failed, SkippedReplay{ID: v.ID, Reason: err.Error()})
			continue
		}
		res.Replayed = append(res.Replayed, v.ID)
	}
	return res, p, nil
}

// ReplayOne replays one dead letter (an in-doubt one needs Resolve).
func (c *Console) ReplayOne(ctx context.Context, id string) error {
	dl, err := c.cfg.DLQ.Get(ctx, id)
	if err != nil {
		return err
	}
	if v := c.deadLetterView(ctx, dl); v.InDoubt {
		return fmt.Errorf("%s is in doubt: resolve it (done or resend) instead", id)
	}
	return c.cfg.DLQ.Replay(ctx, id)
}

// Resolve records an operator's decision on an in-doubt step (done: Zoho
// did it, do not send it again; resend: it did not) and replays the event,
// as `worker dlq replay -in-doubt` does.
func (c *Console) Resolve(ctx context.Context, id, decision string) error {
	return c.cfg.DLQ.ReplayInDoubt(ctx, c.cfg.Journal, id, decision)
}
