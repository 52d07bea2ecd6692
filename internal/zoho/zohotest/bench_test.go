package zohotest

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkCRMGetRoundTrip measures one authenticated GET /crm/v8/{module}/{id} over loopback HTTP.
func BenchmarkCRMGetRoundTrip(b *testing.B) {
	c := newClient(b)
	id := c.s.CRMInsert("Deals", map[string]any{"Deal_Name": "x", "Stage": "y", "Amount": 1200.0})
	req, _ := http.NewRequest("GET", c.s.URL()+"/crm/v8/Deals/"+id, nil)
	req.Header.Set("Authorization", "Zoho-oauthtoken "+c.tok)
	hc := &http.Client{}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkCRMGetRoundTripOAS is the same with OpenAPI validation on, to show its cost relative to the above.
func BenchmarkCRMGetRoundTripOAS(b *testing.B) {
	c := newClient(b, WithOpenAPIValidation(oasDir(b)))
	id := c.s.CRMInsert("Deals", map[string]any{"Deal_Name": "x", "Stage": "y", "Amount": 1200.0})
	req, _ := http.NewRequest("GET", c.s.URL()+"/crm/v8/Deals/"+id, nil)
	req.Header.Set("Authorization", "Zoho-oauthtoken "+c.tok)
	for b.Loop() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if v := c.s.ContractViolations(); len(v) > 0 {
		b.Fatal(v[0])
	}
}
