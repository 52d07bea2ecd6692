// Command receiver accepts Zoho callbacks and stores them in JetStream.
// With -dev it runs the whole system in one process. See README.md.
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
	fs := flag.NewFlagSet("receiver", flag.ExitOnError)
	var o app.ReceiverOptions
	o.Register(fs)
	fs.Usage = config.Usage(fs, "ZOHOOK_", "usage: receiver [flags]\n\nAccepts Zoho callbacks, verifies them and stores one event per record in NATS JetStream.")
	_ = fs.Parse(os.Args[1:])
	if err := config.ApplyEnv(fs, "ZOHOOK_", os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunReceiver(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}
