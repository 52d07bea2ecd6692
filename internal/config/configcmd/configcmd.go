// Package configcmd implements `worker config schema|check`: the JSON
// Schema of the -config file, for editors and CI, and a check of a file
// with the worker's own parser.
package configcmd

import (
	"context"
	"fmt"
	"io"

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

// Run runs `config ARGS...` and returns the process exit code.
func Run(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "schema":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "config schema: takes no arguments\n\n%s", usage)
			return 2
		}
		data, err := SchemaJSON()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if _, err := stdout.Write(data); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case "check":
		if len(args) != 2 {
			fmt.Fprintf(stderr, "config check: want one FILE\n\n%s", usage)
			return 2
		}
		f, err := config.LoadFile(args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK, %d connection(s), %d CRM workflow hook(s), %d Books hook(s)\n",
			args[1], len(f.Connections), len(f.Hooks.CRMWorkflow), len(f.Hooks.Books))
		return 0
	}
	fmt.Fprintf(stderr, "config: unknown command %q\n\n%s", args[0], usage)
	return 2
}
