package rules_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/zoho"
	"github.com/zohook/zohook/internal/zoho/zohotest"
)

// hostile are values a Zoho user can type into a field; none may change
// the shape of a COQL query.
var hostile = []string{
	`x' or Email != 'y`,
	`O'Brien`,
	`''`,
	`'`,
	`\`,
	`\'`,
	`a\' or Email != \'b`,
	`x\\' or 1=1 or Email = '`,
	`) or (Email is not null`,
	"line1\nline2\r\n' or Email != '",
	"tab\there",
	`Zoë — 東京 🚀 ’quote’`,
	"x'); select id from Leads where ('1' = '1",
	`%' or Email like '%`,
}

// coqlOf renders v through a real template: ${coql(record.V)}.
func coqlOf(t *testing.T, v any) (string, error) {
	t.Helper()
	set := mustParse(t, `version: 1
rules:
  - name: q
    on: {source: crm.notify}
    record: all
    steps:
      - action: crm.coql
        with: {query: "select id from Contacts where Email = ${coql(record.V)}"}
`)
	dry := &rules.DryRun{}
	_, err := set.Rules()[0].Run(context.Background(), rules.Input{Event: &rules.Event{Source: "crm.notify"}, Record: map[string]any{"V": v}}, dry)
	if err != nil {
		return "", err
	}
	q := dry.Calls()[0].Inputs["query"].(string)
	return strings.TrimPrefix(q, "select id from Contacts where Email = "), nil
}

func TestCOQLQuotesValues(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"plain", `'plain'`},
		{`x' or Email != 'y`, `'x'' or Email != ''y'`},
		{`back\slash`, `'back\\slash'`},
		{`\'`, `'\\'''`},
		{"a\nb", "'a\nb'"},
		{`) or (1`, `') or (1'`},
		{"Zoë 東京", `'Zoë 東京'`},
		{"", `''`},
		{1500.0, `1500`},
		{1200.5, `1200.5`},
		{-3, `-3`},
		{true, `true`},
		{false, `false`},
		{nil, `null`},
		{[]any{"a", "b'c", 3.0}, `('a', 'b''c', 3)`},
		{time.Date(2026, 3, 30, 22, 15, 0, 0, time.UTC), `'2026-03-30T22:15:00Z'`},
	}
	for _, tt := range tests {
		got, err := coqlOf(t, tt.in)
		if err != nil || got != tt.want {
			t.Errorf("coql(%#v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// A lookup map, a nested or empty list and a non-number cannot become
	// one literal: the expression fails instead of sending something else.
	for _, bad := range []any{map[string]any{"id": "1"}, []any{[]any{"a"}}, []any{}} {
		if got, err := coqlOf(t, bad); err == nil {
			t.Errorf("coql(%#v) = %q, want an error", bad, got)
		}
	}
}

// scanLiteral reads one single-quoted literal at the start of s the way a
// COQL parser would: a doubled quote is a quote; with backslashEscapes a
// backslash also escapes the next byte. It returns the value and the rest.
func scanLiteral(s string, backslashEscapes bool) (val, rest string, ok bool) {
	if !strings.HasPrefix(s, "'") {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case backslashEscapes && s[i] == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i++
		case s[i] == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case s[i] == '\'':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

// TestCOQLHostileValuesStayOneLiteral: Zoho documents doubling a quote;
// how it reads a backslash is not documented. Under either reading the
// rendered literal is exactly one token, nothing of the value is left
// outside it, and with backslash escapes it reads back as the value.
func TestCOQLHostileValuesStayOneLiteral(t *testing.T) {
	for _, v := range hostile {
		lit, err := coqlOf(t, v)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		for _, bs := range []bool{true, false} {
			got, rest, ok := scanLiteral(lit, bs)
			if !ok || rest != "" {
				t.Errorf("%q rendered %q: backslash escapes %v: not one literal (rest %q)", v, lit, bs, rest)
			}
			if bs && got != v {
				t.Errorf("%q rendered %q reads back as %q", v, lit, got)
			}
		}
	}
}

func TestCheckWarnsAboutUnquotedCOQL(t *testing.T) {
	set := mustParse(t, `version: 1
vars: {status: Active}
rules:
  - name: q
    on: {source: crm.notify}
    record: all
    steps:
      - id: raw
        action: crm.coql
        with: {query: "select id from Contacts where Email = '${record.Email}'"}
      - id: safe
        action: crm.coql
        with: {query: "select id from Contacts where (Email = ${coql(record.Email)} and Status = '${vars.status}')"}
      - id: twice
        action: crm.coql
        with: {query: "select id from Contacts where Email = '${coql(record.Email)}'"}
      - id: whole
        action: crm.coql
        with: {query: "${event.values.q}"}
      - id: literal
        action: crm.coql
        with: {query: "select id from Contacts where Email is not null"}
`)
	var got []string
	for _, w := range set.Warnings() {
		if strings.Contains(w.Message, "crm.coql") {
			got = append(got, w.Message)
		}
	}
	if len(got) != 3 {
		t.Fatalf("want 3 COQL warnings (raw, twice, whole), got %d:\n%s", len(got), strings.Join(got, "\n"))
	}
	for i, want := range []string{"step raw: crm.coql: the query puts ${record.Email} into COQL unquoted", "step twice: crm.coql: '${coql(record.Email)}' is quoted twice", "step whole: crm.coql: the query puts ${event.values.q}"} {
		if !strings.HasPrefix(got[i], want) {
			t.Errorf("warning %d = %q, want prefix %q", i, got[i], want)
		}
	}
	if !strings.Contains(got[0], "${coql(record.Email)}") {
		t.Errorf("the warning should show the fix: %s", got[0])
	}
}

// zohoExec runs calls through the real Zoho client, as the worker does.
type zohoExec struct{ c *zoho.Client }

func (e zohoExec) Execute(ctx context.Context, call rules.Call) (map[string]any, error) {
	return e.c.RunAction(ctx, call.Action, call.Inputs)
}

// TestCOQLHostileValueEndToEnd renders a hostile record value through the
// rules template, sends the query with the Zoho client over HTTP to the
// fake Zoho, and checks that it matched only the record whose Email is
// exactly that value: the value stayed one literal all the way.
func TestCOQLHostileValueEndToEnd(t *testing.T) {
	s := zohotest.NewServer()
	t.Cleanup(s.Close)
	cr := s.Credentials()
	c, err := zoho.NewClient(zoho.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, RefreshToken: cr.RefreshToken,
		DC: "us", AccountsURL: s.URL(), BooksOrgID: cr.OrgID}, zoho.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, v := range hostile {
		ids[v] = s.CRMInsert("Contacts", map[string]any{"Last_Name": "L", "Email": v})
	}
	// Decoys an injected `or Email != 'y'` or `like '%'` would select.
	s.CRMInsert("Contacts", map[string]any{"Last_Name": "decoy", "Email": "decoy@example.com"})
	s.CRMInsert("Contacts", map[string]any{"Last_Name": "decoy", "Email": "x"})

	set := mustParse(t, `version: 1
rules:
  - name: q
    on: {source: crm.notify}
    record: all
    steps:
      - id: find
        action: crm.coql
        with: {query: "select id, Email from Contacts where Email = ${coql(record.Email)} limit 10"}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v := range hostile {
		res, err := set.Rules()[0].Run(ctx, rules.Input{Event: &rules.Event{Source: "crm.notify"}, Record: map[string]any{"Email": v}}, zohoExec{c})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		data, _ := res.Steps[0].Output["data"].([]any)
		if len(data) != 1 {
			t.Errorf("%q: query %q matched %d records, want exactly 1: %v", v, res.Steps[0].Inputs["query"], len(data), data)
			continue
		}
		row := data[0].(map[string]any)
		if row["id"] != ids[v] || row["Email"] != v {
			t.Errorf("%q: matched %v, want id %s", v, row, ids[v])
		}
	}
}
