package events_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/events/eventstest"
)

// An event over the server's max_payload can never be stored: the
// publisher says so at once (ErrTooLarge, for a 413) instead of retrying
// until the publish timeout and answering 503 forever.
func TestPublishTooLargeFailsAtOnce(t *testing.T) {
	env := eventstest.Start(t)
	pub := events.NewPublisher(env.JS, env.Stream, events.WithPublishTimeout(30*time.Second))
	big := `"` + strings.Repeat("x", 9<<20) + `"` // over the embedded server's 8 MiB
	e := &events.Envelope{ID: "ev-big", Source: events.SourceCRMWorkflow, Connection: "default", Module: "Deals",
		Operation: events.OpUpdate, RecordID: "1", Hook: "h", ReceivedAt: time.Now().UTC(), Raw: []byte(big)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pub.Publish(ctx, []*events.Envelope{e})
	if !errors.Is(err, events.ErrTooLarge) || errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrTooLarge (and not ErrUnavailable)", err)
	}
}
