package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

const orderRules = `
version: 1
rules:
  - name: record-order
    on: { source: crm.notify, module: Deals, operation: update }
    steps:
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "${event.id}" } }
`

// Two worker processes on one stream: the one holding the partitions
// stops half-way and the other takes over; they share one Zoho access token
// (the fake counts one refresh), and every record's events reach Zoho
// exactly once, in the order they were received.
func TestTwoWorkersShareTokenAndKeepPerRecordOrder(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	const records, perRecord = 6, 8
	deals := make([]string, records)
	for i := range deals {
		deals[i] = fake.CRMInsert("Deals", map[string]any{"Deal_Name": fmt.Sprintf("Deal %d", i), "Stage": "Qualification"})
	}
	n := startNATS(t)
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(orderRules), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(workerArgs(n), "-rules", rulesFile, "-concurrency", "4")
	w1 := startProc(t, "worker", zohoEnv(fake), args...)
	w2 := startProc(t, "worker", zohoEnv(fake), args...)

	pub := events.NewPublisher(n.js, events.StreamConfig{})
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			for r, id := range deals {
				ev := &events.Envelope{ID: fmt.Sprintf("ev-%d-%02d", r, i), Source: events.SourceCRMNotify, Connection: "default",
					Module: "Deals", Operation: events.OpUpdate, RecordID: id, ChangedFields: []string{"Stage"}, ReceivedAt: time.Now().UTC()}
				if _, err := pub.Publish(context.Background(), []*events.Envelope{ev}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	writes := func() int { return len(fake.CallsTo(http.MethodPut, "/crm/v8/Deals")) }
	publish(0, perRecord/2)
	waitFor(t, "the first half's writes", 30*time.Second, func() bool { return writes() >= records*perRecord/2 }, w1, w2)

	// Whichever process holds the partitions stops (SIGTERM): the other takes
	// them over after -pinned-ttl and reuses the stored token.
	busy, idle := w1, w2
	if !strings.Contains(w1.out.String(), "zoho call") {
		busy, idle = w2, w1
	}
	busy.stop(t)
	publish(perRecord/2, perRecord)
	waitFor(t, "every event's write", 30*time.Second, func() bool { return writes() >= records*perRecord }, idle)
	if !strings.Contains(idle.out.String(), "zoho call") {
		t.Fatalf("the second worker made no Zoho call:\n%s", idle.out)
	}

	got := map[string][]string{}
	for _, c := range fake.CallsTo(http.MethodPut, "/crm/v8/Deals") {
		var body struct {
			Data []map[string]any `json:"data"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil || len(body.Data) != 1 {
			t.Fatalf("PUT body %s: %v", c.Body, err)
		}
		id := strings.TrimPrefix(c.Path, "/crm/v8/Deals/")
		got[id] = append(got[id], body.Data[0]["Description"].(string))
	}
	for r, id := range deals {
		var want []string
		for i := range perRecord {
			want = append(want, fmt.Sprintf("ev-%d-%02d", r, i))
		}
		if strings.Join(got[id], ",") != strings.Join(want, ",") {
			t.Errorf("record %s written out of order or not exactly once:\n got %v\nwant %v", id, got[id], want)
		}
	}
	if refreshes := fake.TokenRefreshes(); refreshes != 1 {
		t.Errorf("the two workers minted %d access tokens, want 1 shared", refreshes)
	}
	idle.stop(t)
}
