// Command worker runs the rules on every event in JetStream, and hosts the
// operator commands (doctor, status, dlq, replay, channels, setup, rules,
// config, auth, version). See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zohook/zohook/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.WorkerMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
