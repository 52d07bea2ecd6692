package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
)

// setupCommand is the explicit, documented way to change the NATS layout:
// without -apply it only shows what is missing and what differs from the
// flags; -apply creates what is missing and applies the differences that
// grow (longer retention, larger limits, more replicas, longer waits);
// shrinking ones (which can delete stored events or lower redundancy) also
// need -allow-shrink. The partition count and storage kind never change in
// place.
func setupCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker setup [flags]                        show what differs from the flags (changes nothing)
       worker setup -apply [flags]                 create what is missing, apply growing changes
       worker setup -apply -allow-shrink [flags]   also apply shrinking changes
       worker setup -apply -retire-layout1 [flags] upgrade from zohook's first layout (stream ZOHOOK_EVENTS)

The NATS layout (streams, partition consumers, buckets) is created by the
receiver at its first start, from its flags. This command is the way to
change it later: run it with the settings you want; it never shrinks
retention, limits or replicas unless -allow-shrink is given.

-retire-layout1 upgrades an install of zohook's first layout: the old
stream ZOHOOK_EVENTS stops taking events (its messages stay), the command
waits up to -drain-timeout while the old workers finish what it holds,
carries the old journal of every dead letter over, then creates this
layout. Stop the old receivers (or let them answer errors until the new
ones start) and keep the old workers running until it is done.`
	fs, o := opsFlags("setup", synopsis, stderr)
	var lo LayoutOptions
	lo.Register(fs)
	apply := config.ActionBool(fs, "apply", "create what is missing and apply the differences (without it nothing changes)")
	shrink := config.ActionBool(fs, "allow-shrink", "with -apply, also apply changes that shrink retention, limits or replicas")
	asJSON := config.ActionBool(fs, "json", "print the result as JSON")
	retire := config.ActionBool(fs, "retire-layout1", "with -apply, retire zohook's first layout (stream ZOHOOK_EVENTS) after its workers drained it, then create this one")
	drain := config.ActionDuration(fs, "drain-timeout", "with -retire-layout1, how long to wait for the old workers to drain it (default 10m)")
	if code, ok := parseCommand(fs, args, getenv, stdout, stderr, 0); !ok {
		return code
	}
	if err := lo.Validate(); err != nil {
		fmt.Fprintln(stderr, "setup:", err)
		return ExitUsage
	}
	if *shrink && !*apply {
		fmt.Fprintln(stderr, "setup: -allow-shrink needs -apply")
		return ExitUsage
	}
	if (*retire || *drain != 0) && !*apply {
		fmt.Fprintln(stderr, "setup: -retire-layout1 and -drain-timeout need -apply")
		return ExitUsage
	}
	if *drain != 0 && !*retire {
		fmt.Fprintln(stderr, "setup: -drain-timeout needs -retire-layout1")
		return ExitUsage
	}
	if *drain < 0 {
		fmt.Fprintln(stderr, "setup: -drain-timeout must be positive")
		return ExitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bb, err := OpenBackbone(ctx, *o, "zohook-setup", false, log)
	if err != nil {
		fmt.Fprintln(stderr, "setup:", err)
		return ExitFailure
	}
	defer bb.Close()
	mode := events.LookupOnly
	switch {
	case *apply && *shrink:
		mode = events.ApplyShrink
	case *apply:
		mode = events.ApplyGrow
	}
	if *retire {
		progress := stdout
		if *asJSON {
			progress = stderr // stdout is for the JSON result
		}
		if code := retireLayout1(ctx, bb, cmp.Or(*drain, 10*time.Minute), progress, stderr); code != ExitOK {
			return code
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	outs, err := EnsureLayout(cctx, bb.JS, lo.Stream(), lo.Consumer(), mode)
	if err != nil {
		fmt.Fprintln(stderr, "setup:", err)
		return ExitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(outs)
	} else {
		printSetup(stdout, outs, mode)
	}
	for _, o := range outs {
		if o.Missing || len(o.Refused) > 0 {
			return ExitFailure // something is not as asked: say so to scripts
		}
	}
	return ExitOK
}

func printSetup(w io.Writer, outs []events.Outcome, mode events.EnsureMode) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tSTATE\tDETAIL")
	missing, refused := 0, 0
	for _, o := range outs {
		switch {
		case o.Created:
			fmt.Fprintf(tw, "%s\tcreated\t\n", o.Object)
		case o.Missing:
			missing++
			fmt.Fprintf(tw, "%s\tmissing\t\n", o.Object)
		case o.Changed:
			for _, d := range o.Diffs {
				if !contains(o.Refused, d) {
					fmt.Fprintf(tw, "%s\tchanged\t%s: %s → %s\n", o.Object, d.Setting, d.Stored, d.Wanted)
				}
			}
		}
		for _, d := range o.Refused {
			refused++
			why := "run with -apply"
			switch {
			case d.Immutable:
				why = "cannot change in place"
			case d.Shrinks && mode >= events.ApplyGrow:
				why = "shrinks: add -allow-shrink"
			}
			fmt.Fprintf(tw, "%s\tdiffers\t%s: stored %s, flag %s (%s)\n", o.Object, d.Setting, d.Stored, d.Wanted, why)
		}
	}
	_ = tw.Flush()
	switch {
	case missing == 0 && refused == 0:
		fmt.Fprintln(w, "the NATS layout matches the flags")
	case mode == events.LookupOnly:
		fmt.Fprintf(w, "%d missing, %d different; nothing was changed (add -apply)\n", missing, refused)
	default:
		fmt.Fprintf(w, "%d missing, %d different and not changed\n", missing, refused)
	}
}

func contains(ds []events.Difference, d events.Difference) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// retireLayout1 is the upgrade from zohook's first layout: the old stream
// stops taking events, its workers drain it, the journal of its dead
// letters is carried over. It deletes nothing.
func retireLayout1(ctx context.Context, bb *Backbone, patience time.Duration, stdout, stderr io.Writer) int {
	l1, err := events.FindLayout1(ctx, bb.JS)
	if err != nil {
		fmt.Fprintln(stderr, "setup:", err)
		return ExitFailure
	}
	if l1 == nil {
		fmt.Fprintf(stdout, "no stream %s here: nothing to retire\n", events.Layout1Stream)
		return ExitOK
	}
	if l1.Active {
		if err := l1.Retire(ctx, bb.JS); err != nil {
			fmt.Fprintln(stderr, "setup:", err)
			return ExitFailure
		}
		fmt.Fprintf(stdout, "%s no longer takes events (subjects → %s; its %d messages stay): layout-1 receivers now answer errors, which Zoho retries or reconciliation catches up\n",
			events.Layout1Stream, events.Layout1RetiredSubject, l1.Messages)
	}
	deadline := time.Now().Add(patience)
	var said time.Time
	for {
		// A layout-1 process that starts takes the subjects back (that
		// layout set its stream up at every start): retire it again; what
		// its receivers stored meanwhile is counted below and drained too.
		if again, err := events.FindLayout1(ctx, bb.JS); err == nil && again != nil && again.Active {
			if err := again.Retire(ctx, bb.JS); err != nil {
				fmt.Fprintln(stderr, "setup:", err)
				return ExitFailure
			}
			fmt.Fprintf(stdout, "%s took events again (a layout-1 process started): retired again\n", events.Layout1Stream)
		}
		n, err := l1.Unhandled(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "setup:", err)
			return ExitFailure
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "setup: %d events of %s are not handled yet: keep (or start) a layout-1 worker until they are, then run this again (nothing else was changed)\n", n, events.Layout1Stream)
			return ExitFailure
		}
		if time.Since(said) >= 5*time.Second {
			fmt.Fprintf(stdout, "waiting for the layout-1 workers: %d events of %s left\n", n, events.Layout1Stream)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "setup:", ctx.Err())
			return ExitFailure
		case <-time.After(500 * time.Millisecond):
		}
	}
	// A layout-1 process restarted meanwhile may have taken the subjects back.
	if l1, err = events.FindLayout1(ctx, bb.JS); err != nil || (l1 != nil && l1.Active) {
		fmt.Fprintf(stderr, "setup: %s takes events again (a layout-1 process restarted?): stop the layout-1 receivers and run this again\n", events.Layout1Stream)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "%s is drained\n", events.Layout1Stream)
	n, err := importLayout1Journal(ctx, bb)
	if err != nil {
		fmt.Fprintln(stderr, "setup: carrying the journal of the dead letters over:", err)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "journal: the steps of %d dead letters carried over (a replay will not repeat what they did)\n", n)
	return ExitOK
}

// importLayout1Journal converts the layout-1 journal of every dead letter.
func importLayout1Journal(ctx context.Context, bb *Backbone) (int, error) {
	if _, err := bb.JS.Stream(ctx, worker.DefaultDLQStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if _, err := bb.JS.KeyValue(ctx, worker.DefaultJournalBucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	dlq, err := worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{}, nil)
	if err != nil {
		return 0, err
	}
	journal, err := worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{})
	if err != nil {
		return 0, err
	}
	n := 0
	for dl, err := range dlq.List(ctx) {
		if err != nil {
			return n, err
		}
		if dl.Event == nil {
			continue
		}
		wrote, err := journal.ImportLayout1(ctx, dl.Event.ID, dl.Event.Module)
		if err != nil {
			return n, err
		}
		if wrote {
			n++
		}
	}
	return n, nil
}
