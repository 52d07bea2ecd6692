package zohotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fakeUser is the fake's only CRM user; it owns and modifies everything written through the API.
func fakeUser() map[string]any {
	return map[string]any{"name": "Patricia Boyle", "id": "5725767000000411001", "email": "p.boyle@zylker.com"}
}

func minUser() map[string]any {
	return map[string]any{"name": "Patricia Boyle", "id": "5725767000000411001"}
}

// standardModules are the CRM modules the fake accepts out of the box (§2.1); custom ones come from WithModules
// or from seeding with CRMInsert.
var standardModules = []string{"Leads", "Contacts", "Accounts", "Deals", "Tasks", "Events", "Calls", "Products",
	"Quotes", "Sales_Orders", "Purchase_Orders", "Invoices", "Campaigns", "Vendors", "Price_Books", "Cases",
	"Solutions", "Notes", "Appointments__s", "Services__s"}

// mandatoryFields are the system-mandatory fields per module (§2.4).
var mandatoryFields = map[string][]string{
	"Leads": {"Last_Name"}, "Contacts": {"Last_Name"}, "Accounts": {"Account_Name"}, "Deals": {"Deal_Name", "Stage"},
	"Tasks": {"Subject"}, "Calls": {"Subject", "Call_Type", "Call_Start_Time", "Call_Duration"},
	"Events": {"Event_Title", "Start_DateTime", "End_DateTime"}, "Products": {"Product_Name"},
	"Cases": {"Case_Origin", "Status", "Subject"}, "Vendors": {"Vendor_Name"}, "Campaigns": {"Campaign_Name"},
	"Quotes": {"Subject"}, "Sales_Orders": {"Subject"}, "Purchase_Orders": {"Subject"}, "Invoices": {"Subject"},
}

// duplicateCheckDefaults are the system duplicate-check fields used by upsert (§2.6).
var duplicateCheckDefaults = map[string][]string{
	"Leads": {"Email"}, "Contacts": {"Email"}, "Accounts": {"Account_Name"}, "Deals": {"Deal_Name"},
	"Campaigns": {"Campaign_Name"}, "Cases": {"Subject"}, "Quotes": {"Subject"}, "Sales_Orders": {"Subject"},
	"Purchase_Orders": {"Subject"}, "Invoices": {"Subject"}, "Solutions": {"Solution_Title"},
	"Products": {"Product_Name"}, "Vendors": {"Vendor_Name"}, "Price_Books": {"Price_Book_Name"},
}

// lookupTargets maps well-known lookup field names to the module they point at.
var lookupTargets = map[string]string{"Account_Name": "Accounts", "Contact_Name": "Contacts", "Vendor_Name": "Vendors",
	"Product_Name": "Products", "Campaign_Source": "Campaigns", "Who_Id": "Contacts", "Deal_Name": "Deals"}

// displayField is the field a lookup's "name" is taken from.
func displayField(module string) string {
	switch module {
	case "Accounts":
		return "Account_Name"
	case "Contacts", "Leads":
		return "Full_Name"
	case "Deals":
		return "Deal_Name"
	case "Products":
		return "Product_Name"
	case "Vendors":
		return "Vendor_Name"
	case "Campaigns":
		return "Campaign_Name"
	}
	return "Name"
}

var validID = regexp.MustCompile(`^[0-9]{1,19}$`)

type crmState struct {
	modules    map[string]*crmModule
	pageTokens map[string]*pageToken
	attSeq     int64
}

type crmModule struct {
	name        string
	id          string
	recs        map[string]map[string]any
	attachments map[string][]*Attachment // by record id
	deleted     []*tombstone             // GET /{module}/deleted, oldest first (deleted.go)
}

type pageToken struct {
	module  string
	sig     string
	offset  int
	expires time.Time
}

func (c *crmState) init(extra []string) {
	c.modules = map[string]*crmModule{}
	c.pageTokens = map[string]*pageToken{}
	c.attSeq = 5725767000002000000
	for _, m := range append(slices.Clone(standardModules), extra...) {
		c.addModule(m)
	}
}

func (c *crmState) addModule(name string) *crmModule {
	if m, ok := c.modules[name]; ok {
		return m
	}
	m := &crmModule{name: name, id: strconv.Itoa(5725767000000002175 + len(c.modules)*3), recs: map[string]map[string]any{},
		attachments: map[string][]*Attachment{}}
	c.modules[name] = m
	return m
}

// findByID looks a record up in any module (ids are unique across modules in Zoho).
func (c *crmState) findByID(id string) (*crmModule, map[string]any) {
	for _, m := range c.modules {
		if r, ok := m.recs[id]; ok {
			return m, r
		}
	}
	return nil, nil
}

func (s *Server) nextID() string {
	s.idSeq += 1 + s.idSeq%7 // irregular steps, like Zoho's, so nobody relies on consecutive ids
	return strconv.FormatInt(s.idSeq, 10)
}

func (s *Server) crmNow() string { return s.now().Format(crmTimeLayout) }

// ---- errors --------------------------------------------------------------------------------------------------

func crmErr(code, msg string, details map[string]any) map[string]any {
	if details == nil {
		details = map[string]any{}
	}
	return map[string]any{"code": code, "details": details, "message": msg, "status": "error"}
}

func crmErrResp(status int, code, msg string, details map[string]any) *response {
	return jsonResp(status, crmErr(code, msg, details))
}

func crmTooMany() map[string]any {
	return crmErr("TOO_MANY_REQUESTS", "Number of API requests for the 24 hour period is exceeded", nil)
}

func missingParam(name string) *response {
	return crmErrResp(http.StatusBadRequest, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
		map[string]any{"param_name": name})
}

func invalidParam(name string) *response {
	return crmErrResp(http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"param_name": name})
}

func badMethod() *response {
	return crmErrResp(http.StatusBadRequest, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one", nil)
}

func badURL() *response {
	return crmErrResp(http.StatusNotFound, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", nil)
}

// ---- routing ---------------------------------------------------------------------------------------------------

func (s *Server) serveCRM(rq *request) *response {
	if !s.validAccessToken(bearerToken(rq.r.Header)) {
		return crmErrResp(http.StatusUnauthorized, "INVALID_TOKEN", "invalid oauth token", nil)
	}
	if s.cfg.crmRateN > 0 && !s.crmRate.allow(s.now(), s.cfg.crmRateN, s.cfg.crmRatePer) {
		return jsonResp(http.StatusTooManyRequests, crmTooMany())
	}
	seg := rq.segs
	m := rq.r.Method
	switch {
	case len(seg) == 0:
		return badURL()
	case len(seg) == 1 && seg[0] == "coql":
		if m != http.MethodPost {
			return badMethod()
		}
		return s.coql(rq)
	case len(seg) == 2 && seg[0] == "actions" && seg[1] == "watch":
		return s.serveWatch(rq)
	case len(seg) == 3 && seg[0] == "settings" && seg[1] == "automation" && seg[2] == "webhook_failures":
		if m != http.MethodGet {
			return badMethod()
		}
		return s.webhookFailures(rq)
	}
	mod, ok := s.crm.modules[seg[0]]
	if !ok {
		return crmErrResp(http.StatusBadRequest, "INVALID_MODULE", "The module name given seems to be invalid",
			map[string]any{"resource_path_index": 0})
	}
	switch {
	case len(seg) == 1:
		switch m {
		case http.MethodGet:
			return s.crmList(rq, mod)
		case http.MethodPost:
			return s.crmWrite(rq, mod, writeInsert, "")
		case http.MethodPut:
			return s.crmWrite(rq, mod, writeUpdate, "")
		case http.MethodDelete:
			return s.crmDelete(rq, mod, rq.r.URL.Query().Get("ids"), true)
		}
		return badMethod()
	case len(seg) == 2 && seg[1] == "upsert":
		if m != http.MethodPost {
			return badMethod()
		}
		return s.crmWrite(rq, mod, writeUpsert, "")
	case len(seg) == 2 && seg[1] == "deleted":
		if m != http.MethodGet {
			return badMethod()
		}
		return s.crmDeleted(rq, mod)
	case len(seg) == 2 && seg[1] == "search":
		if m != http.MethodGet {
			return badMethod()
		}
		return s.crmSearch(rq, mod)
	case len(seg) == 2:
		id := seg[1]
		if !validID.MatchString(id) {
			return crmErrResp(http.StatusBadRequest, "INVALID_DATA", "the id given seems to be invalid",
				map[string]any{"resource_path_index": 1})
		}
		switch m {
		case http.MethodGet:
			return s.crmGet(rq, mod, id)
		case http.MethodPut:
			return s.crmWrite(rq, mod, writeUpdate, id)
		case http.MethodDelete:
			return s.crmDelete(rq, mod, id, false)
		}
		return badMethod()
	case (len(seg) == 3 || len(seg) == 4) && seg[2] == "Attachments":
		return s.serveAttachments(rq, mod, seg[1], seg[3:])
	}
	return badURL()
}

// ---- writes ----------------------------------------------------------------------------------------------------

type writeKind int

const (
	writeInsert writeKind = iota
	writeUpdate
	writeUpsert
)

type writeBody struct {
	Data                 []json.RawMessage `json:"data"`
	Trigger              []string          `json:"trigger"`
	DuplicateCheckFields []string          `json:"duplicate_check_fields"`
}

func (s *Server) crmWrite(rq *request, mod *crmModule, kind writeKind, pathID string) *response {
	var body writeBody
	if err := json.Unmarshal(rq.body, &body); err != nil {
		return crmErrResp(http.StatusBadRequest, "INVALID_DATA", "body", map[string]any{"reason": "body is not valid JSON"})
	}
	if body.Data == nil {
		return crmErrResp(http.StatusBadRequest, "MANDATORY_NOT_FOUND", "required field not found",
			map[string]any{"api_name": "data", "json_path": "$.data"})
	}
	if len(body.Data) == 0 {
		return crmErrResp(http.StatusBadRequest, "INVALID_DATA", "invalid data", map[string]any{"api_name": "data", "json_path": "$.data"})
	}
	if len(body.Data) > 100 || (pathID != "" && len(body.Data) > 1) {
		limit := 100
		if pathID != "" {
			limit = 1
		}
		return crmErrResp(http.StatusBadRequest, "LIMIT_EXCEEDED", "Record insertion limit has been exceeded.",
			map[string]any{"limit": limit, "api_name": "data", "json_path": "$.data"})
	}
	dupFields := body.DuplicateCheckFields
	if kind == writeUpsert && len(dupFields) == 0 {
		dupFields = duplicateCheckDefaults[mod.name]
		if len(dupFields) == 0 {
			dupFields = []string{"Name"}
		}
	}
	// An If-Unmodified-Since guard applies to single-record updates only (§2.1).
	if pathID != "" && rq.r.Header.Get("If-Unmodified-Since") != "" {
		if rec, ok := mod.recs[pathID]; ok {
			since, err := parseHTTPOrZohoTime(rq.r.Header.Get("If-Unmodified-Since"))
			mt, _ := time.Parse(crmTimeLayout, str(rec["Modified_Time"]))
			if err == nil && mt.After(since) {
				return crmErrResp(http.StatusPreconditionFailed, "ALREADY_MODIFIED", "record modified after the given time",
					map[string]any{"id": pathID})
			}
		}
	}

	var results []any
	var inserted, updated []string
	affected := map[string][]string{}
	values := map[string]map[string]any{}
	ok, failed := 0, 0
	for i, raw := range body.Data {
		var in map[string]any
		if err := json.Unmarshal(raw, &in); err != nil || in == nil {
			results = append(results, crmErr("INVALID_DATA", "invalid data", map[string]any{"json_path": fmt.Sprintf("$.data[%d]", i)}))
			failed++
			continue
		}
		var item map[string]any
		switch kind {
		case writeInsert:
			item = s.insertOne(mod, in, i, body.DuplicateCheckFields, &inserted)
		case writeUpdate:
			id := str(in["id"])
			if pathID != "" {
				id = pathID
			}
			item = s.updateOne(mod, id, in, i, &updated, affected, values)
		case writeUpsert:
			item = s.upsertOne(mod, in, i, dupFields, &inserted, &updated, affected, values)
		}
		if item["status"] == "success" {
			ok++
		} else {
			failed++
		}
		results = append(results, item)
	}
	if len(inserted) > 0 {
		s.emit(mod.name, "insert", inserted, nil, nil)
	}
	if len(updated) > 0 {
		s.emit(mod.name, "update", updated, affected, values)
	}
	status := http.StatusOK
	switch {
	case ok > 0 && failed > 0:
		status = http.StatusMultiStatus
	case ok == 0:
		status = http.StatusBadRequest
	case kind == writeInsert:
		status = http.StatusCreated
	}
	return jsonResp(status, map[string]any{"data": results})
}

func parseHTTPOrZohoTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return http.ParseTime(v)
}

func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case map[string]any:
		if id, ok := t["id"]; ok {
			return str(id)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(t) == ""
	}
	return false
}

// resolveLookups checks lookup references and fills their "name", as Zoho does on read.
func (s *Server) resolveLookups(in map[string]any, idx int) map[string]any {
	for k, v := range in {
		target, isLookup := lookupTargets[k]
		ref, isMap := v.(map[string]any)
		if !isLookup || !isMap {
			continue
		}
		id := str(ref["id"])
		m := s.crm.modules[target]
		var rec map[string]any
		if m != nil {
			rec = m.recs[id]
		}
		if rec == nil {
			return crmErr("INVALID_DATA", "invalid data", map[string]any{"api_name": k, "json_path": fmt.Sprintf("$.data[%d].%s", idx, k),
				"expected_data_type": "lookup"})
		}
		in[k] = map[string]any{"id": id, "name": rec[displayField(target)]}
	}
	return nil
}

func setFullName(mod string, rec map[string]any) {
	if mod == "Leads" || mod == "Contacts" {
		full := strings.TrimSpace(strings.TrimSpace(str(rec["First_Name"])) + " " + str(rec["Last_Name"]))
		rec["Full_Name"] = full
	}
}

func systemField(k string) bool {
	switch k {
	case "id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Full_Name":
		return true
	}
	return false
}

func (s *Server) insertOne(mod *crmModule, in map[string]any, idx int, dupFields []string, inserted *[]string) map[string]any {
	for _, f := range mandatoryFields[mod.name] {
		if isEmpty(in[f]) {
			return crmErr("MANDATORY_NOT_FOUND", "required field not found", map[string]any{"api_name": f, "json_path": fmt.Sprintf("$.data[%d].%s", idx, f)})
		}
	}
	for _, f := range dupFields {
		if isEmpty(in[f]) {
			continue
		}
		if dup := findDuplicate(mod, f, in[f]); dup != nil {
			return crmErr("DUPLICATE_DATA", "duplicate data", map[string]any{"api_name": f, "json_path": fmt.Sprintf("$.data[%d].%s", idx, f),
				"duplicate_record": map[string]any{"id": dup["id"], "module": map[string]any{"api_name": mod.name, "id": mod.id}, "Owner": fakeUser()}})
		}
	}
	if e := s.resolveLookups(in, idx); e != nil {
		return e
	}
	rec := map[string]any{}
	for k, v := range in {
		if !systemField(k) {
			rec[k] = v
		}
	}
	now := s.crmNow()
	id := s.nextID()
	rec["id"] = id
	rec["Created_Time"], rec["Modified_Time"] = now, now
	rec["Created_By"], rec["Modified_By"] = minUser(), minUser()
	if _, ok := rec["Owner"]; !ok {
		rec["Owner"] = fakeUser()
	}
	setFullName(mod.name, rec)
	mod.recs[id] = rec
	*inserted = append(*inserted, id)
	return map[string]any{"code": "SUCCESS", "details": map[string]any{"Modified_Time": now, "Modified_By": minUser(),
		"Created_Time": now, "id": id, "Created_By": minUser(), "$approval_state": "approved"},
		"message": "record added", "status": "success"}
}

func findDuplicate(mod *crmModule, field string, v any) map[string]any {
	want := str(v)
	for _, id := range sortedIDs(mod) {
		r := mod.recs[id]
		if strings.EqualFold(str(r[field]), want) {
			return r
		}
	}
	return nil
}

func (s *Server) updateOne(mod *crmModule, id string, in map[string]any, idx int, updated *[]string,
	affected map[string][]string, values map[string]map[string]any) map[string]any {
	if id == "" {
		return crmErr("MANDATORY_NOT_FOUND", "required field not found", map[string]any{"api_name": "id", "json_path": fmt.Sprintf("$.data[%d].id", idx)})
	}
	rec, ok := mod.recs[id]
	if !ok {
		return crmErr("INVALID_DATA", "the id given seems to be invalid", map[string]any{"api_name": "id", "json_path": fmt.Sprintf("$.data[%d].id", idx)})
	}
	for _, f := range mandatoryFields[mod.name] {
		if v, given := in[f]; given && isEmpty(v) {
			return crmErr("MANDATORY_NOT_FOUND", "required field not found", map[string]any{"api_name": f, "json_path": fmt.Sprintf("$.data[%d].%s", idx, f)})
		}
	}
	if e := s.resolveLookups(in, idx); e != nil {
		return e
	}
	var changed []string
	vals := map[string]any{}
	for k, v := range in {
		if systemField(k) {
			continue
		}
		if !jsonEqual(rec[k], v) {
			changed = append(changed, k)
			vals[k] = v
		}
		rec[k] = v
	}
	slices.Sort(changed)
	setFullName(mod.name, rec)
	now := s.crmNow()
	rec["Modified_Time"] = now
	rec["Modified_By"] = minUser()
	*updated = append(*updated, id)
	affected[id] = changed
	values[id] = vals
	return map[string]any{"code": "SUCCESS", "details": map[string]any{"Modified_Time": now, "Modified_By": minUser(),
		"Created_Time": rec["Created_Time"], "id": id, "Created_By": rec["Created_By"]},
		"message": "record updated", "status": "success"}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (s *Server) upsertOne(mod *crmModule, in map[string]any, idx int, dupFields []string, inserted, updated *[]string,
	affected map[string][]string, values map[string]map[string]any) map[string]any {
	if id := str(in["id"]); id != "" {
		if _, ok := mod.recs[id]; ok {
			item := s.updateOne(mod, id, in, idx, updated, affected, values)
			if item["status"] == "success" {
				item["action"] = "update" // no duplicate_field: the OAS types it as a non-nullable string
			}
			return item
		}
	}
	for _, f := range dupFields {
		if isEmpty(in[f]) {
			continue
		}
		if dup := findDuplicate(mod, f, in[f]); dup != nil {
			item := s.updateOne(mod, str(dup["id"]), in, idx, updated, affected, values)
			if item["status"] == "success" {
				item["action"] = "update"
				item["duplicate_field"] = f
			}
			return item
		}
	}
	item := s.insertOne(mod, in, idx, nil, inserted)
	if item["status"] == "success" {
		item["action"] = "insert" // duplicate_field omitted rather than null, see above
	}
	return item
}

func (s *Server) crmDelete(rq *request, mod *crmModule, ids string, bulk bool) *response {
	if bulk && strings.TrimSpace(ids) == "" {
		return missingParam("ids")
	}
	list := splitList(ids)
	if len(list) > 100 {
		return crmErrResp(http.StatusBadRequest, "LIMIT_EXCEEDED", "Record count exceeded", map[string]any{"limit": 100, "param_name": "ids"})
	}
	var results []any
	var deleted []string
	for _, id := range list {
		if _, ok := mod.recs[id]; !ok {
			results = append(results, crmErr("INVALID_DATA", "record not deleted", map[string]any{"id": id}))
			continue
		}
		s.removeRecordLocked(mod, id)
		deleted = append(deleted, id)
		results = append(results, map[string]any{"code": "SUCCESS", "details": map[string]any{"id": id}, "message": "record deleted", "status": "success"})
	}
	if len(deleted) > 0 {
		s.emit(mod.name, "delete", deleted, nil, nil)
	}
	status := http.StatusOK
	switch {
	case len(deleted) == 0:
		status = http.StatusBadRequest
	case len(deleted) < len(list):
		status = http.StatusMultiStatus
	}
	return jsonResp(status, map[string]any{"data": results})
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ---- reads -----------------------------------------------------------------------------------------------------

func (s *Server) crmGet(rq *request, mod *crmModule, id string) *response {
	rec, ok := mod.recs[id]
	if !ok {
		return emptyResp(http.StatusNoContent)
	}
	out := copyRec(rec)
	if f := rq.query("fields"); f != "" {
		out = project(rec, splitList(f))
	}
	return jsonResp(http.StatusOK, map[string]any{"data": []any{out}})
}

func project(rec map[string]any, fields []string) map[string]any {
	out := map[string]any{"id": rec["id"]}
	for _, f := range fields {
		out[f] = deepCopy(rec[f])
	}
	return out
}

func sortedIDs(mod *crmModule) []string {
	ids := make([]string, 0, len(mod.recs))
	for id := range mod.recs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmpID)
	return ids
}

// cmpID orders numeric id strings numerically.
func cmpID(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// listSignature binds a page_token to the parameters it was issued for (§2.9).
func listSignature(q url.Values) string {
	c := url.Values{}
	for k, v := range q {
		if k != "page" && k != "page_token" {
			c[k] = v
		}
	}
	return c.Encode()
}

func (s *Server) crmList(rq *request, mod *crmModule) *response {
	q := rq.r.URL.Query()
	if strings.TrimSpace(q.Get("fields")) == "" {
		return missingParam("fields")
	}
	fields := splitList(q.Get("fields"))
	if len(fields) > 50 {
		return crmErrResp(http.StatusBadRequest, "LIMIT_EXCEEDED", "Max field limit exceeded", map[string]any{"param_name": "fields", "limit": 50})
	}
	perPage := 200
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return invalidParam("per_page")
		}
		perPage = n
	}
	sortBy := q.Get("sort_by")
	if sortBy == "" {
		sortBy = "id"
	}
	if sortBy != "id" && sortBy != "Created_Time" && sortBy != "Modified_Time" {
		return invalidParam("sort_by")
	}
	sortOrder := q.Get("sort_order")
	if sortOrder == "" {
		sortOrder = "desc"
	}
	if sortOrder != "asc" && sortOrder != "desc" {
		return invalidParam("sort_order")
	}
	now := s.now()
	sig := listSignature(q)
	offset, page := 0, 1
	if tok := q.Get("page_token"); tok != "" {
		if q.Get("page") != "" {
			return crmErrResp(http.StatusBadRequest, "AMBIGUITY_DURING_PROCESSING", "page and page_token cannot be given together",
				map[string]any{"ambiguity_due_to": []string{"page", "page_token"}})
		}
		pt, ok := s.crm.pageTokens[tok]
		switch {
		case !ok || pt.module != mod.name:
			return invalidParam("page_token")
		case !now.Before(pt.expires):
			return crmErrResp(http.StatusBadRequest, "EXPIRED_VALUE", "The given page_token has expired", map[string]any{"param_name": "page_token"})
		case pt.sig != sig:
			return crmErrResp(http.StatusBadRequest, "TOKEN_BOUND_DATA_MISMATCH", "The given parameters do not match those the page_token was issued for",
				map[string]any{"param_name": "page_token"})
		}
		offset = pt.offset
		page = offset/perPage + 1
	} else if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return invalidParam("page")
		}
		page = n
		if page*perPage > 2000 {
			return crmErrResp(http.StatusBadRequest, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
				"You can only get the first 2000 records without using page_token param", map[string]any{"limit": 2000})
		}
		offset = (page - 1) * perPage
	}
	if offset >= 100000 {
		return crmErrResp(http.StatusBadRequest, "PAGINATION_LIMIT_EXCEEDED", "You can only get the first 100000 records", map[string]any{"limit": 100000})
	}

	recs := s.filteredRecords(mod, q, rq.r.Header.Get("If-Modified-Since"))
	ims := rq.r.Header.Get("If-Modified-Since") != ""
	if len(recs) == 0 {
		if ims {
			return emptyResp(http.StatusNotModified)
		}
		return emptyResp(http.StatusNoContent)
	}
	sortRecords(recs, sortBy, sortOrder == "desc")
	if offset >= len(recs) {
		return emptyResp(http.StatusNoContent)
	}
	end := min(offset+perPage, len(recs))
	data := make([]any, 0, end-offset)
	for _, r := range recs[offset:end] {
		data = append(data, project(r, fields))
	}
	more := end < len(recs)
	info := map[string]any{"call": false, "per_page": perPage, "count": len(data), "sort_by": sortBy, "page": page,
		"sort_order": sortOrder, "email": false, "more_records": more}
	if more {
		tok := randHex(16)
		exp := now.Add(24 * time.Hour)
		s.crm.pageTokens[tok] = &pageToken{module: mod.name, sig: sig, offset: end, expires: exp}
		info["next_page_token"] = tok
		info["page_token_expiry"] = exp.Format(crmTimeLayout)
	}
	return jsonResp(http.StatusOK, map[string]any{"data": data, "info": info})
}

func (s *Server) filteredRecords(mod *crmModule, q url.Values, imsHeader string) []map[string]any {
	var since time.Time
	if imsHeader != "" {
		since, _ = parseHTTPOrZohoTime(imsHeader)
	}
	var ids map[string]bool
	if v := q.Get("ids"); v != "" {
		ids = map[string]bool{}
		for _, id := range splitList(v) {
			ids[id] = true
		}
	}
	var out []map[string]any
	for _, id := range sortedIDs(mod) {
		r := mod.recs[id]
		if ids != nil && !ids[id] {
			continue
		}
		if !since.IsZero() {
			mt, err := time.Parse(crmTimeLayout, str(r["Modified_Time"]))
			if err != nil || !mt.After(since) {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func sortRecords(recs []map[string]any, by string, desc bool) {
	slices.SortStableFunc(recs, func(a, b map[string]any) int {
		c := 0
		if by != "id" {
			ta, _ := time.Parse(crmTimeLayout, str(a[by]))
			tb, _ := time.Parse(crmTimeLayout, str(b[by]))
			c = ta.Compare(tb)
		}
		if c == 0 {
			c = cmpID(str(a["id"]), str(b["id"]))
		}
		if desc {
			return -c
		}
		return c
	})
}

// ---- search ----------------------------------------------------------------------------------------------------

func (s *Server) crmSearch(rq *request, mod *crmModule) *response {
	q := rq.r.URL.Query()
	var match func(map[string]any) bool
	switch {
	case q.Get("criteria") != "":
		crit, err := parseCriteria(q.Get("criteria"))
		if err != nil {
			return crmErrResp(http.StatusBadRequest, "INVALID_QUERY", "Please check whether the input values are correct",
				map[string]any{"reason": err.Error(), "param_name": "criteria"})
		}
		match = crit.match
	case q.Get("email") != "":
		e := q.Get("email")
		match = func(r map[string]any) bool {
			return strings.EqualFold(str(r["Email"]), e) || strings.EqualFold(str(r["Secondary_Email"]), e)
		}
	case q.Get("phone") != "":
		p := q.Get("phone")
		match = func(r map[string]any) bool { return str(r["Phone"]) == p || str(r["Mobile"]) == p }
	case q.Get("word") != "":
		w := strings.ToLower(q.Get("word"))
		match = func(r map[string]any) bool {
			for _, v := range r {
				if sv, ok := v.(string); ok && strings.Contains(strings.ToLower(sv), w) {
					return true
				}
			}
			return false
		}
	default:
		return missingParam("criteria")
	}
	perPage, page, bad := rq.paging()
	if bad != nil {
		return bad
	}
	var hits []map[string]any
	for _, id := range sortedIDs(mod) {
		if r := mod.recs[id]; match(r) {
			hits = append(hits, r)
		}
	}
	if len(hits) > 2000 { // search results are capped at 2,000 (§2.9)
		hits = hits[:2000]
	}
	off := (page - 1) * perPage
	if off >= len(hits) {
		return emptyResp(http.StatusNoContent)
	}
	end := min(off+perPage, len(hits))
	fields := splitList(q.Get("fields"))
	data := make([]any, 0, end-off)
	for _, r := range hits[off:end] {
		if len(fields) > 0 {
			data = append(data, project(r, fields))
		} else {
			data = append(data, copyRec(r))
		}
	}
	return jsonResp(http.StatusOK, map[string]any{"data": data, "info": map[string]any{"per_page": perPage, "count": len(data),
		"page": page, "more_records": end < len(hits)}})
}

// ---- seeding / inspection --------------------------------------------------------------------------------------

// CRMInsert stores a record directly (no validation, no notification) and returns its id. A numeric "id" in rec
// is kept, so fixtures can use fixed ids; Created_Time/Modified_Time default to the server clock.
func (s *Server) CRMInsert(module string, rec map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crmInsertLocked(module, rec)
}

func (s *Server) crmInsertLocked(module string, rec map[string]any) string {
	mod := s.crm.addModule(module)
	r := copyRec(rec)
	id := str(r["id"])
	if !validID.MatchString(id) {
		id = s.nextID()
	}
	r["id"] = id
	now := s.crmNow()
	for _, k := range []string{"Created_Time", "Modified_Time"} {
		if _, ok := r[k]; !ok {
			r[k] = now
		}
	}
	for _, k := range []string{"Created_By", "Modified_By"} {
		if _, ok := r[k]; !ok {
			r[k] = minUser()
		}
	}
	if _, ok := r["Owner"]; !ok {
		r["Owner"] = fakeUser()
	}
	setFullName(module, r)
	mod.recs[id] = r
	return id
}

// CRMRecord returns a copy of a stored record.
func (s *Server) CRMRecord(module, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mod, ok := s.crm.modules[module]
	if !ok {
		return nil, false
	}
	r, ok := mod.recs[id]
	if !ok {
		return nil, false
	}
	return copyRec(r), true
}

// CRMRecords returns copies of all records of a module, sorted by id.
func (s *Server) CRMRecords(module string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	mod, ok := s.crm.modules[module]
	if !ok {
		return nil
	}
	var out []map[string]any
	for _, id := range sortedIDs(mod) {
		out = append(out, copyRec(mod.recs[id]))
	}
	return out
}

// paging reads CRM's page and per_page (default 1 and 200, per_page at most
// 200); a bad value yields Zoho's INVALID_DATA answer.
func (rq *request) paging() (perPage, page int, bad *response) {
	perPage, page = 200, 1
	if v := rq.query("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return 0, 0, invalidParam("per_page")
		}
		perPage = n
	}
	if v := rq.query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, invalidParam("page")
		}
		page = n
	}
	return perPage, page, nil
}
