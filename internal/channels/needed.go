package channels

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/zohook/zohook/internal/rules"
)

// NeededEvents returns the sorted "Module.op" events that the enabled rules
// listening to crm.notify need for connection conn ("" or "default" = the
// default connection). A rule without sources listens to every source,
// crm.notify included. Operations map create → create, update → edit,
// delete → delete; a rule without operations needs Module.all. A rule with
// crm.notify but no modules is skipped with a warning: Zoho subscribes
// module by module, there is no "everything" event.
func NeededEvents(rs []*rules.Rule, conn string, log *slog.Logger) []string {
	if log == nil {
		log = slog.Default()
	}
	ops := map[string]map[string]bool{} // module → zoho ops
	for _, r := range rs {
		if r.Disabled || !listensToNotify(r) || !forConnection(r, conn) {
			continue
		}
		if len(r.Modules) == 0 {
			log.Warn("channels: rule listens to crm.notify without modules; Zoho needs module names, no channel for it",
				"rule", r.Name, "line", r.Line)
			continue
		}
		for _, m := range r.Modules {
			m = strings.TrimSpace(m)
			if ops[m] == nil {
				ops[m] = map[string]bool{}
			}
			if len(r.Operations) == 0 {
				ops[m]["all"] = true
				continue
			}
			for _, op := range r.Operations {
				if z := zohoOp(op); z != "" {
					ops[m][z] = true
				}
			}
		}
	}
	var out []string
	for m, set := range ops {
		if set["all"] || (set["create"] && set["edit"] && set["delete"]) {
			out = append(out, m+".all")
			continue
		}
		for op := range set {
			out = append(out, m+"."+op)
		}
	}
	slices.Sort(out)
	return out
}

func listensToNotify(r *rules.Rule) bool {
	return len(r.Sources) == 0 || slices.Contains(r.Sources, rules.SourceCRMNotify)
}

func forConnection(r *rules.Rule, conn string) bool {
	if len(r.Connections) == 0 {
		return true
	}
	if conn == "" {
		conn = "default"
	}
	for _, c := range r.Connections {
		if c == conn || (c == "" && conn == "default") {
			return true
		}
	}
	return false
}

// zohoOp maps a rule operation to Zoho's event vocabulary ("" = none).
func zohoOp(op string) string {
	switch strings.ToLower(strings.TrimSpace(op)) {
	case "create", "insert":
		return "create"
	case "update", "edit":
		return "edit"
	case "delete":
		return "delete"
	case "*", "all":
		return "all"
	}
	return ""
}

// groupEvents splits "Module.op" events by module; an "all" subsumes the rest.
func groupEvents(needed []string) map[string][]string {
	by := map[string][]string{}
	for _, e := range needed {
		m, op, ok := strings.Cut(strings.TrimSpace(e), ".")
		if !ok || m == "" || op == "" {
			continue
		}
		if !slices.Contains(by[m], e) {
			by[m] = append(by[m], m+"."+op)
		}
	}
	for m, evs := range by {
		if slices.Contains(evs, m+".all") {
			by[m] = []string{m + ".all"}
			continue
		}
		slices.Sort(evs)
	}
	return by
}
