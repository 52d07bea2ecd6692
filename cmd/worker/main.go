// Command worker runs the rules on every event in JetStream, and hosts the
// operator subcommands (rules, auth, dlq, replay). See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/zohook/zohook/internal/app"
	"github.com/zohook/zohook/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 {
		if code, ok := app.WorkerSubcommand(ctx, os.Args[1], os.Args[2:], os.Stdout, os.Stderr, os.Getenv); ok {
			os.Exit(code)
		}
	}
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	var o app.WorkerOptions
	o.Register(fs)
	fs.Usage = config.Usage(fs, "ZOHOOK_", "usage: worker [flags]\n       worker "+app.SubcommandSynopsis+"\n\nConsumes events from JetStream, evaluates the rules and runs their actions through the Zoho APIs.")
	_ = fs.Parse(os.Args[1:])
	if err := config.ApplyEnv(fs, "ZOHOOK_", os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	if err := app.RunWorker(ctx, o, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
