package zohotest

import "testing"

// TestCOQLStringEscapes: a doubled quote is one quote (Zoho's documented
// escape), a backslash escapes the next byte, and an escaped literal stays
// one value: `'x” or Email != ”y'` selects the record whose Email is
// x' or Email != 'y, not every record.
func TestCOQLStringEscapes(t *testing.T) {
	lits := map[string]string{
		`'O''Brien'`:                   `O'Brien`,
		`''''`:                         `'`,
		`'a\\b'`:                       `a\b`,
		`'\\'''`:                       `\'`,
		`'x'' or Email != ''y'`:        `x' or Email != 'y`,
		`') or (Email is not null'`:    `) or (Email is not null`,
		"'two\nlines'":                 "two\nlines",
		`'Zoë 東京 🚀'`:                   `Zoë 東京 🚀`,
		`'it\'s'`:                      `it's`,
		`'%'' or Email like ''%'`:      `%' or Email like '%`,
		`'x\\'' or 1=1 or Email = '''`: `x\' or 1=1 or Email = '`,
	}
	for lit, want := range lits {
		toks, err := lexCOQL(lit)
		if err != nil || len(toks) != 2 || toks[0].kind != tString || toks[0].text != want {
			t.Errorf("lex %s = %+v, %v; want one string %q", lit, toks, err, want)
		}
	}

	c := newClient(t)
	ids := map[string]string{}
	for _, v := range lits {
		ids[v] = c.s.CRMInsert("Contacts", map[string]any{"Last_Name": "L", "Email": v})
	}
	c.s.CRMInsert("Contacts", map[string]any{"Last_Name": "decoy", "Email": "y"})
	for lit, want := range lits {
		st, body := c.do("POST", "/crm/v8/coql", map[string]any{"select_query": "select Email from Contacts where Email = " + lit})
		if st != 200 {
			t.Errorf("%s: %d %v", lit, st, body)
			continue
		}
		rows := dataItems(t, body)
		if len(rows) != 1 || rows[0]["id"] != ids[want] {
			t.Errorf("%s matched %v, want only %s", lit, rows, ids[want])
		}
	}
	// A quote left single ends the literal: what follows is query text, and
	// here a syntax error, as at Zoho.
	st, body := c.do("POST", "/crm/v8/coql", map[string]any{"select_query": `select Email from Contacts where Email = 'O'Brien'`})
	if st != 400 || body["code"] != "SYNTAX_ERROR" {
		t.Errorf("unescaped quote: %d %v", st, body)
	}
}
