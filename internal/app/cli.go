package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/zohook/zohook/internal/config"
)

// Exit codes of every zohook command (documented in -h and the README).
const (
	ExitOK       = config.ExitOK       // done
	ExitFailure  = config.ExitFailure  // the command ran and failed (NATS unreachable, a check failed...)
	ExitUsage    = config.ExitUsage    // wrong command, flag or argument
	ExitNotFound = config.ExitNotFound // the thing named does not exist (a dead letter id...)
)

// ExitCodesHelp is appended to every command's -h.
const ExitCodesHelp = config.ExitCodesHelp

// parseCommand parses a command's flags, the one convention of every
// command: -h prints the usage to stdout and exits 0; a bad flag prints the
// error and the usage to stderr and exits 2; configuration flags then read
// ZOHOOK_* (action flags never do); more than maxArgs positional arguments
// (maxArgs < 0: any number) is a usage error. ok is false when the caller
// must return code. See config.ParseCommand.
func parseCommand(fs *flag.FlagSet, args []string, getenv func(string) string, stdout, stderr io.Writer, maxArgs int) (code int, ok bool) {
	return config.ParseCommand(fs, args, getenv, stdout, stderr, maxArgs)
}

// workerCommand is one of `worker`'s commands, for -h and for the answer to
// an unknown one.
type workerCommand struct{ name, synopsis, summary string }

// workerCommands lists the worker's commands in the order -h shows them.
var workerCommands = []workerCommand{
	{"doctor", "doctor [-json]", "check everything zohook needs and say what to fix"},
	{"status", "status [-json]", "the work stream, each partition's backlog and worker, the workers, dead letters"},
	{"dlq", "dlq list|show ID|replay ID|replay -all", "dead letters: list, inspect, run again"},
	{"replay", "replay -since DURATION [-subject FILTER] [-dry-run] [-json]", "run events from the history again"},
	{"channels", "channels list|sync|disable", "CRM notification channels"},
	{"setup", "setup [-apply [-allow-shrink]]", "show or change the NATS layout"},
	{"rules", "rules check|schema|test ...", "check, describe and test rules files"},
	{"config", "config schema|check FILE", "the -config file's JSON Schema and checks"},
	{"auth", "auth exchange|login|revoke|token", "Zoho OAuth: get, check and revoke tokens"},
	{"version", "version [-json]", "print the version (also -version)"},
	{"help", "help", "print this help"},
}

// SubcommandSynopsis lists the worker's commands for -h.
func SubcommandSynopsis() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range workerCommands {
		fmt.Fprintf(tw, "  worker %s\t%s\n", c.synopsis, c.summary)
	}
	_ = tw.Flush()
	return b.String()
}

const workerAbout = `usage: worker [flags]           consume events and run the rules (the worker itself)
       worker COMMAND [flags]   an operator command; "worker COMMAND -h" for its flags

Consumes events from JetStream, evaluates the rules and runs their actions
through the Zoho APIs.

Commands:
`

// WorkerMain is the worker binary: a command when the first argument is
// one, else the worker itself. It returns the exit code.
func WorkerMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if code, ok := WorkerSubcommand(ctx, args[0], args[1:], stdout, stderr, getenv); ok {
			return code
		}
		fmt.Fprintf(stderr, "worker: unknown command %q%s\n\nCommands:\n%s", args[0], didYouMean(args[0]), SubcommandSynopsis())
		return ExitUsage
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o WorkerOptions
	o.Register(fs)
	version := config.ActionBool(fs, "version", "print the version and exit")
	fs.Usage = config.Usage(fs, "ZOHOOK_", workerAbout+strings.TrimSuffix(SubcommandSynopsis(), "\n"))
	if code, ok := parseCommand(fs, args, getenv, stdout, stderr, 0); !ok {
		return code
	}
	if *version {
		printVersion(stdout, "worker")
		return ExitOK
	}
	o.Getenv = getenv
	if err := RunWorker(ctx, o, stderr); err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		return exitCodeOf(err)
	}
	return ExitOK
}

const receiverAbout = `usage: receiver [flags]
       receiver version [-json]

Accepts Zoho callbacks, verifies them and stores one event per record in
NATS JetStream.`

// ReceiverMain is the receiver binary. It returns the exit code.
func ReceiverMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "version" {
		return versionCommand(args[1:], "receiver", stdout, stderr)
	}
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o ReceiverOptions
	o.Register(fs)
	version := config.ActionBool(fs, "version", "print the version and exit")
	fs.Usage = config.Usage(fs, "ZOHOOK_", receiverAbout)
	if code, ok := parseCommand(fs, args, getenv, stdout, stderr, 0); !ok {
		return code
	}
	if *version {
		printVersion(stdout, "receiver")
		return ExitOK
	}
	o.Getenv = getenv
	if err := RunReceiver(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "receiver:", err)
		return exitCodeOf(err)
	}
	return ExitOK
}

// exitCodeOf maps a program's error to its exit code.
func exitCodeOf(err error) int {
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}

// versionCommand runs `version [-json]`.
func versionCommand(args []string, program string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(program+" version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := config.ActionBool(fs, "json", "print the version as JSON")
	fs.Usage = config.Usage(fs, "ZOHOOK_", "usage: "+program+" version [-json]\n\nPrints the module version, the VCS revision and time the binary was built from, and the Go version.")
	if code, ok := parseCommand(fs, args, nil, stdout, stderr, 0); !ok {
		return code
	}
	if *asJSON {
		return writeJSON(stdout, stderr, BuildVersion(program))
	}
	printVersion(stdout, program)
	return ExitOK
}

// helpCommand runs `worker help`.
func helpCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if c, ok := findCommand(args[0]); ok {
			fmt.Fprintf(stdout, "worker %s\n    %s\nRun \"worker %s -h\" for its flags.\n", c.synopsis, c.summary, c.name)
			return ExitOK
		}
		fmt.Fprintf(stderr, "worker help: unknown command %q%s\n", args[0], didYouMean(args[0]))
		return ExitUsage
	}
	fmt.Fprint(stdout, workerAbout+SubcommandSynopsis())
	fmt.Fprintln(stdout, "\nRun \"worker -h\" for the worker's own flags, \"worker COMMAND -h\" for a command's.")
	fmt.Fprintln(stdout, ExitCodesHelp)
	return ExitOK
}

func findCommand(name string) (workerCommand, bool) {
	for _, c := range workerCommands {
		if c.name == name {
			return c, true
		}
	}
	return workerCommand{}, false
}

// didYouMean suggests the closest command to a mistyped one ("" when none
// is close).
func didYouMean(name string) string {
	best, bestD := "", 3 // at most 2 edits
	for _, c := range workerCommands {
		if d := editDistance(strings.ToLower(name), c.name); d < bestD {
			best, bestD = c.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// one edit: "stauts" is one edit from "status").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
