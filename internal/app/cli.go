package app

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/zohook/zohook/internal/config"
)

// Exit codes of every zohook command (documented in -h and the README).
const (
	ExitOK       = 0 // done
	ExitFailure  = 1 // the command ran and failed (NATS unreachable, a check failed...)
	ExitUsage    = 2 // wrong command, flag or argument
	ExitNotFound = 3 // the thing named does not exist (a dead letter id...)
)

// ExitCodesHelp is appended to every command's -h.
const ExitCodesHelp = "\nExit codes: 0 ok, 1 failure, 2 usage error, 3 not found."

// parseCommand parses a command's flags, the one convention of every
// command: -h prints the usage to stdout and exits 0; a bad flag prints the
// error and the usage to stderr and exits 2; configuration flags then read
// ZOHOOK_* (action flags never do); more than maxArgs positional arguments
// (maxArgs < 0: any number) is a usage error. ok is false when the caller
// must return code.
func parseCommand(fs *flag.FlagSet, args []string, getenv func(string) string, stdout, stderr io.Writer, maxArgs int) (code int, ok bool) {
	usage := fs.Usage
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		usage()
		fmt.Fprintln(stdout, ExitCodesHelp)
		fs.SetOutput(out)
		return ExitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		fs.SetOutput(stderr)
		usage()
		fs.SetOutput(out)
		return ExitUsage, false
	}
	if err := config.ApplyEnv(fs, "ZOHOOK_", getenv); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return ExitUsage, false
	}
	if maxArgs >= 0 && fs.NArg() > maxArgs {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see -h)\n", fs.Name(), fs.Arg(maxArgs))
		return ExitUsage, false
	}
	return ExitOK, true
}
