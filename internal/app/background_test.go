package app

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// -notify-url: a running worker subscribes the channels the example rules
// need (Deals edits, Leads creates, Contacts creates and edits).
func TestWorkerKeepsChannelsForTheRules(t *testing.T) {
	fake := zohotest.NewServer()
	t.Cleanup(fake.Close)
	env := startLayout(t)
	cr := fake.Credentials()
	o := WorkerOptions{Rules: "../../rules.yaml", MaxDeliver: 5, EventTimeout: time.Minute,
		ShutdownGrace: time.Second, Getenv: func(string) string { return "" },
		ZohoOverride: &zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken, AccountsURL: fake.URL(), BooksOrgID: cr.OrgID},
		Background:   BackgroundOptions{NotifyURL: "https://hooks.example.com/zoho/crm/notify", ChannelInterval: time.Hour}}
	bb := &Backbone{NC: env.NC, JS: env.JS, Stream: env.Stream}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runWorkerOn(ctx, bb, o, slog.New(slog.DiscardHandler), prometheus.NewRegistry()) }()
	defer func() { cancel(); <-done }()

	var got []string
	waitUntil(t, "channels subscribed", func() bool {
		got = nil
		for _, ch := range fake.Channels() {
			got = append(got, ch.Events...)
		}
		return len(got) >= 4
	})
	slices.Sort(got)
	want := []string{"Contacts.create", "Contacts.edit", "Deals.edit", "Leads.create"}
	if !slices.Equal(got, want) {
		t.Fatalf("subscribed %v, want %v", got, want)
	}
	for _, ch := range fake.Channels() {
		if ch.NotifyURL != o.Background.NotifyURL || ch.Token == "" {
			t.Fatalf("channel %+v", ch)
		}
	}
}
