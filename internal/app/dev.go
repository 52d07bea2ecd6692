package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// devToken is the CRM notification token -dev accepts when none is set.
const devToken = "zohook-dev-token"

// devEnv is what -dev starts besides the receiver.
type devEnv struct {
	closers []func()
}

func (d *devEnv) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// startDev applies -dev defaults: text logs, a known notification token.
func startDev(_ context.Context, o *ReceiverOptions, log *slog.Logger) (*devEnv, error) {
	if len(o.CRMTokens) == 0 {
		o.CRMTokens = []string{devToken}
	}
	if o.Worker.LogFormat == "" {
		o.Worker.LogFormat = "text"
	}
	if o.Worker.Concurrency == 0 {
		o.Worker.Concurrency = 8
	}
	o.Worker.NATS = o.NATS
	log.Info("dev mode: embedded NATS, receiver and worker in one process")
	return &devEnv{}, nil
}

// printDevBanner tells a newcomer where things are and how to send an event.
func printDevBanner(w io.Writer, addr string, bb *Backbone, _ *devEnv, token string) {
	host := addr
	if strings.HasPrefix(host, "[::]:") || strings.HasPrefix(host, ":") || strings.HasPrefix(host, "0.0.0.0:") {
		host = "localhost:" + host[strings.LastIndex(host, ":")+1:]
	}
	natsURL := "(in-process only)"
	if bb.Embedded != nil && bb.Embedded.ClientURL() != "" {
		natsURL = bb.Embedded.ClientURL()
	}
	body := fmt.Sprintf(`{"server_time":1764400000000,"module":"Deals","ids":["5725767000000524157"],"operation":"update","affected_fields":["Stage"],"channel_id":"1000000068001","token":"%s"}`, token)
	fmt.Fprintf(w, `
zohook is running (dev mode).
  receiver   http://%[1]s   (health: /healthz, readiness: /readyz, metrics: /metrics)
  NATS       %[2]s   (workers may join with: go run ./cmd/worker -nats-url %[2]s)

Send a sample Zoho CRM notification (a Deal moved to Closed Won):

  curl -sS -X POST http://%[1]s/zoho/crm/notify -H 'Content-Type: application/json' \
    -d '%[3]s'

`, host, natsURL, body)
}
