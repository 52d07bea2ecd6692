package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// scaleRules: one Books invoice per event (reference_number: the event id,
// the side effect counted for exactly-once) and a stamp of the event id on
// the Deal (the order the fake saw the record's events in).
func scaleRules(customerID, itemID string) string {
	return chaosRules(customerID, itemID) + `
      - action: crm.update_record
        with: { module: Deals, id: "${event.record_id}", data: { Description: "${event.id}" } }
`
}

// Issue 11: worker processes share the partitions. Two workers start,
// a third joins while events flow, the first is SIGKILLed mid-run: every
// event accepted by the receiver gets exactly one invoice, each record's
// events reach Zoho in the order they were received, and every worker
// handled a share.
func TestWorkerBinariesShareJoinAndSurviveAKill(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	demo := fake.SeedDemo()
	const token = "scale-notify-token-4Fv"
	recv, base, natsURL, dataDir := receiverWithEmbeddedNATS(t, token)
	rulesFile := writeRules(t, scaleRules(demo.BooksContactID, demo.BooksItemID))
	worker := func(name string) *proc {
		return startProc(t, "worker", zohoEnv(fake), "-nats-url", natsURL, "-data-dir", dataDir, "-rules", rulesFile,
			"-admin-addr", "127.0.0.1:0", "-name", name, "-books-rate", "0", "-crm-rate", "0", "-log-format", "text",
			"-shutdown-grace", "5s", "-concurrency", "8")
	}
	w1, w2 := worker("w1"), worker("w2")
	var deals []string
	for i := range 30 {
		deals = append(deals, fake.CRMInsert("Deals", map[string]any{"Deal_Name": fmt.Sprint("deal ", i)}))
	}
	client := &http.Client{Timeout: 30 * time.Second}
	want := map[string][]string{} // deal → event ids in the order the receiver accepted them
	var w3 *proc
	const total = 300
	for i := range total {
		deal := deals[i%len(deals)]
		body, _ := json.Marshal(map[string]any{"server_time": time.Now().UnixMilli()*1000 + int64(i), "module": "Deals", "ids": []string{deal},
			"operation": "update", "affected_fields": []string{"Stage"}, "channel_id": "1000000068001", "token": token})
		resp, err := client.Post(base+"/zoho/crm/notify", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			EventIDs []string `json:"event_ids"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(out.EventIDs) != 1 {
			t.Fatalf("notification %d: %d %v", i, resp.StatusCode, out.EventIDs)
		}
		want[deal] = append(want[deal], out.EventIDs[0])
		switch i {
		case 100:
			w3 = worker("w3") // joins while events flow
		case 200:
			w1.kill() // SIGKILL mid-run
		}
		time.Sleep(15 * time.Millisecond)
	}
	waitFor(t, "an invoice for every event", 90*time.Second, func() bool {
		return len(fake.BooksRecords(demo.OrgID, "invoices")) >= total
	}, w2, w3, recv)
	time.Sleep(2 * time.Second) // a late double would show now
	byRef := invoicesByRef(fake, demo.OrgID)
	for _, ids := range want {
		for _, id := range ids {
			if byRef[id] != 1 {
				t.Errorf("event %s has %d invoices", id, byRef[id])
			}
		}
	}
	// Order per record, as Zoho saw it: the stamps on each Deal (a resend
	// of the step in doubt at the kill repeats a stamp in place; it never
	// lands after a newer event's).
	seen := map[string][]string{}
	for _, c := range fake.CallsTo(http.MethodPut, "/crm/v8/Deals") {
		var req struct {
			Data []struct {
				ID          string `json:"id"`
				Description string `json:"Description"`
			} `json:"data"`
		}
		if json.Unmarshal(c.Body, &req) != nil {
			continue
		}
		for _, d := range req.Data {
			id := d.ID
			if id == "" {
				id = c.Path[strings.LastIndexByte(c.Path, '/')+1:]
			}
			s := seen[id]
			if len(s) == 0 || s[len(s)-1] != d.Description {
				seen[id] = append(s, d.Description)
			}
		}
	}
	for deal, ids := range want {
		if !slices.Equal(seen[deal], ids) {
			t.Errorf("deal %s: Zoho saw %v, want %v", deal, seen[deal], ids)
		}
	}
	for _, p := range []*proc{w1, w2, w3} {
		if n := strings.Count(p.out.String(), "event handled"); n == 0 {
			t.Errorf("%s handled no event:\n%s", p.cmd.Args, p.out.String())
		}
	}
	t.Logf("handled: w1 %d (killed), w2 %d, w3 %d", strings.Count(w1.out.String(), "event handled"),
		strings.Count(w2.out.String(), "event handled"), strings.Count(w3.out.String(), "event handled"))
}
