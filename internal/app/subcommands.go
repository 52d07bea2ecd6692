package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/config"
	"github.com/zohook/zohook/internal/config/configcmd"
	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/rules/rulescmd"
	"github.com/zohook/zohook/internal/worker"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/authcmd"
)

// WorkerSubcommand runs `worker <name> args...` when name is a command;
// ok is false when it is not (see WorkerMain).
func WorkerSubcommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer, getenv func(string) string) (code int, ok bool) {
	switch name {
	case "auth":
		return authcmd.RunWith(ctx, args, stdout, stderr, getenv, authcmd.Options{Fleet: &fleetTokens{}}), true
	case "rules":
		if isWhatIf(args) { // `rules test -history`: needs NATS (whatif.go)
			return whatIfCommand(ctx, args[1:], stdout, stderr, getenv), true
		}
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
	case "doctor":
		return doctorCommand(ctx, args, stdout, stderr, getenv), true
	case "version":
		return versionCommand(args, "worker", stdout, stderr), true
	case "help":
		return helpCommand(args, stdout, stderr), true
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
		if errors.Is(err, events.ErrNoLayout) {
			return nil, fmt.Errorf("%w (start the receiver, or run `worker setup -apply`)", err)
		}
		return nil, err
	}
	return bb, nil
}

// opsLogger is an operator command's logger: warnings and errors only.
func opsLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// verbHelp answers `worker CMD` without a verb (usage error) and
// `worker CMD -h` (help); ok is false when the caller must return code.
func verbHelp(args []string, synopsis string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		fmt.Fprintln(stderr, synopsis)
		return ExitUsage, false
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, synopsis)
		fmt.Fprintln(stdout, "\nRun with a command and -h for its flags.")
		fmt.Fprintln(stdout, ExitCodesHelp)
		return ExitOK, false
	}
	return 0, true
}

// writeJSON prints v indented, the -json output of every command.
func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "json:", err)
		return ExitFailure
	}
	return ExitOK
}

// dlqListJSON is `worker dlq list -json`.
type dlqListJSON struct {
	DeadLetters []dlqEntryJSON `json:"dead_letters"`
	Count       int            `json:"count"`
}

type dlqEntryJSON struct {
	ID string `json:"id"` // the event id, or seq-N for a stored message that is not an event
	*worker.DeadLetter
}

func dlqCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker dlq list [-json] [flags]
       worker dlq show [flags] EVENT_ID
       worker dlq replay [flags] EVENT_ID
       worker dlq replay -all [flags]
       worker dlq replay -in-doubt done|resend [flags] EVENT_ID

Dead letters are events that failed permanently or ran out of deliveries.
replay runs them again with the current rules; steps already done are not repeated.
An event dead-lettered "in doubt" (a step with in_doubt: dead_letter that may or
may not have reached Zoho) needs your decision after checking Zoho: -in-doubt done
(it happened: record it, send nothing) or -in-doubt resend (it did not: send it).
show prints the dead letter as JSON; an unknown EVENT_ID exits 3.`
	if code, ok := verbHelp(args, synopsis, stdout, stderr); !ok {
		return code
	}
	verb := args[0]
	fs, o := opsFlags("dlq "+verb, synopsis, stderr)
	var asJSON, all *bool
	var inDoubt *string
	maxArgs := 0
	switch verb {
	case "list":
		asJSON = config.ActionBool(fs, "json", "print the dead letters as JSON: {\"dead_letters\": [...], \"count\": N}")
	case "show":
		maxArgs = 1
	case "replay":
		maxArgs = 1
		all = config.ActionBool(fs, "all", "replay every dead letter")
		inDoubt = config.ActionString(fs, "in-doubt", "for an event dead-lettered in doubt: `done` (Zoho did the step) or resend (it did not)")
	default:
		fmt.Fprintf(stderr, "dlq: unknown command %q\n%s\n", verb, synopsis)
		return ExitUsage
	}
	if code, ok := parseCommand(fs, args[1:], getenv, stdout, stderr, maxArgs); !ok {
		return code
	}
	switch {
	case verb == "show" && fs.NArg() != 1:
		fmt.Fprintln(stderr, "dlq show: give one EVENT_ID")
		return ExitUsage
	case verb == "replay" && *all == (fs.NArg() == 1):
		fmt.Fprintln(stderr, "dlq replay: give one EVENT_ID or -all")
		return ExitUsage
	case verb == "replay" && *inDoubt != "" && *all:
		fmt.Fprintln(stderr, "dlq replay: -in-doubt is a decision about one event: give its EVENT_ID, not -all")
		return ExitUsage
	case verb == "replay" && *inDoubt != "" && *inDoubt != worker.InDoubtDone && *inDoubt != worker.InDoubtResend:
		fmt.Fprintf(stderr, "dlq replay: -in-doubt %q: want done or resend\n", *inDoubt)
		return ExitUsage
	}
	bb, err := openOps(ctx, *o, "zohook-dlq", opsLogger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "dlq:", err)
		return ExitFailure
	}
	defer bb.Close()
	dlq, err := worker.OpenDLQ(ctx, bb.JS, worker.DLQConfig{Replicas: bb.Stream.Replicas}, events.NewPublisher(bb.JS, bb.Stream))
	if err != nil {
		fmt.Fprintln(stderr, "dlq:", err)
		return ExitFailure
	}
	switch verb {
	case "list":
		var list []*worker.DeadLetter
		for dl, err := range dlq.List(ctx) {
			if err != nil {
				fmt.Fprintln(stderr, "dlq:", err)
				return ExitFailure
			}
			list = append(list, dl)
		}
		if *asJSON {
			out := dlqListJSON{DeadLetters: []dlqEntryJSON{}, Count: len(list)}
			for _, dl := range list {
				out.DeadLetters = append(out.DeadLetters, dlqEntryJSON{ID: dl.ID(), DeadLetter: dl})
			}
			return writeJSON(stdout, stderr, out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT ID\tDEAD AT\tSOURCE\tMODULE\tOP\tRECORD\tRULE/STEP\tATTEMPTS\tERROR")
		for _, dl := range list {
			ev := dl.Event
			if ev == nil {
				ev = &events.Envelope{Source: "-", Module: "-", Operation: "-", RecordID: "-"} // not an event: its raw bytes are kept
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%d\t%s\n", dl.ID(), dl.DeadAt.Format(time.RFC3339), ev.Source,
				ev.Module, ev.Operation, ev.RecordID, dl.Rule, dl.Step, dl.Attempts, truncate(dl.Error, 80))
		}
		_ = tw.Flush()
		fmt.Fprintf(stdout, "%d dead letter(s)\n", len(list))
		return ExitOK
	case "show":
		dl, err := dlq.Get(ctx, fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "dlq:", err)
			return notFoundCode(err)
		}
		return writeJSON(stdout, stderr, dl)
	}
	// replay
	var ids []string
	if *all {
		for dl, err := range dlq.List(ctx) {
			if err != nil {
				fmt.Fprintln(stderr, "dlq:", err)
				return ExitFailure
			}
			ids = append(ids, dl.ID())
		}
	} else {
		ids = []string{fs.Arg(0)}
	}
	var journal *worker.Journal
	if *inDoubt != "" {
		if journal, err = worker.OpenJournal(ctx, bb.JS, worker.JournalConfig{Replicas: bb.Stream.Replicas, TTL: worker.JournalTTL(bb.Stream.HistoryMaxAge)}); err != nil {
			fmt.Fprintln(stderr, "dlq:", err)
			return ExitFailure
		}
	}
	for _, id := range ids {
		replay := func() error { return dlq.Replay(ctx, id) }
		if journal != nil {
			replay = func() error { return dlq.ReplayInDoubt(ctx, journal, id, *inDoubt) }
		}
		if err := replay(); err != nil {
			fmt.Fprintln(stderr, "dlq:", err)
			return notFoundCode(err)
		}
		fmt.Fprintf(stdout, "replayed %s\n", id)
	}
	fmt.Fprintf(stdout, "%d event(s) replayed\n", len(ids))
	return ExitOK
}

func notFoundCode(err error) int {
	if errors.Is(err, worker.ErrNotFound) {
		return ExitNotFound
	}
	return ExitFailure
}

// replayJSON is `worker replay -json`.
type replayJSON struct {
	DryRun  bool      `json:"dry_run"`
	Since   time.Time `json:"since"`
	Subject string    `json:"subject"`
	// Events re-published (dry run: that would be).
	Events int `json:"events"`
	// BySubject counts them by subject without the partition and record
	// tokens: zoho.<source>.<connection>.<module>.<operation>.
	BySubject map[string]int `json:"by_subject"`
}

// subjectGroup is an event subject without its partition and record
// tokens: zoho.crm.notify.default.deals.update.
func subjectGroup(subject string) string {
	t := strings.Split(subject, ".")
	if len(t) == events.SubjectTokens {
		return strings.Join(t[:events.SubjectTokens-2], ".")
	}
	return subject
}

func replayCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker replay -since DURATION [-subject FILTER] [-dry-run] [-json] [flags]

Re-publishes every event the history stream (ZOHOOK_HISTORY) received in the
last DURATION (for example 2h) so the current rules process it again. Steps
already done for an event are not repeated. -subject narrows it, e.g.
zoho.crm.notify.*.deals.> (module in lower case). -dry-run reads the history
and prints how many events per subject would be replayed, changing nothing.
A replay shows its progress on stderr and a summary at the end.`
	fs, o := opsFlags("replay", synopsis, stderr)
	since := config.ActionDuration(fs, "since", "replay events received within this `duration` (required), e.g. 2h")
	subject := config.ActionString(fs, "subject", "only events whose subject matches this `filter` (default every event)")
	dryRun := config.ActionBool(fs, "dry-run", "count the events per subject that would be replayed; publish nothing")
	asJSON := config.ActionBool(fs, "json", "print the summary as JSON: {\"dry_run\", \"since\", \"subject\", \"events\", \"by_subject\"}")
	if code, ok := parseCommand(fs, args, getenv, stdout, stderr, 0); !ok {
		return code
	}
	if *since <= 0 {
		fmt.Fprintln(stderr, "replay: -since is required (e.g. -since 2h)")
		return ExitUsage
	}
	bb, err := openOps(ctx, *o, "zohook-replay", opsLogger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		return ExitFailure
	}
	defer bb.Close()
	from := time.Now().Add(-*since)
	filter := *subject
	if filter == "" {
		filter = events.SubjectPrefix + ".>"
	}
	counts := map[string]int{}
	verb := "re-published"
	if *dryRun {
		verb = "would be re-published"
	}
	var lastLine time.Time
	opts := worker.ReplayOptions{
		DryRun:  *dryRun,
		OnEvent: func(subj string, _ *events.Envelope) { counts[subjectGroup(subj)]++ },
	}
	if !*dryRun {
		opts.Progress = func(p worker.ReplayProgress) {
			if time.Since(lastLine) < time.Second && p.Read < p.Total {
				return
			}
			lastLine = time.Now()
			fmt.Fprintf(stderr, "replay: %d of %d history message(s) read, %d event(s) re-published\n", p.Read, p.Total, p.Replayed)
		}
	}
	var pub *events.Publisher
	if !*dryRun {
		pub = events.NewPublisher(bb.JS, bb.Stream)
	}
	n, err := worker.ReplayHistory(ctx, bb.JS, bb.Stream, pub, from, filter, opts)
	if err != nil {
		fmt.Fprintln(stderr, "replay:", err)
		if n > 0 && !*dryRun {
			fmt.Fprintf(stderr, "replay: %d event(s) were re-published before it failed; running it again re-publishes them again (done steps are not repeated)\n", n)
		}
		return ExitFailure
	}
	if *asJSON {
		return writeJSON(stdout, stderr, replayJSON{DryRun: *dryRun, Since: from.UTC(), Subject: filter, Events: n, BySubject: counts})
	}
	fmt.Fprintf(stdout, "history since %s (%s ago), subject %s\n", from.UTC().Format(time.RFC3339), config.FormatDuration(*since), filter)
	if len(counts) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SUBJECT\tEVENTS")
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			fmt.Fprintf(tw, "%s\t%d\n", k, counts[k])
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(stdout, "%d event(s) %s\n", n, verb)
	if *dryRun {
		fmt.Fprintln(stdout, "dry run: nothing was published")
	}
	return ExitOK
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// statusJSON is `worker status -json`.
type statusJSON struct {
	Stream   string    `json:"stream"`
	Events   uint64    `json:"events"`
	Bytes    uint64    `json:"bytes"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	Replicas int       `json:"replicas"`
	Leader   string    `json:"leader,omitempty"`
	// Partitions: one per partition, in order.
	Partitions []statusPartition `json:"partitions"`
	// Workers: the live worker processes, by name.
	Workers []statusWorker `json:"workers"`
	// Totals over the partitions.
	Pending       uint64    `json:"pending"`
	AckPending    int       `json:"ack_pending"`
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
	DeadLetters   uint64    `json:"dead_letters"`
}

type statusPartition struct {
	Partition     int       `json:"partition"`
	Consumer      string    `json:"consumer"`
	Missing       bool      `json:"missing,omitempty"` // the consumer does not exist
	Pending       uint64    `json:"pending"`
	AckPending    int       `json:"ack_pending"`
	Redelivered   int       `json:"redelivered"`
	WaitingPulls  int       `json:"waiting_pulls"`
	HeldBy        string    `json:"held_by"` // worker name; "" when no live worker holds it
	LastDelivered time.Time `json:"last_delivered,omitzero"`
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
}

type statusWorker struct {
	Name       string    `json:"name"`
	Host       string    `json:"host,omitempty"`
	PID        int       `json:"pid,omitempty"`
	Holds      []int     `json:"holds"`
	Partitions int       `json:"partitions"`
	Heartbeat  time.Time `json:"heartbeat"`
}

// statusCommand prints the work stream, each partition's backlog and the
// worker holding it, the workers and the dead-letter count: the first
// thing to look at when events seem late.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const synopsis = `usage: worker status [-json] [flags]

Prints the work stream, each partition's backlog (pending: not yet delivered;
ack pending: delivered, not yet done; oldest waiting: how late it runs) and
the worker holding it, the live workers with their partitions, and the
number of dead letters.`
	fs, o := opsFlags("status", synopsis, stderr)
	asJSON := config.ActionBool(fs, "json", "print the status as JSON (shape in the README)")
	if code, ok := parseCommand(fs, args, getenv, stdout, stderr, 0); !ok {
		return code
	}
	bb, err := openOps(ctx, *o, "zohook-status", opsLogger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return ExitFailure
	}
	defer bb.Close()
	st, err := readStatus(ctx, bb)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return ExitFailure
	}
	if *asJSON {
		return writeJSON(stdout, stderr, st)
	}
	fmt.Fprintf(stdout, "stream %s: %d events, %d bytes", st.Stream, st.Events, st.Bytes)
	if st.Events > 0 {
		fmt.Fprintf(stdout, ", %s … %s", st.First.UTC().Format(time.RFC3339), st.Last.UTC().Format(time.RFC3339))
	}
	if st.Leader != "" && st.Replicas > 1 {
		fmt.Fprintf(stdout, ", leader %s, %d replicas", st.Leader, st.Replicas)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tPENDING\tACK PENDING\tOLDEST WAITING\tREDELIVERED\tHELD BY\tLAST DELIVERY")
	for _, p := range st.Partitions {
		if p.Missing {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\t(consumer %s missing: run `worker setup -apply`)\t\n", p.Partition, p.Consumer)
			continue
		}
		last := "never"
		if !p.LastDelivered.IsZero() {
			last = p.LastDelivered.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%d\t%s\t%s\n", p.Partition, p.Pending, p.AckPending, ago(p.OldestWaiting), p.Redelivered, orDash(p.HeldBy), last)
	}
	_ = tw.Flush()
	if len(st.Workers) == 0 {
		fmt.Fprintln(stdout, "workers: none alive: nothing handles the events (start `worker`)")
	} else {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tHOST\tPID\tPARTITIONS\tLAST HEARTBEAT")
		for _, w := range st.Workers {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d %s\t%s\n", w.Name, orDash(w.Host), w.PID, w.Partitions, intList(w.Holds), ago(w.Heartbeat))
		}
		_ = tw.Flush()
	}
	if unheld := unheldPartitions(st.Partitions); len(unheld) > 0 && len(st.Workers) > 0 {
		fmt.Fprintf(stdout, "partitions held by no worker: %s (their events wait; a handover takes seconds, more means trouble: see the workers' logs)\n", intList(unheld))
	}
	fmt.Fprintf(stdout, "total: %d pending, %d ack pending; %d dead letter(s)", st.Pending, st.AckPending, st.DeadLetters)
	if st.DeadLetters > 0 {
		fmt.Fprint(stdout, " (worker dlq list)")
	}
	fmt.Fprintln(stdout)
	return ExitOK
}

// readStatus reads what `worker status` shows (also used by doctor).
func readStatus(ctx context.Context, bb *Backbone) (*statusJSON, error) {
	s, err := bb.JS.Stream(ctx, bb.Stream.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bb.Stream.Name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bb.Stream.Name, err)
	}
	backlog, err := worker.Backlog(ctx, bb.JS, bb.Stream, bb.Consumer)
	if err != nil {
		return nil, err
	}
	members, err := worker.ReadMembers(ctx, bb.JS)
	if err != nil {
		return nil, err
	}
	st := &statusJSON{Stream: info.Config.Name, Events: info.State.Msgs, Bytes: info.State.Bytes, Replicas: info.Config.Replicas,
		Partitions: []statusPartition{}, Workers: []statusWorker{}}
	if info.State.Msgs > 0 {
		st.First, st.Last = info.State.FirstTime, info.State.LastTime
	}
	if info.Cluster != nil {
		st.Leader = info.Cluster.Leader
	}
	holders := worker.Holders(members, len(backlog))
	for _, b := range backlog {
		st.Partitions = append(st.Partitions, statusPartition{Partition: b.Partition, Consumer: b.Consumer, Missing: b.Missing,
			Pending: b.Pending, AckPending: b.AckPending, Redelivered: b.Redelivered, WaitingPulls: b.Waiting,
			HeldBy: holders[b.Partition], LastDelivered: b.LastDelivered, OldestWaiting: b.OldestWaiting})
		st.Pending += b.Pending
		st.AckPending += b.AckPending
		if !b.OldestWaiting.IsZero() && (st.OldestWaiting.IsZero() || b.OldestWaiting.Before(st.OldestWaiting)) {
			st.OldestWaiting = b.OldestWaiting
		}
	}
	for _, m := range members {
		st.Workers = append(st.Workers, statusWorker{Name: m.Name, Host: m.Host, PID: m.PID, Holds: m.Holds, Partitions: len(m.Holds), Heartbeat: m.At})
	}
	if d, err := lookupDLQ(ctx, bb); err == nil {
		st.DeadLetters = d
	} else {
		return nil, err
	}
	return st, nil
}

// lookupDLQ counts the dead letters without creating anything.
func lookupDLQ(ctx context.Context, bb *Backbone) (uint64, error) {
	s, err := bb.JS.Stream(ctx, worker.DefaultDLQStream)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream: %w", err)
	}
	return info.State.Msgs, nil
}

func unheldPartitions(ps []statusPartition) []int {
	var out []int
	for _, p := range ps {
		if p.HeldBy == "" && !p.Missing {
			out = append(out, p.Partition)
		}
	}
	return out
}

// ago prints how long ago t was ("-" for never).
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return config.FormatDuration(time.Since(t).Round(time.Second)) + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// intList prints partitions as (0,2,5); "()" for none.
func intList(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return "(" + strings.Join(s, ",") + ")"
}

// fleetTokens gives `worker auth token` the fleet's shared access token
// (authcmd.Fleet): NATS connection flags, then sharedToken.
type fleetTokens struct{ o NATSOptions }

var _ authcmd.Fleet = (*fleetTokens)(nil)

func (f *fleetTokens) Register(fs *flag.FlagSet) {
	f.o.FailFast = true
	f.o.Register(fs, false)
}

// Token: the fleet's cached token, or one refresh shared with the fleet.
// NATS out of reach is not an error here: the command then refreshes
// without the cache and says so.
func (f *fleetTokens) Token(ctx context.Context, conn string, cfg zoho.Config) (*authcmd.SharedToken, error) {
	bb, err := OpenBackbone(ctx, f.o, "zohook-auth", false, slog.New(slog.DiscardHandler))
	if err != nil {
		st, rerr := refreshDirect(ctx, cfg)
		if rerr != nil {
			return nil, rerr
		}
		st.Note = err.Error() + "; the fleet's shared token could not be used, one refresh was spent"
		return st, nil
	}
	defer bb.Close()
	st, _, err := sharedToken(ctx, bb.JS, conn, cfg, "auth")
	return st, err
}

// zohoHTTP is the HTTP client of operator commands' Zoho calls.
var zohoHTTP = &http.Client{Timeout: 15 * time.Second}

// refreshDirect spends one refresh without the fleet.
func refreshDirect(ctx context.Context, cfg zoho.Config) (*authcmd.SharedToken, error) {
	g, err := zoho.NewOAuth(cfg, zohoHTTP).Refresh(ctx)
	if err != nil {
		return nil, err
	}
	return &authcmd.SharedToken{Token: &zoho.Token{AccessToken: g.AccessToken, APIDomain: g.APIDomain, Expiry: g.Expiry}, Grant: g}, nil
}

// recordingRefresher tells whether the fleet's token source spent a
// refresh, and keeps Zoho's answer (its scope).
type recordingRefresher struct {
	oauth *zoho.OAuth
	mu    sync.Mutex
	grant *zoho.Grant
	spent bool
}

func (r *recordingRefresher) Refresh(ctx context.Context) (*zoho.Grant, error) {
	g, err := r.oauth.Refresh(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spent, r.grant = true, g
	return g, err
}

func (r *recordingRefresher) result() (*zoho.Grant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.grant, r.spent
}

// sharedToken gets connection conn's access token the way workers do:
// the fleet's token from the zohook_tokens bucket when a valid one is
// cached (no refresh spent), else one refresh, shared with the fleet.
// Without the bucket (no layout yet) it refreshes directly. The token
// source it returns serves later calls of the command.
func sharedToken(ctx context.Context, js jetstream.JetStream, conn string, cfg zoho.Config, command string) (*authcmd.SharedToken, zoho.TokenSource, error) {
	if _, err := js.KeyValue(ctx, fleet.DefaultTokenBucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		st, err := refreshDirect(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		st.Note = "NATS has no " + fleet.DefaultTokenBucket + " bucket yet (no layout): one refresh was spent, not shared"
		return st, staticToken{st.Token}, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("token bucket: %w", err)
	}
	rec := &recordingRefresher{oauth: zoho.NewOAuth(cfg, zohoHTTP)}
	ts, err := fleet.NewTokenSource(ctx, js, rec, fleet.WithConnection(conn), fleet.WithTokenLogger(slog.New(slog.DiscardHandler)),
		fleet.WithHolderID("zohook-"+command+"-"+fleet.DefaultHolderID()))
	if err != nil {
		return nil, nil, err
	}
	tok, err := ts.Token(ctx)
	if err != nil {
		return nil, nil, err
	}
	g, spent := rec.result()
	return &authcmd.SharedToken{Token: tok, Cached: !spent, Grant: g, Shared: spent}, ts, nil
}

// staticToken is a token source of one token.
type staticToken struct{ t *zoho.Token }

func (s staticToken) Token(context.Context) (*zoho.Token, error) { return s.t, nil }
func (staticToken) Invalidate(context.Context, string)           {}
