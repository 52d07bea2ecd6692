package app

import (
	"log/slog"
	"testing"
)

// A body under -body-limit must fit the NATS server's max_payload as an
// event (a hook's event holds its body twice), or it would get 503s forever.
func TestBodyLimitFitsNATSMaxPayload(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cases := []struct{ limit, maxPayload, want int64 }{
		{1 << 20, 8 << 20, 1 << 20},                     // embedded server: 8 MiB, the limit fits
		{1 << 20, 1 << 20, (1<<20 - eventOverhead) / 2}, // default nats-server: lowered
		{100 << 10, 1 << 20, 100 << 10},                 // a small limit stays
		{1 << 20, 0, 1 << 20},                           // unknown (not connected): unchanged
		{0, 1 << 20, (1<<20 - eventOverhead) / 2},       // unset
	}
	for _, c := range cases {
		if got := fitBodyLimit(c.limit, c.maxPayload, log); got != c.want {
			t.Errorf("fitBodyLimit(%d, %d) = %d, want %d", c.limit, c.maxPayload, got, c.want)
		}
	}
}
