package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// devToken is the CRM notification token -dev accepts when none is set.
const devToken = "zohook-dev-token"

// Demo data the example rules.yaml and the printed curl refer to.
const (
	demoDealID = "5725767000000524157" // the fake's seeded Closed Won deal
	demoItemID = "982000000030049"     // vars.books_item_id in the example rules.yaml
)

// devEnv is what -dev starts besides the receiver.
type devEnv struct {
	fake    *zohotest.Server
	closers []func()
}

func (d *devEnv) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// startDev applies -dev defaults: a known notification token, text logs,
// and a seeded fake Zoho when no Zoho credentials are configured, so a
// newcomer sees the whole product work without a Zoho account.
func startDev(_ context.Context, o *ReceiverOptions, log *slog.Logger) (*devEnv, error) {
	d := &devEnv{}
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
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	o.Worker.Getenv = getenv
	env, err := zoho.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if !env.HasCredentials() && o.ConfigFile == "" {
		d.fake = zohotest.NewServer(zohotest.WithLogger(log.With("component", "fake-zoho")))
		d.closers = append(d.closers, d.fake.Close)
		demo := d.fake.SeedDemo()
		d.fake.BooksInsert(demo.OrgID, "items", map[string]any{"item_id": demoItemID, "name": "Annual licence (rules.yaml demo item)", "rate": 1200})
		cr := d.fake.Credentials()
		o.Worker.ZohoOverride = &zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
			DC: "us", AccountsURL: d.fake.URL(), BooksOrgID: cr.OrgID}
		log.Info("dev mode: no Zoho credentials set, using a local fake Zoho", "url", d.fake.URL())
	}
	log.Info("dev mode: embedded NATS, receiver and worker in one process")
	return d, nil
}

// printDevBanner tells a newcomer where things are and how to send an event.
// token is the notification token the receiver accepts.
//
// The sample curl takes server_time from the shell's clock at each paste
// ('"$(date +%s)000"' closes and reopens the single-quoted body): the event
// id derives from server_time, so a fixed value made every later paste a
// duplicate (or, after the de-duplication window, a replay of the journal
// that called nothing). The token is printed only when it is the built-in
// dev token: a token the operator chose is a secret, and the banner lands
// in container logs.
func printDevBanner(w io.Writer, addr string, bb *Backbone, d *devEnv, token string) {
	host := addr
	if strings.HasPrefix(host, "[::]:") || strings.HasPrefix(host, ":") || strings.HasPrefix(host, "0.0.0.0:") {
		host = "localhost:" + host[strings.LastIndex(host, ":")+1:]
	}
	natsURL := "(in-process only)"
	if bb != nil && bb.Embedded != nil && bb.Embedded.ClientURL() != "" {
		natsURL = bb.Embedded.ClientURL()
	}
	zohoLine := "real Zoho (credentials from the environment / -config)"
	if d != nil && d.fake != nil {
		zohoLine = d.fake.URL() + "   (fake Zoho, seeded: Deal " + demoDealID + " is Closed Won)"
	}
	shownToken, tokenNote := token, ""
	if token != devToken {
		shownToken = "<your -crm-notify-tokens>"
		tokenNote = "\nReplace <your -crm-notify-tokens> with one of the tokens you set (-crm-notify-tokens or\n" +
			"ZOHOOK_CRM_NOTIFY_TOKENS); the banner does not print it.\n"
	}
	body := `{"server_time":'"$(date +%s)000"',"module":"Deals","ids":["` + demoDealID +
		`"],"operation":"update","affected_fields":["Stage"],"channel_id":"1000000068001","token":"` + shownToken + `"}`
	fmt.Fprintf(w, `
zohook is running (dev mode).
  receiver   http://%[1]s   (health: /healthz, readiness: /readyz, metrics: /metrics)
  NATS       %[2]s   (workers may join with: go run ./cmd/worker -nats-url %[2]s)
  Zoho       %[4]s

Send a sample Zoho CRM notification (a Deal moved to Closed Won); each paste is a new
event (server_time is the time of the paste, to the second):

  curl -sS -X POST http://%[1]s/zoho/crm/notify -H 'Content-Type: application/json' \
    -d '%[3]s'
%[5]s
The worker's log then shows each Zoho call the example rules.yaml makes: Books contact,
invoice, and the invoice number written back to the Deal.

`, host, natsURL, body, zohoLine, tokenNote)
}
