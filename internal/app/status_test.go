package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/testutil"
	"github.com/zohook/zohook/internal/worker"
)

// `worker status` and the backlog metrics read the same JetStream state:
// events stored but not consumed show as pending on their partitions, and
// dead letters are counted.
func TestStatusCommandAndBacklogMetrics(t *testing.T) {
	env := startLayout(t) // 4 partitions
	ctx := context.Background()
	pub := events.NewPublisher(env.JS, env.Stream)
	var envs []*events.Envelope
	for i := range 5 {
		envs = append(envs, &events.Envelope{ID: "ev-status-" + string(rune('a'+i)), Source: events.SourceCRMNotify, Connection: "default",
			Module: "Deals", Operation: "update", RecordID: "57257670000005241" + string(rune('0'+i)) + "0", ReceivedAt: time.Now().UTC()})
	}
	if _, err := pub.Publish(ctx, envs); err != nil {
		t.Fatal(err)
	}
	dlq, err := worker.OpenDLQ(ctx, env.JS, worker.DLQConfig{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.DeadLetter(ctx, &worker.Message{Envelope: envs[0], Sequence: 1, Delivered: 1, Subject: "zoho.x"},
		worker.Permanent(errors.New("refused"))); err != nil {
		t.Fatal(err)
	}

	getenv := func(k string) string {
		switch k {
		case "ZOHOOK_NATS_URL":
			return env.Embedded.ClientURL()
		case "ZOHOOK_PARTITIONS":
			return "4"
		}
		return ""
	}
	// The NATS connection's closed callback may log after the command
	// returned: one stderr per call.
	var out bytes.Buffer
	errb := &testutil.SyncBuffer{}
	code, _ := WorkerSubcommand(ctx, "status", nil, &out, errb, getenv)
	if code != 0 || !strings.Contains(out.String(), "stream ZOHOOK_WORK: 5 events") ||
		!strings.Contains(out.String(), "total: 5 pending, 0 ack pending; 1 dead letter(s)") {
		t.Fatalf("status: %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	code, _ = WorkerSubcommand(ctx, "status", []string{"-json"}, &out, &testutil.SyncBuffer{}, getenv)
	var js struct {
		Pending    uint64 `json:"pending"`
		Partitions []struct {
			Pending uint64 `json:"pending"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(out.Bytes(), &js); code != 0 || err != nil || js.Pending != 5 || len(js.Partitions) != 4 {
		t.Fatalf("status -json: %d %v %s", code, err, out.String())
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(newBacklogCollector(env.JS, env.Stream, events.ConsumerConfig{}, dlq, slog.New(slog.DiscardHandler)))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetGauge().GetValue()
		}
	}
	if got["zohook_events_pending"] != 5 || got["zohook_events_ack_pending"] != 0 || got["zohook_dead_letters"] != 1 ||
		got["zohook_events_oldest_waiting_seconds"] <= 0 {
		t.Fatalf("metrics %v", got)
	}
}
