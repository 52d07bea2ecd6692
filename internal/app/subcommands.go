package app

import (
	"context"
	"io"
)

// SubcommandSynopsis lists the worker's operator subcommands for -h.
const SubcommandSynopsis = "rules check|test ... | auth exchange|login|revoke|token ..."

// WorkerSubcommand runs `worker <name> args...` when name is a subcommand;
// ok is false when it is not (the caller then parses worker flags).
func WorkerSubcommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer, getenv func(string) string) (code int, ok bool) {
	switch name {
	default:
		return 0, false
	}
}
