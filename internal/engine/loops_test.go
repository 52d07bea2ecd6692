package engine

import (
	"context"
	"testing"

	"github.com/zohook/zohook/internal/events/eventstest"
)

func TestLoopGuard(t *testing.T) {
	env := eventstest.Start(t)
	ctx := context.Background()
	g, err := OpenLoopGuard(ctx, env.JS, LoopGuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	current := ""
	fetches := 0
	fetch := func(context.Context) (string, error) { fetches++; return current, nil }
	self := func(changed []string, mt string) bool {
		t.Helper()
		ok, err := g.SelfCaused(ctx, "default", "Deals", "42", changed, mt, fetch)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if self([]string{"Stage"}, "") {
		t.Fatal("no write yet: nothing is self-caused")
	}
	if err := g.Remember(ctx, "default", "Deals", "42", []string{"Invoice_Number"}, "2026-11-29T10:00:00+05:30"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		changed []string
		mt      string
		want    bool
	}{
		{"same modified time, other offset notation", nil, "2026-11-29T04:30:00Z", true},
		{"later modified time: someone else edited", []string{"Invoice_Number"}, "2026-11-29T10:05:00+05:30", false},
		{"only our field changed", []string{"Invoice_Number"}, "", true},
		{"a user field changed too", []string{"Invoice_Number", "Stage"}, "", false},
	}
	for _, c := range cases {
		if got := self(c.changed, c.mt); got != c.want {
			t.Errorf("%s: self-caused = %v, want %v", c.name, got, c.want)
		}
	}
	// No changed fields and no record: the guard reads Zoho's current Modified_Time.
	current = "2026-11-29T10:00:00+05:30"
	if !self(nil, "") || fetches != 1 {
		t.Fatalf("unchanged since our write must be self-caused (fetches %d)", fetches)
	}
	current = "2026-11-29T10:00:07+05:30"
	if self(nil, "") {
		t.Fatal("modified after our write: someone else's change must run the rules")
	}
	if ok, _ := g.SelfCaused(ctx, "default", "Deals", "43", nil, "", fetch); ok {
		t.Fatal("another record is not self-caused")
	}
}
