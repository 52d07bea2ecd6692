package zohotest

import (
	"fmt"
	"slices"
	"testing"
)

func TestCOQL(t *testing.T) {
	c := newClient(t, WithCOQLMaxLimit(500))
	acct := c.s.CRMInsert("Accounts", map[string]any{"Account_Name": "Zylker"})
	for i, n := range []string{"Boyle", "Kent", "Lane", "Olsen", "Wayne"} {
		rec := map[string]any{"Last_Name": n, "Score": float64(i * 10), "Created_Time": fmt.Sprintf("2026-11-1%dT10:00:00+05:30", i)}
		if i%2 == 0 {
			rec["Email"] = n + "@z.example"
			rec["Account_Name"] = map[string]any{"id": acct, "name": "Zylker"}
		}
		c.s.CRMInsert("Contacts", rec)
	}
	tests := []struct {
		query string
		want  []string // Last_Name in result order; nil = 204
		more  bool
	}{
		{"select Last_Name from Contacts", []string{"Boyle", "Kent", "Lane", "Olsen", "Wayne"}, false},
		{"SELECT Last_Name FROM Contacts WHERE Last_Name = 'kent'", []string{"Kent"}, false},
		{"select Last_Name from Contacts where Score >= 20 order by Score desc", []string{"Wayne", "Olsen", "Lane"}, false},
		{"select Last_Name from Contacts where (Score > 0 and Score < 40) order by Last_Name desc limit 2", []string{"Olsen", "Lane"}, true},
		{"select Last_Name from Contacts where ((Score > 0 and Score < 40) or Last_Name = 'Boyle')", []string{"Boyle", "Kent", "Lane", "Olsen"}, false},
		{"select Last_Name from Contacts where Last_Name like 'O%'", []string{"Olsen"}, false},
		{"select Last_Name from Contacts where Last_Name like '%an%'", []string{"Lane"}, false},
		{"select Last_Name from Contacts where Last_Name not like '%o%'", []string{"Kent", "Lane", "Wayne"}, false},
		{"select Last_Name from Contacts where Last_Name in ('Kent', 'Wayne')", []string{"Kent", "Wayne"}, false},
		{"select Last_Name from Contacts where Last_Name not in ('Kent', 'Wayne')", []string{"Boyle", "Lane", "Olsen"}, false},
		{"select Last_Name from Contacts where Email is null", []string{"Kent", "Olsen"}, false},
		{"select Last_Name from Contacts where Email is not null limit 1 offset 1", []string{"Lane"}, true},
		{"select Last_Name from Contacts where Score between 10 and 30", []string{"Kent", "Lane", "Olsen"}, false},
		{"select Last_Name from Contacts where Created_Time > '2026-11-13T00:00:00+05:30'", []string{"Olsen", "Wayne"}, false},
		{"select Last_Name from Contacts where Account_Name.Account_Name = 'Zylker'", []string{"Boyle", "Lane", "Wayne"}, false},
		{"select Last_Name from Contacts where Account_Name = '" + acct + "' and Score > 30", []string{"Wayne"}, false},
		{"select Last_Name from Contacts where Last_Name = 'Nobody'", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			st, body := c.do("POST", "/crm/v8/coql", map[string]any{"select_query": tt.query})
			if tt.want == nil {
				if st != 204 {
					t.Fatalf("want 204, got %d %v", st, body)
				}
				return
			}
			if st != 200 {
				t.Fatalf("%d %v", st, body)
			}
			var got []string
			for _, r := range dataItems(t, body) {
				got = append(got, r["Last_Name"].(string))
				if r["id"] == nil {
					t.Fatal("id missing")
				}
			}
			info := body["info"].(map[string]any)
			if !slices.Equal(got, tt.want) || info["more_records"] != tt.more || info["count"] != float64(len(got)) {
				t.Fatalf("got %v more=%v", got, info)
			}
		})
	}
	// Lookup columns come back as {"id"}, dotted columns keep their key.
	_, body := c.do("POST", "/crm/v8/coql", map[string]any{"select_query": "select Account_Name, Account_Name.Account_Name from Contacts where Email is not null limit 1"})
	row := dataItems(t, body)[0]
	if ref := row["Account_Name"].(map[string]any); ref["id"] != acct || len(ref) != 1 || row["Account_Name.Account_Name"] != "Zylker" {
		t.Fatalf("row %v", row)
	}
}

func TestCOQLErrors(t *testing.T) {
	c := newClient(t, WithCOQLMaxLimit(500))
	c.s.CRMInsert("Contacts", map[string]any{"Last_Name": "x"})
	in := "'a'"
	for i := range 50 {
		in += fmt.Sprintf(",'v%d'", i)
	}
	tests := []struct {
		query, code string
		details     map[string]any
	}{
		{"select Last_Name Contacts", "SYNTAX_ERROR", nil},
		{"select Last_Name", "SYNTAX_ERROR", map[string]any{"clause": "from"}},
		{"delete from Contacts", "SYNTAX_ERROR", map[string]any{"clause": "select"}},
		{"select Last_Name from Contacts where", "SYNTAX_ERROR", map[string]any{"clause": "where"}},
		{"select Last_Name from Contacts where (Last_Name = 'x'", "SYNTAX_ERROR", nil},
		{"select Last_Name from Contacts where a = 1 and b = 2 and c = 3", "SYNTAX_ERROR", nil},
		{"select Last_Name from Contacts limt 5", "SYNTAX_ERROR", map[string]any{"line": 1.0, "column": 32.0, "near": "limt"}},
		{"select Last_Name from Contacts where Last_Name = 'x", "SYNTAX_ERROR", nil},
		{"select Last_Name from Nope", "INVALID_QUERY", nil},
		{"select Last_Name from Contacts where Last_Name like 5", "INVALID_QUERY", nil},
		{"select Last_Name from Contacts limit 501", "LIMIT_EXCEEDED", map[string]any{"by": "limit", "limit": 500.0}},
		{"select Last_Name from Contacts limit 500 offset 99600", "LIMIT_EXCEEDED", nil},
		{"select Last_Name from Contacts where Last_Name in (" + in + ")", "LIMIT_EXCEEDED", nil},
		{"select Last_Name, Last_Name from Contacts", "DUPLICATE_DATA", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			st, body := c.do("POST", "/crm/v8/coql", map[string]any{"select_query": tt.query})
			if st != 400 || body["code"] != tt.code {
				t.Fatalf("%d %v", st, body)
			}
			for k, v := range tt.details {
				if details(body)[k] != v {
					t.Fatalf("details %v, want %s=%v", details(body), k, v)
				}
			}
		})
	}
	if st, body := c.do("POST", "/crm/v8/coql", map[string]any{}); st != 400 || body["code"] != "REQUIRED_PARAM_MISSING" {
		t.Fatalf("no select_query: %d %v", st, body)
	}
}

func TestCOQLOffsetPaging(t *testing.T) {
	c := newClient(t)
	for i := range 450 {
		c.s.CRMInsert("Leads", map[string]any{"Last_Name": fmt.Sprintf("L%03d", i)})
	}
	var got []string
	for off := 0; ; off += 200 {
		_, body := c.do("POST", "/crm/v8/coql", map[string]any{"select_query": fmt.Sprintf("select Last_Name from Leads order by Last_Name asc limit 200 offset %d", off)})
		for _, r := range dataItems(t, body) {
			got = append(got, r["Last_Name"].(string))
		}
		if body["info"].(map[string]any)["more_records"] != true {
			break
		}
	}
	if len(got) != 450 || got[0] != "L000" || got[449] != "L449" || !slices.IsSorted(got) {
		t.Fatalf("got %d rows", len(got))
	}
}

func FuzzCOQL(f *testing.F) {
	for _, s := range []string{
		"select Last_Name from Contacts",
		"select Last_Name, Email from Leads where (Last_Name = 'x' and Email is not null) order by Created_Time desc limit 10 offset 5",
		"select a from B where ((a like '%x%' or b in (1, 2, 'c')) and c between 1 and 2)",
		"select a.b from C where a.b not like 'x%' and d is null",
		"select a from B where x != -1.5 order by a, b desc",
		"SELECT x FROM y WHERE (z <> 'it''s')",
		"select", "(", "select a from b where ((((", "select a from b limit 99999999999999999999",
	} {
		f.Add(s)
	}
	recs := []map[string]any{
		{"id": "1", "a": "x", "b": 2.0, "c": 1.5, "x": nil, "d": map[string]any{"id": "2"}, "Last_Name": "L"},
		{"id": "2", "a": true, "b": "2026-11-17T10:00:00+05:30", "Email": "e@x"},
	}
	ev := coqlEval{lookup: func(id string) map[string]any {
		for _, r := range recs {
			if r["id"] == id {
				return r
			}
		}
		return nil
	}}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := parseCOQL(src)
		if err != nil {
			if err.code == "" || err.details == nil {
				t.Fatalf("error without code/details: %v", err)
			}
			return
		}
		if verr := q.validate(2000); verr != nil {
			return
		}
		rows, _ := ev.run(q, recs)
		if len(rows) > q.limit {
			t.Fatalf("%d rows over limit %d", len(rows), q.limit)
		}
	})
}
