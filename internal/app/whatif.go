package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/rules/ruleevent"
	"github.com/zohook/zohook/internal/rules/rulescmd"
	"github.com/zohook/zohook/internal/worker"
)

// `worker rules test -history 24h NEW_rules.yaml`: what would the candidate
// rules have decided on the events actually received? The comparison is
// rulescmd.WhatIf; this file reads the events from the history stream and
// each event's record snapshot from the step journal. It only reads: an
// ordered (ephemeral) consumer on the history, journal gets, no Zoho call,
// nothing published or written.

const whatIfSynopsis = `usage: worker rules test -history DURATION [-subject FILTER] [-rules RUNNING.yaml] [-json] [flags] CANDIDATE.yaml

Evaluates the running rules (-rules) and CANDIDATE.yaml on every event the
history stream received in the last DURATION (e.g. 24h), and prints per rule
the events that now match, no longer match or are unchanged, the events where
its condition is now true or now false, and a few example event ids each.
Only triggers and conditions are evaluated: no step runs, nothing is sent to
Zoho, nothing is written to NATS. A condition that reads the record uses the
record snapshot the worker journaled for the event; events without one are
evaluated with the event's values only, and marked "no record snapshot".
-subject narrows the events, e.g. zoho.crm.notify.*.deals.> (module in lower
case). Exit 0 with the report, 1 when NATS or a rules file fails, 2 on usage
errors.`

// isWhatIf reports whether `worker rules ARGS...` is the history comparison
// (`rules test` with -history), which needs NATS and so is run here rather
// than by rulescmd.
func isWhatIf(args []string) bool {
	if len(args) == 0 || args[0] != "test" {
		return false
	}
	for _, a := range args[1:] {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "history" {
			return true
		}
	}
	return false
}

// whatIfCommand runs `worker rules test -history ...`; args are those after
// "rules test".
func whatIfCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs, o := opsFlags("rules test", whatIfSynopsis, stderr)
	running := fs.String("rules", "rules.yaml", "the running rules `file` (what the worker runs), compared with CANDIDATE.yaml")
	window := config.ActionDuration(fs, "history", "evaluate the events received within this `duration` (e.g. 24h)")
	subject := config.ActionString(fs, "subject", "only events whose subject matches this `filter`, e.g. zoho.crm.notify.*.deals.> (default every event)")
	asJSON := config.ActionBool(fs, "json", "print the report as JSON")
	if code, ok := parseCommand(fs, flagsFirst(fs, args), getenv, stdout, stderr, 1); !ok {
		return code
	}
	switch {
	case *window <= 0:
		fmt.Fprintln(stderr, "rules test: -history needs a positive duration (e.g. -history 24h)")
		return ExitUsage
	case fs.NArg() != 1:
		fmt.Fprintln(stderr, "rules test: give the candidate rules file (see -h)")
		return ExitUsage
	}
	filter := events.SubjectPrefix + ".>"
	if *subject != "" {
		if err := checkSubjectFilter(*subject); err != nil {
			fmt.Fprintln(stderr, "rules test: -subject:", err)
			return ExitUsage
		}
		filter = *subject
	}
	w, err := rulescmd.NewWhatIf(*running, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		var le *rules.LoadError
		if errors.As(err, &le) {
			fmt.Fprintf(stderr, "%d problem(s)\n", len(le.Problems))
		}
		return ExitFailure
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bb, err := openOps(ctx, *o, "zohook-rules-whatif", log)
	if err != nil {
		fmt.Fprintln(stderr, "rules test:", err)
		return ExitFailure
	}
	defer bb.Close()
	until := time.Now()
	win := &rulescmd.WhatIfWindow{Since: until.Add(-*window), Until: until, Subject: filter, Stream: bb.Stream.HistoryName}
	if *window > bb.Stream.HistoryMaxAge {
		fmt.Fprintf(stderr, "rules test: note: the history keeps events for %s only; -history %s reads all of it\n",
			config.FormatDuration(bb.Stream.HistoryMaxAge), config.FormatDuration(*window))
	}
	journal, err := worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{Replicas: bb.Stream.Replicas, TTL: worker.JournalTTL(bb.Stream.HistoryMaxAge)})
	if err != nil {
		fmt.Fprintln(stderr, "rules test:", err)
		return ExitFailure
	}
	if err := whatIfHistory(ctx, bb.JS, bb.Stream.HistoryName, win.Since, filter, journal, w); err != nil {
		fmt.Fprintln(stderr, "rules test:", err)
		return ExitFailure
	}
	rep := w.Report()
	rep.Window = win
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rules test:", err)
		return ExitFailure
	}
	return ExitOK
}

// whatIfHistory feeds w every event of the history stream stored since
// `since` whose subject matches filter, up to the last one stored when it
// starts, with the record snapshot journaled for it when the rules need
// one.
func whatIfHistory(ctx context.Context, js jetstream.JetStream, stream string, since time.Time, filter string, journal *worker.Journal, w *rulescmd.WhatIf) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("history stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("history stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	left := ci.NumPending
	for left > 0 {
		batch, err := cons.Fetch(int(min(left, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("history fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("history message: %w", err)
			}
			left = meta.NumPending
			if meta.Sequence.Stream > last {
				left = 0 // stored after the command started: not part of the window
				break
			}
			if meta.Sequence.Stream == last {
				left = 0
			}
			if err := whatIfEvent(ctx, m.Data(), journal, w); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("history fetch: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return nil
}

func whatIfEvent(ctx context.Context, data []byte, journal *worker.Journal, w *rulescmd.WhatIf) error {
	env, err := events.Decode(data)
	if err != nil {
		w.Undecodable()
		return nil
	}
	ev := ruleevent.FromEnvelope(env)
	var snap map[string]any
	has := false
	if w.NeedsRecord(ev) {
		rec, err := journal.Get(ctx, env.ID)
		if err != nil {
			return fmt.Errorf("journal of event %s: %w", env.ID, err)
		}
		if rec != nil {
			snap, has = rec.Record, rec.HasRecord
		}
	}
	w.Add(ev, snap, has)
	return nil
}

// checkSubjectFilter accepts a subject filter on event subjects:
// zoho.<source, 2 tokens>.<connection>.<module>.<operation>.<partition>.<record>.
func checkSubjectFilter(s string) error {
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%q contains white space", s)
	}
	tokens := strings.Split(s, ".")
	if tokens[0] != events.SubjectPrefix && tokens[0] != "*" && tokens[0] != ">" {
		return fmt.Errorf("%q is not an event subject: they start with %s. (e.g. zoho.crm.notify.*.deals.>)", s, events.SubjectPrefix)
	}
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("%q has an empty token", s)
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("%q: > must be the last token", s)
		case (strings.Contains(t, "*") || strings.Contains(t, ">")) && len(t) > 1:
			return fmt.Errorf("%q: a wildcard must be a whole token", s)
		}
	}
	if len(tokens) > events.SubjectTokens {
		return fmt.Errorf("%q has %d tokens; event subjects have %d", s, len(tokens), events.SubjectTokens)
	}
	return nil
}

// flagsFirst moves positional arguments after the flags, so that flags may
// follow the file (`rules test NEW.yaml -history 24h`), as the other `rules`
// commands allow.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // unknown: Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...)
}
