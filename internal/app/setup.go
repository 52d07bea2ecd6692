package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/events"
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

The NATS layout (streams, partition consumers, buckets) is created by the
receiver at its first start, from its flags. This command is the way to
change it later: run it with the settings you want; it never shrinks
retention, limits or replicas unless -allow-shrink is given.`
	fs, o := opsFlags("setup", synopsis, stderr)
	var lo LayoutOptions
	lo.Register(fs)
	apply := config.ActionBool(fs, "apply", "create what is missing and apply the differences (without it nothing changes)")
	shrink := config.ActionBool(fs, "allow-shrink", "with -apply, also apply changes that shrink retention, limits or replicas")
	asJSON := config.ActionBool(fs, "json", "print the result as JSON")
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
