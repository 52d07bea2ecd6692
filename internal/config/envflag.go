// Package config binds command-line flags to ZOHOOK_* environment variables,
// so every flag of every zohook binary can also be set from the environment
// (12-factor deployments, Kubernetes, systemd units).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
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

// ParseCommand parses a command's flags, the one convention of every
// zohook command: -h prints the usage to stdout and exits 0; a bad flag
// prints the error and the usage to stderr and exits 2; configuration
// flags then read ZOHOOK_* (action flags never do); more than maxArgs
// positional arguments (maxArgs < 0: any number) is a usage error. ok is
// false when the caller must return code.
func ParseCommand(fs *flag.FlagSet, args []string, getenv func(string) string, stdout, stderr io.Writer, maxArgs int) (code int, ok bool) {
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
	if getenv != nil {
		if err := ApplyEnv(fs, "ZOHOOK_", getenv); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			return ExitUsage, false
		}
	}
	if maxArgs >= 0 && fs.NArg() > maxArgs {
		extra := fs.Arg(maxArgs)
		if strings.HasPrefix(extra, "-") {
			fmt.Fprintf(stderr, "%s: unexpected argument %q: flags go before arguments (see -h)\n", fs.Name(), extra)
		} else {
			fmt.Fprintf(stderr, "%s: unexpected argument %q (see -h)\n", fs.Name(), extra)
		}
		return ExitUsage, false
	}
	return ExitOK, true
}

// EnvName returns the environment variable for a flag: prefix + the flag name
// in upper snake case ("nats-url" → "ZOHOOK_NATS_URL").
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// ApplyEnv sets every flag of fs that was not given on the command line from
// its environment variable, when that variable is set. Command-line flags win
// over the environment, which wins over defaults. Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet, prefix string, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || IsAction(f) {
			return
		}
		name := EnvName(prefix, f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			// The value itself may be a secret: name the variable, not the value.
			errs = append(errs, fmt.Sprintf("%s: invalid value for -%s: %v", name, f.Name, redactValue(err)))
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// redactValue keeps the parse error's reason but not the offending value,
// which flag's errors quote verbatim.
func redactValue(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return "parse error"
}

// Usage returns a flag.Usage function that lists every flag with its
// environment variable and default, under a one-line synopsis.
func Usage(fs *flag.FlagSet, prefix, synopsis string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags (each can also be set with the environment variable shown):\n", synopsis)
		PrintDefaults(w, fs, prefix)
	}
}

// PrintDefaults writes one block per flag: name, env var, default and help.
func PrintDefaults(w io.Writer, fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\n", f.Name, typ)
		if IsAction(f) {
			fmt.Fprint(w, "      (not read from the environment)")
		} else {
			fmt.Fprintf(w, "      env %s", EnvName(prefix, f.Name))
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			fmt.Fprintf(w, " (default %s)", defaultText(f))
		}
		fmt.Fprintf(w, "\n      %s\n", strings.ReplaceAll(usage, "\n", "\n      "))
	})
}

// defaultText prints a default the way it is typed: durations as 10m, not
// 10m0s; numbers and booleans bare; text quoted.
func defaultText(f *flag.Flag) string {
	if d, err := time.ParseDuration(f.DefValue); err == nil && strings.ContainsAny(f.DefValue, "hms") {
		return FormatDuration(d)
	}
	if _, err := strconv.ParseFloat(f.DefValue, 64); err == nil {
		return f.DefValue
	}
	if f.DefValue == "true" {
		return f.DefValue
	}
	return strconv.Quote(f.DefValue)
}

// StringList is a flag.Value for comma-separated lists; empty items are dropped.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set replaces the list: repeated flags and env values do not accumulate, so
// the environment cannot silently add to a list given on the command line.
func (l *StringList) Set(v string) error {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	*l = out
	return nil
}
