// Package config binds command-line flags to ZOHOOK_* environment variables,
// so every flag of every zohook binary can also be set from the environment
// (12-factor deployments, Kubernetes, systemd units).
package config

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
// 10m0s.
func defaultText(f *flag.Flag) string {
	if d, err := time.ParseDuration(f.DefValue); err == nil && strings.ContainsAny(f.DefValue, "hms") {
		return FormatDuration(d)
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
