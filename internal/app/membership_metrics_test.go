package app

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/events"
	"github.com/zohook/zohook/internal/worker"
)

// membershipFigures gathers the collector's series: name → member (or "")
// → value.
func membershipFigures(t *testing.T, c *membershipCollector) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range fams {
		out[f.GetName()] = map[string]float64{}
		for _, m := range f.GetMetric() {
			member := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "member" {
					member = l.GetValue()
				}
			}
			out[f.GetName()][member] = m.GetGauge().GetValue()
		}
	}
	return out
}

// Two workers in the members bucket: the collector reports both, what each
// holds, and the partitions neither holds; one leaving leaves its
// partitions unserved.
func TestMembershipMetrics(t *testing.T) {
	env := startLayout(t)
	parts := env.Stream.Partitions
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	a, err := worker.Join(actx, env.JS, "worker-a", parts, events.KVOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := worker.Join(ctx, env.JS, "worker-b", parts, events.KVOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newMembershipCollector(env.JS, parts, nil)
	c.cache = 0

	a.SetHeld([]int{0, 1})
	var got map[string]map[string]float64
	waitUntil(t, "worker-a's holdings in its heartbeat", func() bool {
		got = membershipFigures(t, c)
		return got["zohook_partitions_held"]["worker-a"] == 2
	})
	if got["zohook_workers_live"][""] != 2 || got["zohook_partitions"][""] != float64(parts) ||
		got["zohook_partitions_held"]["worker-b"] != 0 || got["zohook_partitions_unserved"][""] != float64(parts-2) {
		t.Fatalf("two workers, a holding 2 of %d partitions: %v", parts, got)
	}

	rest := make([]int, 0, parts)
	for p := 2; p < parts; p++ {
		rest = append(rest, p)
	}
	b.SetHeld(rest)
	waitUntil(t, "every partition served", func() bool {
		got = membershipFigures(t, c)
		return got["zohook_partitions_unserved"][""] == 0
	})

	stopA() // no more heartbeats
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "worker-a gone", func() bool {
		got = membershipFigures(t, c)
		return got["zohook_workers_live"][""] == 1
	})
	if _, ok := got["zohook_partitions_held"]["worker-a"]; ok || got["zohook_partitions_unserved"][""] != 2 {
		t.Fatalf("after worker-a left: %v", got)
	}
}
