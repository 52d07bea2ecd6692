package engine_test

import (
	"slices"
	"testing"

	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/zoho"
)

// The rules language checks steps against its own table of actions (rules
// knows nothing of the zoho package); the zoho client runs them. The two
// tables must agree, or a rule that loads cleanly fails at run time.
func TestRulesAndClientAgreeOnActions(t *testing.T) {
	client := map[string]zoho.ActionSpec{}
	for _, a := range zoho.Actions() {
		client[a.Name] = a
	}
	lang := map[string]rules.ActionSpec{}
	for _, a := range rules.Actions() {
		lang[a.Name] = a
	}
	for name, r := range lang {
		c, ok := client[name]
		if !ok {
			t.Errorf("rules accept %s, the client does not run it", name)
			continue
		}
		if !sameSet(r.Required, c.Required) {
			t.Errorf("%s: required inputs: rules %v, client %v", name, r.Required, c.Required)
		}
		if !sameSet(r.Optional, c.Optional) {
			t.Errorf("%s: optional inputs: rules %v, client %v", name, r.Optional, c.Optional)
		}
	}
	for name := range client {
		if _, ok := lang[name]; !ok {
			t.Errorf("the client runs %s, rules do not accept it", name)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
