package fleet_test

import (
	"context"
	"errors"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zohook/zohook/internal/fleet"
	"github.com/zohook/zohook/internal/zoho"
)

// Example shows how a worker wires the fleet pieces (compiled, not run: it
// needs a NATS server and Zoho credentials).
func Example() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := zoho.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	// One access token for every worker process.
	ts, err := fleet.NewTokenSource(ctx, js, zoho.NewOAuth(cfg, nil), fleet.WithConnection("default"))
	if err != nil {
		log.Fatal(err)
	}
	// Client-side limits shared by the fleet ("" or "0" = unlimited).
	n, per, err := fleet.ParseRate("100/1m")
	if err != nil {
		log.Fatal(err)
	}
	crm, err := fleet.NewRateLimiter(ctx, js, "default.crm", n, per)
	if err != nil {
		log.Fatal(err)
	}
	client, err := zoho.NewClient(cfg, zoho.WithTokenSource(ts), zoho.WithCRMLimiter(crm))
	if err != nil {
		log.Fatal(err)
	}
	_ = client
	// A singleton job: only one process renews notification channels.
	lease, err := fleet.NewLease(js, "channel-renewal", fleet.DefaultHolderID(), 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	for ctx.Err() == nil {
		err := lease.Hold(ctx, func(ctx context.Context) {
			// renew channels until ctx is done (lease lost or shutdown)
		})
		if errors.Is(err, fleet.ErrLeaseLost) {
			log.Print("lost the channel-renewal lease; competing again")
		}
	}
}
