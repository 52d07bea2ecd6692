package authcmd

import (
	"slices"
	"strings"
)

// Zoho OAuth scopes are SERVICE.RESOURCE[.SUB].OPERATION, case-insensitive:
// ZohoCRM.modules.ALL, ZohoCRM.modules.deals.READ, ZohoCRM.coql.READ,
// ZohoCRM.notifications.ALL, ZohoBooks.fullaccess.all,
// ZohoBooks.invoices.CREATE. ALL grants every operation of its resource,
// ZohoBooks.fullaccess.all everything in Books.

// ParseScopes splits a token response's scope (space- or comma-separated).
func ParseScopes(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
	return slices.Compact(slices.Sorted(slices.Values(f)))
}

// ScopeNeed is a scope some rule needs.
type ScopeNeed struct {
	Service  string // ZohoCRM or ZohoBooks
	Resource string // modules, coql, notifications; for Books an entity, or "" for any
	// Sub narrows modules to one module ("deals"); "" when the rules do
	// not name it (a step's module is not known before it runs).
	Sub string
	Op  string // READ, CREATE, UPDATE, DELETE
	// Why names what needs it (rule and step, or "channels").
	Why string
}

// String is the narrowest scope that grants the need, as Zoho spells it;
// a module or entity the rules do not name shows as <module> or <entity>.
func (n ScopeNeed) String() string {
	res := n.Resource
	if res == "" {
		res = "<entity>"
	}
	parts := []string{n.Service, res}
	if n.Resource == "modules" {
		sub := strings.ToLower(n.Sub)
		if sub == "" {
			sub = "<module>"
		}
		parts = append(parts, sub)
	}
	return strings.Join(append(parts, n.Op), ".")
}

// GrantedBy reports whether the granted scopes cover the need. When the
// need names no module (or Books entity), a grant for any one module with
// the operation counts: the rules do not say which.
func (n ScopeNeed) GrantedBy(granted []string) bool {
	svc, res, sub, op := strings.ToLower(n.Service), strings.ToLower(n.Resource), strings.ToLower(n.Sub), strings.ToLower(n.Op)
	for _, g := range granted {
		p := strings.Split(strings.ToLower(g), ".")
		if len(p) < 3 || p[0] != svc {
			continue
		}
		gop := p[len(p)-1]
		opOK := gop == "all" || gop == op
		mid := p[1 : len(p)-1] // resource[, sub]
		switch {
		case svc == "zohobooks" && mid[0] == "fullaccess":
			return true
		case res == "" && opOK: // Books, entity unknown: any entity's grant
			return true
		case mid[0] != res || !opOK:
			continue
		case len(mid) == 1: // the whole resource
			return true
		case sub == "" || mid[1] == sub: // one module: the one needed, or any when unknown
			return true
		}
	}
	return false
}

// MissingScopes returns the needs the granted scopes do not cover.
func MissingScopes(granted []string, needs []ScopeNeed) []ScopeNeed {
	var out []ScopeNeed
	for _, n := range needs {
		if !n.GrantedBy(granted) {
			out = append(out, n)
		}
	}
	return out
}
