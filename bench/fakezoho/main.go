// Command fakezoho serves zohook's fake Zoho (Accounts, CRM v8, Books v3;
// internal/zoho/zohotest) as a process of its own, seeded with the demo
// records, and prints the environment a worker needs to use it. For load
// runs and demos with the receiver and the worker as separate processes:
//
//	go run ./bench/fakezoho > /tmp/fakezoho.env &
//	set -a; . /tmp/fakezoho.env; set +a
//	go run ./cmd/worker -nats-url nats://127.0.0.1:4222
//
// The credentials it prints are the fake's own, valid nowhere else.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zohook/zohook/internal/zoho/zohotest"
)

func main() {
	latency := flag.Duration("latency", 0, "delay added to every answer (real Zoho answers in tens to hundreds of ms)")
	booksLimit := flag.Int("books-limit", 0, "Books calls allowed per -books-per (0 = unlimited; Zoho: 100 per minute)")
	booksPer := flag.Duration("books-per", time.Minute, "window of -books-limit")
	verbose := flag.Bool("v", false, "log every request to stderr")
	deals := flag.Int("deals", 0, "seed this many Closed Won Deals (for a rule that loads and updates the record, e.g. bench/rules-load-update.yaml)")
	idsFile := flag.String("ids", "", "write the seeded Deals' ids to this `file`, one per line (bench/loadgen -ids)")
	flag.Parse()

	opts := []zohotest.Option{zohotest.WithLatency(*latency)}
	if *booksLimit > 0 {
		opts = append(opts, zohotest.WithBooksRateLimit(*booksLimit, *booksPer))
	}
	if *verbose {
		opts = append(opts, zohotest.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	fake := zohotest.NewServer(opts...)
	defer fake.Close()
	demo := fake.SeedDemo()
	if *deals > 0 {
		ids := make([]byte, 0, *deals*20)
		for i := range *deals {
			id := fake.CRMInsert("Deals", map[string]any{"Deal_Name": fmt.Sprintf("Bench deal %d", i), "Stage": "Closed Won", "Amount": 100 + i})
			ids = append(append(ids, id...), '\n')
		}
		if *idsFile != "" {
			if err := os.WriteFile(*idsFile, ids, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "fakezoho:", err)
				os.Exit(1)
			}
		}
	}
	cr := fake.Credentials()
	fmt.Printf("ZOHOOK_ZOHO_CLIENT_ID=%s\nZOHOOK_ZOHO_CLIENT_SECRET=%s\nZOHOOK_ZOHO_REFRESH_TOKEN=%s\n", cr.ClientID, cr.ClientSecret, cr.RefreshToken)
	fmt.Printf("ZOHOOK_ZOHO_ACCOUNTS_URL=%s\nZOHOOK_ZOHO_BOOKS_ORG_ID=%s\n", fake.URL(), cr.OrgID)
	fmt.Fprintf(os.Stderr, "fake Zoho at %s (demo Books contact %s, item %s); Ctrl-C stops it\n", fake.URL(), demo.BooksContactID, demo.BooksItemID)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
