package receiver_test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/zohook/zohook/internal/receiver"
)

// The worked example of docs/pending/issue13-readme.md (README, Books
// webhooks): the same secret, body, query and signature.
const (
	readmeBooksSecret = "zohookBooksSecret2026"
	readmeBooksBody   = `{"invoice":{"invoice_id":"982000000567114","invoice_number":"INV-00003","status":"paid","total":1200}}`
	readmeBooksQuery  = "operation=paid"
	readmeBooksSig    = "6f44e01a4392f7ca9653f08d3cd3a8ea47e72c0d5e29dd6a433bd976cfc45494"
	// readmeSignLine is the documented shell line, with BODY and SECRET set.
	readmeSignLine = `SIG=$(printf '%s%s' 'operationpaid' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //'); printf '%s' "$SIG"`
)

// TestReadmeBooksSignatureExample: the signature the README computes for a
// Books webhook whose URL carries ?operation=paid is accepted, and the
// query string is part of what is signed: without it, or with the body
// alone signed, the request is refused.
func TestReadmeBooksSignatureExample(t *testing.T) {
	h := start(t, nil, func(c *receiver.Config) {
		c.BooksHooks = map[string]receiver.HookConfig{"invoice-paid": {Secret: readmeBooksSecret, Signature: true}}
	})
	sig := http.Header{receiver.SignatureHeader: {readmeBooksSig}}
	code, out := h.do(t, "/zoho/books/invoice-paid?"+readmeBooksQuery, "application/json", sig, []byte(readmeBooksBody))
	if code != 200 {
		t.Fatalf("the README's example signature is refused: %d %v", code, out)
	}
	envs := h.env.Envelopes(t)
	if len(envs) != 1 || envs[0].Module != "invoice" || envs[0].Operation != "paid" || envs[0].RecordID != "982000000567114" {
		t.Fatalf("event %+v", envs)
	}
	// The query is signed: the same signature without it is refused...
	if code, out := h.do(t, "/zoho/books/invoice-paid", "application/json", sig, []byte(readmeBooksBody)); code != 401 {
		t.Errorf("signature accepted without the signed query: %d %v", code, out)
	}
	// ...and so is a signature over the body alone sent with the query.
	bodyOnly := http.Header{receiver.SignatureHeader: {sign(nil, []byte(readmeBooksBody), true)}}
	if code, out := h.do(t, "/zoho/books/invoice-paid?"+readmeBooksQuery, "application/json", bodyOnly, []byte(readmeBooksBody)); code != 401 {
		t.Errorf("a body-only signature accepted with a query: %d %v", code, out)
	}
}

// TestReadmeBooksSignatureShellLine runs the README's openssl line and
// checks it prints the documented signature (skipped without openssl).
func TestReadmeBooksSignatureShellLine(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command("sh", "-c", readmeSignLine)
	cmd.Env = append(cmd.Environ(), "BODY="+readmeBooksBody, "SECRET="+readmeBooksSecret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != readmeBooksSig {
		t.Fatalf("the README's shell line prints %q, want %q", got, readmeBooksSig)
	}
}
