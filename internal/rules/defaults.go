package rules

import "maps"

// WireDefaults returns the inputs with zohook's safe defaults added, as
// they go to Zoho: CRM creates and updates that do not set trigger get
// trigger: [] (Zoho runs no workflow, approval or blueprint on zohook's
// write), CRM deletes that do not set wf_trigger get wf_trigger: false.
// That is what keeps zohook's own writes from setting off the automations
// that would notify it again. The worker and the dry run both call it, so
// `rules test` shows what the worker sends. in is not modified.
func WireDefaults(action string, in map[string]any) map[string]any {
	switch action {
	case "crm.create_record", "crm.update_record":
		if _, ok := in["trigger"]; !ok {
			in = maps.Clone(in)
			if in == nil {
				in = map[string]any{}
			}
			in["trigger"] = []any{}
		}
	case "crm.remove_record":
		if _, ok := in["wf_trigger"]; !ok {
			in = maps.Clone(in)
			if in == nil {
				in = map[string]any{}
			}
			in["wf_trigger"] = false
		}
	}
	return in
}
