package zohotest

import (
	"net/http"
	"slices"
	"time"
)

// Deleted records: GET /crm/v8/{module}/deleted (Zoho's "Get List of
// Deleted Records"; not in API.md, shape from Zoho's docs and the v8 OAS
// record.json Deleted_Records_Wrapper): data[] of {deleted_by, id,
// display_name, type, created_by, deleted_time} and info {per_page, count,
// page, more_records}; query type=all|recycle|permanent, page, per_page;
// header If-Modified-Since (ISO 8601) keeps deletions strictly after it;
// 204 when nothing is listed. Zoho documents no order: the fake lists the
// recycle bin first, then permanent deletions, newest first in each (as in
// Zoho's sample answer), so clients cannot rely on chronological order.

// tombstone is what the fake remembers of a deleted record.
type tombstone struct {
	id        string
	name      string
	permanent bool
	deletedBy map[string]any
	createdBy any
	at        time.Time
}

func (t *tombstone) json() map[string]any {
	m := map[string]any{"id": t.id, "type": "recycle", "deleted_time": t.at.Format(crmTimeLayout),
		"display_name": t.name, "deleted_by": t.deletedBy, "created_by": t.createdBy}
	if t.permanent {
		// Zoho's docs sample sends null name and users for permanent
		// entries; the v8 OAS does not allow null there, so the fake leaves
		// the keys out (a client reads both the same way).
		m["type"] = "permanent"
		delete(m, "display_name")
		delete(m, "deleted_by")
		delete(m, "created_by")
	}
	return m
}

// removeRecordLocked deletes a record, its attachments, and leaves the
// tombstone the deleted-records list reports (a deletion moves the record
// to the recycle bin).
func (s *Server) removeRecordLocked(mod *crmModule, id string) {
	rec := mod.recs[id]
	created := any(minUser())
	if cb, ok := rec["Created_By"].(map[string]any); ok {
		created = map[string]any{"name": cb["name"], "id": cb["id"]}
	}
	mod.deleted = append(mod.deleted, &tombstone{id: id, name: str(rec[displayField(mod.name)]), deletedBy: minUser(),
		createdBy: created, at: s.now()})
	delete(mod.recs, id)
	delete(mod.attachments, id)
}

// CRMDelete deletes a record as a user would in Zoho's UI: no API call, no
// notification (a lost one, for the point of view of a webhook receiver),
// but the deletion is listed by GET /{module}/deleted with the server
// clock's time. It reports whether the record existed.
func (s *Server) CRMDelete(module, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	mod, ok := s.crm.modules[module]
	if !ok {
		return false
	}
	if _, ok := mod.recs[id]; !ok {
		return false
	}
	s.removeRecordLocked(mod, id)
	return true
}

// CRMEmptyRecycleBin purges a module's recycle bin: its entries become
// "permanent" deletions. Their deleted_time becomes the purge time: whether
// Zoho keeps the original time is UNCONFIRMED, and the purge time is the
// harder case for a client (the entry looks like a new deletion). It
// returns how many entries were purged.
func (s *Server) CRMEmptyRecycleBin(module string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	mod, ok := s.crm.modules[module]
	if !ok {
		return 0
	}
	n := 0
	for _, t := range mod.deleted {
		if !t.permanent {
			t.permanent, t.at = true, s.now()
			n++
		}
	}
	return n
}

func (s *Server) crmDeleted(rq *request, mod *crmModule) *response {
	typ := rq.query("type")
	switch typ {
	case "", "all", "recycle", "permanent":
	default:
		return crmErrResp(http.StatusBadRequest, "PATTERN_NOT_MATCHED", "Please check whether the input values are correct",
			map[string]any{"param_name": "type"})
	}
	perPage, page, bad := rq.paging()
	if bad != nil {
		return bad
	}
	var since time.Time
	if v := rq.r.Header.Get("If-Modified-Since"); v != "" {
		t, err := parseHTTPOrZohoTime(v)
		if err != nil {
			return invalidParam("If-Modified-Since")
		}
		since = t
	}
	var list []*tombstone
	for _, t := range mod.deleted {
		if (typ == "recycle" && t.permanent) || (typ == "permanent" && !t.permanent) {
			continue
		}
		if !since.IsZero() && !t.at.After(since) {
			continue
		}
		list = append(list, t)
	}
	slices.SortStableFunc(list, func(a, b *tombstone) int {
		if a.permanent != b.permanent {
			if a.permanent {
				return 1
			}
			return -1
		}
		return b.at.Compare(a.at)
	})
	off := (page - 1) * perPage
	if off >= len(list) {
		return emptyResp(http.StatusNoContent)
	}
	end := min(off+perPage, len(list))
	data := make([]any, 0, end-off)
	for _, t := range list[off:end] {
		data = append(data, t.json())
	}
	return jsonResp(http.StatusOK, map[string]any{"data": data, "info": map[string]any{"per_page": perPage, "count": len(data),
		"page": page, "more_records": end < len(list)}})
}
