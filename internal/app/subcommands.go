package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/config/configcmd"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/rules/rulescmd"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho/authcmd"
)

// SubcommandSynopsis lists the worker's operator subcommands for -h.
const SubcommandSynopsis = "rules check|schema|test ... | config schema|check ... | setup [-apply] | auth exchange|login|revoke|token ... | channels list|sync|disable | dlq list|show ID|replay ID|--all | replay -since DURATION | status"

// WorkerSubcommand runs `worker <name> args...` when name is a subcommand;
// ok is false when it is not (the caller then parses worker flags).
func WorkerSubcommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer, getenv func(string) string) (code int, ok bool) {
	switch name {
	case "auth":
		return authcmd.Run(ctx, args, stdout, stderr, getenv), true
	case "rules":
		return rulescmd.Run(ctx, args, stdout, stderr), true
	case "config":
		return configcmd.Run(ctx, args, stdout, stderr), true
	case "channels":
		return channelsCommand(ctx, args, stdout, stderr, getenv), true
	case "dlq":
		return dlqCommand(ctx, args, stdout, stderr, getenv), true
	case "replay":
		return replayCommand(ctx, args, stdout, stderr, getenv), true
	case "status":
		return statusCommand(ctx, args, stdout, stderr, getenv), true
	case "setup":
		return setupCommand(ctx, args, stdout, stderr, getenv), true
	}
	return 0, false
}

// opsFlags are the NATS connection flags every operator command takes. No
// operator command but `setup` takes the layout's flags: the streams,
// consumers and buckets are read from NATS, never reshaped by a command.
func opsFlags(name, synopsis string, stderr io.Writer) (*flag.FlagSet, *NATSOptions) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := NATSOptions{FailFast: true}
	o.Register(fs, false)
	fs.Usage = config.Usage(fs, "ZOHOOK_", synopsis)
	return fs, &o
}

// openOps connects an operator command to NATS (failing within seconds
// when it cannot) and reads the layout, changing nothing.
func openOps(ctx context.Context, o NATSOptions, name string, log *slog.Logger) (*Backbone, error) {
	bb, err := OpenBackbone(ctx, o, name, false, log)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := checkLayout(cctx, bb); err != nil {
		bb.Close()
		return nil, err
	}
	return bb, nil
}

func parseOps(fs *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if err := config.ApplyEnv(fs, "ZOHOOK_", getenv); err != nil {
		fmt.Fprintln(stderr, err)
		return false
	}
	return true
}

func dlqCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker dlq list [flags]
       worker dlq show [flags] EVENT_ID
       worker dlq replay [flags] EVENT_ID | --all
       worker dlq replay -in-doubt done|resend [flags] EVENT_ID

Dead letters are events that failed permanently or ran out of deliveries.
replay runs them again with the current rules; steps already done are not repeated.
An event dead-lettered "in doubt" (a step with in_doubt: dead_letter that may or
may not have reached Zoho) needs your decision after checking Zoho: -in-doubt done
(it happened: record it, send nothing) or -in-doubt resend (it did not: send it).`
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, synopsis)
		return 2
	}
	verb := args[0]
	fs, o := opsFlags("dlq "+verb, synopsis, stderr)
	all, inDoubt := false, ""
	if verb == "replay" {
		fs.BoolVar(&all, "all", false, "replay every dead letter")
		fs.StringVar(&inDoubt, "in-doubt", "", "for an event dead-lettered in doubt: `done` (Zoho did the step) or resend (it did not)")
	}
	if !parseOps(fs, args[1:], getenv, stderr) {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bb, err := openOps(ctx, *o, "zohook-dlq", log)
	if err != nil {
		fmt.Fprintln(stderr, "dlq:", err)
		return 1
	}
	defer bb.Close()
	dlq, err := worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{Replicas: bb.Stream.Replicas}, events.NewPublisher(bb.JS, bb.Stream))
	if err != nil {
		fmt.Fprintln(stderr, "dlq:", err)
		return 1
	}
	switch verb {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT ID\tDEAD AT\tSOURCE\tMODULE\tOP\tRECORD\tRULE/STEP\tATTEMPTS\tERROR")
		n := 0
		for dl, err := range dlq.List(ctx) {
			if err != nil {
				fmt.Fprintln(stderr, "dlq:", err)
				return 1
			}
			n++
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%d\t%s\n", dl.Event.ID, dl.DeadAt.Format(time.RFC3339), dl.Event.Source,
				dl.Event.Module, dl.Event.Operation, dl.Event.RecordID, dl.Rule, dl.Step, dl.Attempts, truncate(dl.Error, 80))
		}
		_ = tw.Flush()
		fmt.Fprintf(stdout, "%d dead letter(s)\n", n)
		return 0
	case "show":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "dlq show: give one EVENT_ID")
			return 2
		}
		dl, err := dlq.Get(ctx, fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "dlq:", err)
			return notFoundCode(err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(dl)
		return 0
	case "replay":
		var ids []string
		switch {
		case all && fs.NArg() == 0:
			for dl, err := range dlq.List(ctx) {
				if err != nil {
					fmt.Fprintln(stderr, "dlq:", err)
					return 1
				}
				ids = append(ids, dl.Event.ID)
			}
		case !all && fs.NArg() == 1:
			ids = []string{fs.Arg(0)}
		default:
			fmt.Fprintln(stderr, "dlq replay: give one EVENT_ID or --all")
			return 2
		}
		var journal *worker.Journal
		if inDoubt != "" {
			if all {
				fmt.Fprintln(stderr, "dlq replay: -in-doubt is a decision about one event: give its EVENT_ID, not --all")
				return 2
			}
			if journal, err = worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{Replicas: bb.Stream.Replicas, TTL: worker.JournalTTL(bb.Stream.HistoryMaxAge)}); err != nil {
				fmt.Fprintln(stderr, "dlq:", err)
				return 1
			}
		}
		for _, id := range ids {
			replay := func() error { return dlq.Replay(ctx, id) }
			if journal != nil {
				replay = func() error { return dlq.ReplayInDoubt(ctx, journal, id, inDoubt) }
			}
			if err := replay(); err != nil {
				fmt.Fprintln(stderr, "dlq:", err)
				return notFoundCode(err)
			}
			fmt.Fprintf(stdout, "replayed %s\n", id)
		}
		fmt.Fprintf(stdout, "%d event(s) replayed\n", len(ids))
		return 0
	}
	fmt.Fprintf(stderr, "dlq: unknown command %q\n%s\n", verb, synopsis)
	return 2
}

func notFoundCode(err error) int {
	if errors.Is(err, worker.ErrNotFound) {
		return 3
	}
	return 1
}

func replayCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker replay -since DURATION [-subject FILTER] [flags]

Re-publishes every event stored in the last DURATION (for example 2h) so the
current rules process it again. Steps already done for an event are not
repeated. -subject narrows it, e.g. zoho.crm.notify.*.Deals.>`
	fs, o := opsFlags("replay", synopsis, stderr)
	since := fs.Duration("since", 0, "replay events received within this `duration`")
	subject := fs.String("subject", "", "only events whose subject matches this `filter`")
	if !parseOps(fs, args, getenv, stderr) {
		return 2
	}
	if *since <= 0 {
		fmt.Fprintln(stderr, "replay: -since is required (e.g. -since 2h)")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bb, err := openOps(ctx, *o, "zohook-replay", log)
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		return 1
	}
	defer bb.Close()
	n, err := worker.ReplayHistory(ctx, bb.JS, bb.Stream, events.NewPublisher(bb.JS, bb.Stream), time.Now().Add(-*since), *subject)
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d event(s) re-published\n", n)
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// statusCommand prints the events stream, each partition's backlog and the
// dead-letter count: the first thing to look at when events seem late.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker status [flags]

Prints the events stream, each partition's backlog (pending: not yet delivered;
ack pending: delivered, not yet done), the worker process serving it, and the
number of dead letters.`
	fs, o := opsFlags("status", synopsis, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if !parseOps(fs, args, getenv, stderr) {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bb, err := openOps(ctx, *o, "zohook-status", log)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	defer bb.Close()
	st, err := bb.JS.Stream(ctx, bb.Stream.Name)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	info, err := st.Info(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	backlog, err := worker.Backlog(ctx, bb.JS, bb.Stream, events.ConsumerConfig{})
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	var dead uint64
	if d, err := worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{Replicas: bb.Stream.Replicas}, events.NewPublisher(bb.JS, bb.Stream)); err == nil {
		dead, _ = d.Count(ctx)
	}
	var pending uint64
	var ackPending int
	for _, b := range backlog {
		pending += b.Pending
		ackPending += b.AckPending
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"stream": info.Config.Name, "events": info.State.Msgs, "bytes": info.State.Bytes,
			"first": info.State.FirstTime, "last": info.State.LastTime, "partitions": backlog,
			"pending": pending, "ack_pending": ackPending, "dead_letters": dead})
		return 0
	}
	fmt.Fprintf(stdout, "stream %s: %d events, %d bytes", info.Config.Name, info.State.Msgs, info.State.Bytes)
	if info.State.Msgs > 0 {
		fmt.Fprintf(stdout, ", %s … %s", info.State.FirstTime.UTC().Format(time.RFC3339), info.State.LastTime.UTC().Format(time.RFC3339))
	}
	if info.Cluster != nil && info.Cluster.Leader != "" && info.Config.Replicas > 1 {
		fmt.Fprintf(stdout, ", leader %s, %d replicas", info.Cluster.Leader, info.Config.Replicas)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tCONSUMER\tPENDING\tACK PENDING\tOLDEST WAITING\tREDELIVERED\tWAITING PULLS\tSERVED BY\tLAST DELIVERY")
	for _, b := range backlog {
		if b.Missing {
			fmt.Fprintf(tw, "%d\t%s\t-\t-\t-\t-\t-\t(no consumer yet: no worker has started)\t\n", b.Partition, b.Consumer)
			continue
		}
		last := "never"
		if !b.LastDelivered.IsZero() {
			last = b.LastDelivered.UTC().Format(time.RFC3339)
		}
		by := b.Pinned
		if by == "" {
			by = "-"
		}
		oldest := "-"
		if !b.OldestWaiting.IsZero() {
			oldest = time.Since(b.OldestWaiting).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n", b.Partition, b.Consumer, b.Pending, b.AckPending, oldest, b.Redelivered, b.Waiting, by, last)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "total: %d pending, %d ack pending; %d dead letter(s)", pending, ackPending, dead)
	if dead > 0 {
		fmt.Fprint(stdout, " (worker dlq list)")
	}
	fmt.Fprintln(stdout)
	return 0
}
