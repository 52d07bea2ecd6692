package notify

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
)

// BenchmarkHandler is the echo-only baseline's CPU per request in-process,
// to set beside internal/receiver's BenchmarkCRMNotifyHandler (same body,
// same request construction):
//
//	go test -run '^$' -bench . ./bench/baseline/notify/ ./internal/receiver/
func BenchmarkHandler(b *testing.B) {
	tmpl, err := os.ReadFile("../../notify-1k.json")
	if err != nil {
		b.Fatal(err)
	}
	tmpl = bytes.TrimSpace(bytes.ReplaceAll(tmpl, []byte("__TOKEN__"), []byte("tok")))
	bodies := make([][]byte, 1024)
	for i := range bodies {
		body := bytes.Replace(tmpl, []byte("__ID__"), strconv.AppendInt(nil, 5725767000100000000+int64(i), 10), 1)
		bodies[i] = bytes.Replace(body, []byte("__SERVER_TIME__"), strconv.AppendInt(nil, 1764410000000+int64(i), 10), 1)
	}
	h := Server(Handler(NewValidator(), nil))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/zoho/crm/notify", bytes.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}
