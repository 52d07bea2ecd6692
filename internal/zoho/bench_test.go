package zoho_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// BenchmarkCRMGetRecord measures a GetRecord round trip and, in the same
// run, a bare http.Client GET of the same fake URL; it reports both and
// their ratio (client overhead).
func BenchmarkCRMGetRecord(b *testing.B) {
	s := zohotest.NewServer()
	defer s.Close()
	cfg := configFor(s)
	c, err := zoho.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	id := s.CRMInsert("Leads", map[string]any{"Last_Name": "bench", "Company": "Zylker", "Email": "b@zylker.test"})
	tok, err := c.TokenSource().Token(ctx)
	if err != nil {
		b.Fatal(err)
	}
	bare := &http.Client{Timeout: 10 * time.Second}
	u := s.URL() + "/crm/v8/Leads/" + id
	bareGet := func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Zoho-oauthtoken "+tok.AccessToken)
		resp, err := bare.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("bare status %d", resp.StatusCode)
		}
	}
	bareGet()
	if _, _, err := c.CRM.GetRecord(ctx, "Leads", id, nil); err != nil {
		b.Fatal(err)
	}
	var clientDur, bareDur time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := c.CRM.GetRecord(ctx, "Leads", id, nil); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		bareGet()
		clientDur += t1.Sub(t0)
		bareDur += time.Since(t1)
	}
	b.ReportMetric(float64(clientDur.Nanoseconds())/float64(b.N), "client-ns/op")
	b.ReportMetric(float64(bareDur.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(clientDur)/float64(bareDur), "client/bare")
}

// BenchmarkBooksCreateRecord measures a Books CreateRecord round trip.
func BenchmarkBooksCreateRecord(b *testing.B) {
	s := zohotest.NewServer()
	defer s.Close()
	c, err := zoho.NewClient(configFor(s))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := map[string]any{"contact_name": "Bench Co", "contact_type": "customer", "email": "bench@co.test"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Books.CreateRecord(ctx, "contacts", data, nil); err != nil {
			b.Fatal(err)
		}
	}
}
