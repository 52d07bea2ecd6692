// Package configcmd implements `worker config schema|check`: the JSON
// Schema of the -config file, for editors and CI, and a check of a file
// with the worker's own parser.
package configcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/zohook/zohook/internal/config"
)

const usage = `Usage:
  config schema
  config check FILE

schema  prints the JSON Schema (draft 2020-12) of the -config file,
        generated from the definitions the worker reads it with. Point a
        YAML language server at it (docs/schema/config.schema.json is the
        checked-in copy) to get completion and checks in an editor.

check   reads FILE as the receiver and the worker do (unknown keys, hook
        names, secrets, modules) and reports every problem. Secrets are not
        resolved: the environment variables and files they name need not
        exist here. Exit 0 when valid, 1 when not.
`

// Run runs `config ARGS...` and returns the process exit code (0 ok, 1
// failure, 2 usage error; -h prints to stdout).
func Run(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return config.ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout, config.ExitCodesHelp)
		return config.ExitOK
	case "schema":
		if code, ok := parse("schema", args[1:], stdout, stderr, 0); !ok {
			return code
		}
		data, err := SchemaJSON()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return config.ExitFailure
		}
		if _, err := stdout.Write(data); err != nil {
			fmt.Fprintln(stderr, err)
			return config.ExitFailure
		}
		return config.ExitOK
	case "check":
		fs, code, ok := parseFlags("check FILE", args[1:], stdout, stderr, 1)
		if !ok {
			return code
		}
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "config check: want one FILE (see -h)")
			return config.ExitUsage
		}
		file := fs.Arg(0)
		f, err := config.LoadFile(file)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return config.ExitFailure
		}
		fmt.Fprintf(stdout, "%s: OK, %d connection(s), %d CRM workflow hook(s), %d Books hook(s)\n",
			file, len(f.Connections), len(f.Hooks.CRMWorkflow), len(f.Hooks.Books))
		return config.ExitOK
	}
	fmt.Fprintf(stderr, "config: unknown command %q\n\n%s", args[0], usage)
	return config.ExitUsage
}

// parse parses a subcommand without flags of its own: -h prints the usage
// to stdout, a flag or more than maxArgs arguments is a usage error.
func parse(synopsis string, args []string, stdout, stderr io.Writer, maxArgs int) (int, bool) {
	_, code, ok := parseFlags(synopsis, args, stdout, stderr, maxArgs)
	return code, ok
}

func parseFlags(synopsis string, args []string, stdout, stderr io.Writer, maxArgs int) (*flag.FlagSet, int, bool) {
	name, _, _ := strings.Cut(synopsis, " ")
	fs := flag.NewFlagSet("config "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(fs.Output(), "usage: worker config %s\n\n%s", synopsis, usage) }
	// No configuration flags: nothing to read from ZOHOOK_*.
	code, ok := config.ParseCommand(fs, args, nil, stdout, stderr, maxArgs)
	return fs, code, ok
}
