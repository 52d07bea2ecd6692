package zohotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

const booksRateMsg = "For security reasons your organization has been blocked as it have exceeded the maximum number of requests per minute that can originate from an organization."

// booksTimeLayout: Books timestamps carry the offset without a colon (§8.2).
const booksTimeLayout = "2006-01-02T15:04:05-0700"

// booksEntity describes one Books collection for the generic §8.5 rule.
type booksEntity struct {
	plural, singular string
	idKey            string
	title            string // "Invoice" in "Invoice does not exist."
	required         []string
	numberKey        string // auto-numbered field, e.g. invoice_number
	numberPrefix     string
	lineItems        bool // computes totals from line_items
	initialStatus    string
	created          string
	updated          string
	deleted          string
}

// newBooksEntities returns the entity table; each Server has its own so nothing package-level is mutable.
func newBooksEntities() map[string]*booksEntity {
	m := map[string]*booksEntity{}
	for _, e := range []*booksEntity{
		{plural: "contacts", singular: "contact", title: "Contact", required: []string{"contact_name"}, initialStatus: "active",
			created: "The contact has been added.", updated: "Contact information has been saved.", deleted: "The contact has been deleted."},
		{plural: "items", singular: "item", title: "Item", required: []string{"name", "rate"}, initialStatus: "active",
			created: "The item has been added.", updated: "The item details have been updated.", deleted: "The item has been deleted."},
		{plural: "invoices", singular: "invoice", title: "Invoice", required: []string{"customer_id", "line_items"}, numberKey: "invoice_number",
			numberPrefix: "INV-", lineItems: true, initialStatus: "draft",
			created: "The invoice has been created.", updated: "Invoice information has been updated.", deleted: "The invoice has been deleted."},
		{plural: "estimates", singular: "estimate", title: "Estimate", required: []string{"customer_id", "line_items"}, numberKey: "estimate_number",
			numberPrefix: "EST-", lineItems: true, initialStatus: "draft",
			created: "The estimate has been created.", updated: "Estimate information has been updated.", deleted: "The estimate has been deleted."},
		{plural: "salesorders", singular: "salesorder", title: "Sales Order", required: []string{"customer_id", "line_items"}, numberKey: "salesorder_number",
			numberPrefix: "SO-", lineItems: true, initialStatus: "draft",
			created: "Sales Order has been created.", updated: "Sales Order has been updated.", deleted: "Sales Order has been deleted."},
		{plural: "customerpayments", singular: "payment", title: "Payment", required: []string{"customer_id", "amount"}, numberKey: "payment_number",
			numberPrefix: "", created: "The payment has been created.", updated: "The payment has been updated.", deleted: "The payment has been deleted."},
		{plural: "creditnotes", singular: "creditnote", title: "Credit Note", required: []string{"customer_id", "line_items"}, numberKey: "creditnote_number",
			numberPrefix: "CN-", lineItems: true, initialStatus: "draft",
			created: "Credit Note has been created.", updated: "Credit Note has been updated.", deleted: "Credit Note has been deleted."},
		{plural: "purchaseorders", singular: "purchaseorder", title: "Purchase Order", required: []string{"vendor_id", "line_items"}, numberKey: "purchaseorder_number",
			numberPrefix: "PO-", lineItems: true, initialStatus: "draft",
			created: "Purchase order has been created.", updated: "Purchase order has been updated.", deleted: "Purchase order has been deleted."},
	} {
		e.idKey = e.singular + "_id"
		if e.plural == "customerpayments" {
			e.idKey = "payment_id"
		}
		m[e.plural] = e
	}
	return m
}

type booksOrg struct {
	id, name string
	data     map[string]map[string]map[string]any // plural → id → record
	numbers  map[string]int                       // plural → last auto number
	comments map[string][]map[string]any          // entity id → comments
	files    map[string]*Attachment               // entity id → attachment
}

func newBooksOrg(id, name string) *booksOrg {
	return &booksOrg{id: id, name: name, data: map[string]map[string]map[string]any{}, numbers: map[string]int{},
		comments: map[string][]map[string]any{}, files: map[string]*Attachment{}}
}

func booksErr(code int, msg string) map[string]any {
	return map[string]any{"code": code, "message": msg}
}

func booksErrResp(status, code int, msg string) *response {
	return jsonResp(status, booksErr(code, msg))
}

func (s *Server) nextBooksID() string {
	s.bookSeq += 1 + s.bookSeq%5
	return strconv.FormatInt(s.bookSeq, 10)
}

func (s *Server) serveBooks(rq *request) *response {
	if !s.validAccessToken(bearerToken(rq.r.Header)) {
		return booksErrResp(http.StatusUnauthorized, 57, "You are not authorized to perform this operation")
	}
	seg := rq.segs
	if len(seg) == 1 && seg[0] == "organizations" && rq.r.Method == http.MethodGet {
		return s.booksOrganizations()
	}
	orgID := rq.query("organization_id")
	if orgID == "" {
		orgID = rq.r.Header.Get("X-com-zoho-books-organizationid")
	}
	org, ok := s.books[orgID]
	if !ok {
		return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for organization_id")
	}
	if s.cfg.booksRateN > 0 {
		w := s.booksRL[orgID]
		if w == nil {
			w = &window{}
			s.booksRL[orgID] = w
		}
		if !w.allow(s.now(), s.cfg.booksRateN, s.cfg.booksRatePer) {
			return booksErrResp(http.StatusTooManyRequests, 44, booksRateMsg)
		}
	}
	if len(seg) == 0 {
		return booksErrResp(http.StatusNotFound, 5, "Invalid URL Passed")
	}
	ent, ok := s.booksEnt[seg[0]]
	if !ok {
		return booksErrResp(http.StatusNotFound, 5, "Invalid URL Passed")
	}
	m := rq.r.Method
	switch len(seg) {
	case 1:
		switch m {
		case http.MethodGet:
			return s.booksList(rq, org, ent)
		case http.MethodPost:
			return s.booksCreate(rq, org, ent)
		}
		return booksErrResp(http.StatusMethodNotAllowed, 5, "Invalid URL Passed")
	}
	id := seg[1]
	rec, exists := org.data[ent.plural][id]
	if !exists {
		return booksErrResp(http.StatusNotFound, 1002, ent.title+" does not exist.")
	}
	switch {
	case len(seg) == 2:
		switch m {
		case http.MethodGet:
			return jsonResp(http.StatusOK, map[string]any{"code": 0, "message": "success", ent.singular: copyRec(rec)})
		case http.MethodPut:
			return s.booksUpdate(rq, org, ent, rec)
		case http.MethodDelete:
			delete(org.data[ent.plural], id)
			delete(org.comments, id)
			delete(org.files, id)
			return jsonResp(http.StatusOK, booksErr(0, ent.deleted))
		}
	case seg[2] == "comments":
		return s.booksComments(rq, org, ent, rec, seg[3:])
	case seg[2] == "attachment" && len(seg) == 3, seg[2] == "documents" && len(seg) == 4:
		return s.booksAttachment(rq, org, ent, id)
	case seg[2] == "status" && len(seg) == 4 && m == http.MethodPost:
		rec["status"] = seg[3]
		rec["last_modified_time"] = s.now().Format(booksTimeLayout)
		return jsonResp(http.StatusOK, booksErr(0, fmt.Sprintf("%s status has been changed to %s.", ent.title, titleCase(seg[3]))))
	case len(seg) == 3 && m == http.MethodPost && (seg[2] == "active" || seg[2] == "inactive"):
		rec["status"] = seg[2]
		return jsonResp(http.StatusOK, booksErr(0, fmt.Sprintf("The %s has been marked as %s.", strings.ToLower(ent.title), seg[2])))
	case len(seg) == 3 && m == http.MethodPost && seg[2] == "email":
		if rec["status"] == "draft" {
			rec["status"] = "sent"
		}
		return jsonResp(http.StatusOK, booksErr(0, fmt.Sprintf("Your %s has been sent.", strings.ToLower(ent.title))))
	case len(seg) == 3 && m == http.MethodPost && (seg[2] == "submit" || seg[2] == "approve"):
		status := map[string]string{"submit": "pending_approval", "approve": "approved"}[seg[2]]
		rec["status"] = status
		return jsonResp(http.StatusOK, booksErr(0, fmt.Sprintf("The %s has been %sed.", strings.ToLower(ent.title), strings.TrimSuffix(seg[2], "e"))))
	}
	return booksErrResp(http.StatusNotFound, 5, "Invalid URL Passed")
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Server) booksOrganizations() *response {
	ids := make([]string, 0, len(s.books))
	for id := range s.books {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var orgs []any
	for _, id := range ids {
		o := s.books[id]
		orgs = append(orgs, map[string]any{"organization_id": o.id, "name": o.name, "contact_name": "Patricia Boyle",
			"email": "p.boyle@zylker.com", "is_default_org": o.id == s.creds.OrgID, "currency_code": "USD",
			"time_zone": "PST", "is_org_active": true})
	}
	return jsonResp(http.StatusOK, map[string]any{"code": 0, "message": "success", "organizations": orgs})
}

// booksBody reads a JSON body, or the legacy JSONString form field (§8.1).
func booksBody(rq *request) (map[string]any, *response) {
	raw := rq.body
	ct, _, _ := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(rq.body))
		if err != nil || form.Get("JSONString") == "" {
			return nil, booksErrResp(http.StatusBadRequest, 1038, "JSON is not well formed")
		}
		raw = []byte(form.Get("JSONString"))
	case "multipart/form-data":
		if v := multipartValue(rq, "JSONString"); v != "" {
			raw = []byte(v)
		}
	}
	if q := rq.query("JSONString"); q != "" && len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte(q)
	}
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil || in == nil {
		return nil, booksErrResp(http.StatusBadRequest, 1038, "JSON is not well formed")
	}
	return in, nil
}

func multipartValue(rq *request, name string) string {
	_, p, err := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	mr := multipart.NewReader(bytes.NewReader(rq.body), p["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if part.FormName() == name {
			b, _ := io.ReadAll(part)
			return string(b)
		}
	}
}

func (s *Server) booksCreate(rq *request, org *booksOrg, ent *booksEntity) *response {
	in, errResp := booksBody(rq)
	if errResp != nil {
		return errResp
	}
	for _, f := range ent.required {
		if isEmpty(in[f]) {
			return booksErrResp(http.StatusBadRequest, 4, fmt.Sprintf("Please enter %s.", strings.ReplaceAll(f, "_", " ")))
		}
	}
	rec := map[string]any{}
	for k, v := range in {
		rec[k] = v
	}
	if e := s.booksDerive(org, ent, rec); e != nil {
		return e
	}
	if ent.numberKey != "" {
		if rq.query("ignore_auto_number_generation") == "true" {
			if isEmpty(rec[ent.numberKey]) {
				return booksErrResp(http.StatusBadRequest, 4, fmt.Sprintf("Please enter %s.", strings.ReplaceAll(ent.numberKey, "_", " ")))
			}
		} else {
			org.numbers[ent.plural]++
			rec[ent.numberKey] = fmt.Sprintf("%s%05d", ent.numberPrefix, org.numbers[ent.plural])
		}
	}
	id := s.nextBooksID()
	rec[ent.idKey] = id
	if ent.initialStatus != "" {
		rec["status"] = ent.initialStatus
		if ent.plural == "invoices" && rq.query("send") == "true" {
			rec["status"] = "sent"
		}
	}
	now := s.now()
	rec["created_time"] = now.Format(booksTimeLayout)
	rec["last_modified_time"] = now.Format(booksTimeLayout)
	if _, ok := rec["date"]; !ok && ent.lineItems {
		rec["date"] = now.Format("2006-01-02")
	}
	s.booksStore(org, ent, rec)
	return jsonResp(http.StatusCreated, map[string]any{"code": 0, "message": ent.created, ent.singular: copyRec(rec)})
}

func (s *Server) booksStore(org *booksOrg, ent *booksEntity, rec map[string]any) {
	if org.data[ent.plural] == nil {
		org.data[ent.plural] = map[string]map[string]any{}
	}
	org.data[ent.plural][str(rec[ent.idKey])] = rec
}

// booksDerive fills computed fields: customer_name from the contact, line-item totals, contact_type.
func (s *Server) booksDerive(org *booksOrg, ent *booksEntity, rec map[string]any) *response {
	if ent.plural == "contacts" {
		if isEmpty(rec["contact_type"]) {
			rec["contact_type"] = "customer"
		}
		return nil
	}
	if cid, ok := rec["customer_id"]; ok {
		c, exists := org.data["contacts"][str(cid)]
		if !exists {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for customer_id")
		}
		rec["customer_id"] = str(cid)
		rec["customer_name"] = c["contact_name"]
	}
	if ent.plural == "customerpayments" {
		if _, ok := toFloat(rec["amount"]); !ok {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for amount")
		}
		return nil
	}
	if !ent.lineItems {
		return nil
	}
	lines, ok := rec["line_items"].([]any)
	if !ok || len(lines) == 0 {
		return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for line_items")
	}
	var sub, tax float64
	out := make([]any, 0, len(lines))
	for _, l := range lines {
		li, ok := l.(map[string]any)
		if !ok {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for line_items")
		}
		li = copyRec(li)
		if iid := str(li["item_id"]); iid != "" {
			item, exists := org.data["items"][iid]
			if !exists {
				return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for item_id")
			}
			li["item_id"] = iid
			if isEmpty(li["name"]) {
				li["name"] = item["name"]
			}
			if _, ok := li["rate"]; !ok {
				li["rate"] = item["rate"]
			}
		} else if isEmpty(li["name"]) || li["rate"] == nil {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for line_items")
		}
		rate, ok := toFloat(li["rate"])
		if !ok {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for rate")
		}
		qty := 1.0
		if q, ok := toFloat(li["quantity"]); ok {
			qty = q
		}
		total := round2(rate * qty)
		li["rate"], li["quantity"], li["item_total"] = rate, qty, total
		if isEmpty(li["line_item_id"]) {
			li["line_item_id"] = s.nextBooksID()
		}
		if pct, ok := toFloat(li["tax_percentage"]); ok {
			tax += total * pct / 100
		}
		sub += total
		out = append(out, li)
	}
	rec["line_items"] = out
	rec["sub_total"] = round2(sub)
	rec["tax_total"] = round2(tax)
	rec["total"] = round2(sub + tax)
	if ent.plural == "invoices" || ent.plural == "creditnotes" {
		rec["balance"] = rec["total"]
	}
	if isEmpty(rec["currency_code"]) {
		rec["currency_code"] = "USD"
	}
	return nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case string:
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	}
	return 0, false
}

func (s *Server) booksUpdate(rq *request, org *booksOrg, ent *booksEntity, rec map[string]any) *response {
	in, errResp := booksBody(rq)
	if errResp != nil {
		return errResp
	}
	next := copyRec(rec)
	for k, v := range in {
		if k == ent.idKey {
			continue
		}
		next[k] = v
	}
	for _, f := range ent.required {
		if isEmpty(next[f]) {
			return booksErrResp(http.StatusBadRequest, 4, fmt.Sprintf("Please enter %s.", strings.ReplaceAll(f, "_", " ")))
		}
	}
	if e := s.booksDerive(org, ent, next); e != nil {
		return e
	}
	next["last_modified_time"] = s.now().Format(booksTimeLayout)
	s.booksStore(org, ent, next)
	return jsonResp(http.StatusOK, map[string]any{"code": 0, "message": ent.updated, ent.singular: copyRec(next)})
}

// booksReserved are list parameters that are not field filters.
var booksReserved = map[string]bool{"organization_id": true, "page": true, "per_page": true, "sort_column": true,
	"sort_order": true, "search_text": true, "filter_by": true, "JSONString": true}

func (s *Server) booksList(rq *request, org *booksOrg, ent *booksEntity) *response {
	q := rq.r.URL.Query()
	page, perPage := 1, 200
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for page")
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for per_page")
		}
		perPage = n
	}
	sortCol := q.Get("sort_column")
	if sortCol == "" {
		sortCol = "created_time"
	}
	sortOrder := q.Get("sort_order")
	if sortOrder == "" {
		sortOrder = "D"
	}
	filterBy := q.Get("filter_by")
	if filterBy == "" {
		filterBy = "Status.All"
	}
	var recs []map[string]any
	for _, r := range org.data[ent.plural] {
		if booksMatch(r, q, filterBy) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b map[string]any) int {
		c := compareValues(a[sortCol], b[sortCol])
		if c == 0 {
			c = cmpID(str(a[ent.idKey]), str(b[ent.idKey]))
		}
		if sortOrder == "D" {
			return -c
		}
		return c
	})
	off := (page - 1) * perPage
	list := []any{}
	for i := off; i < len(recs) && i < off+perPage; i++ {
		list = append(list, copyRec(recs[i]))
	}
	return jsonResp(http.StatusOK, map[string]any{"code": 0, "message": "success", ent.plural: list,
		"page_context": map[string]any{"page": page, "per_page": perPage, "has_more_page": off+perPage < len(recs),
			"report_name": titleCase(ent.plural), "applied_filter": filterBy, "sort_column": sortCol, "sort_order": sortOrder}})
}

func booksMatch(r map[string]any, q url.Values, filterBy string) bool {
	if st, ok := strings.CutPrefix(filterBy, "Status."); ok && st != "All" {
		if !strings.EqualFold(strings.ReplaceAll(str(r["status"]), "_", ""), st) {
			return false
		}
	}
	if t := strings.ToLower(q.Get("search_text")); t != "" {
		found := false
		for _, v := range r {
			if sv, ok := v.(string); ok && strings.Contains(strings.ToLower(sv), t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for k := range q {
		if booksReserved[k] {
			continue
		}
		want := q.Get(k)
		switch {
		case strings.HasSuffix(k, "_contains"):
			if !strings.Contains(strings.ToLower(str(r[strings.TrimSuffix(k, "_contains")])), strings.ToLower(want)) {
				return false
			}
		case strings.HasSuffix(k, "_startswith"):
			if !strings.HasPrefix(strings.ToLower(str(r[strings.TrimSuffix(k, "_startswith")])), strings.ToLower(want)) {
				return false
			}
		case strings.HasSuffix(k, "_start") || strings.HasSuffix(k, "_after"):
			f := strings.TrimSuffix(strings.TrimSuffix(k, "_start"), "_after")
			if v, ok := r[f]; ok && str(v) < want || (strings.HasSuffix(k, "_after") && str(r[f]) == want) {
				return false
			}
		case strings.HasSuffix(k, "_end") || strings.HasSuffix(k, "_before"):
			f := strings.TrimSuffix(strings.TrimSuffix(k, "_end"), "_before")
			if v, ok := r[f]; ok && str(v) > want || (strings.HasSuffix(k, "_before") && str(r[f]) == want) {
				return false
			}
		default:
			if _, has := r[k]; !has {
				return false // unknown filter fields match nothing, so typos show up in tests
			}
			if !strings.EqualFold(str(r[k]), want) {
				return false
			}
		}
	}
	return true
}

func compareValues(a, b any) int {
	fa, okA := a.(float64)
	fb, okB := b.(float64)
	if okA && okB {
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	}
	return strings.Compare(str(a), str(b))
}

func (s *Server) booksComments(rq *request, org *booksOrg, ent *booksEntity, rec map[string]any, rest []string) *response {
	id := str(rec[ent.idKey])
	switch {
	case len(rest) == 0 && rq.r.Method == http.MethodGet:
		list := []any{}
		for _, c := range org.comments[id] {
			list = append(list, copyRec(c))
		}
		return jsonResp(http.StatusOK, map[string]any{"code": 0, "message": "success", "comments": list})
	case len(rest) == 0 && rq.r.Method == http.MethodPost:
		in, errResp := booksBody(rq)
		if errResp != nil {
			return errResp
		}
		if isEmpty(in["description"]) {
			return booksErrResp(http.StatusBadRequest, 4, "Please enter description.")
		}
		now := s.now()
		c := map[string]any{"comment_id": s.nextBooksID(), ent.idKey: id, "description": in["description"],
			"commented_by_id": minUser()["id"], "commented_by": minUser()["name"], "comment_type": "internal",
			"date": now.Format("2006-01-02"), "date_description": "few seconds ago", "time": now.Format("3:04 PM"),
			"show_comment_to_clients": in["show_comment_to_clients"] == true}
		org.comments[id] = append(org.comments[id], c)
		return jsonResp(http.StatusCreated, map[string]any{"code": 0, "message": "Comments added.", "comment": copyRec(c)})
	case len(rest) == 1:
		for i, c := range org.comments[id] {
			if c["comment_id"] != rest[0] {
				continue
			}
			switch rq.r.Method {
			case http.MethodPut:
				in, errResp := booksBody(rq)
				if errResp != nil {
					return errResp
				}
				if !isEmpty(in["description"]) {
					c["description"] = in["description"]
				}
				return jsonResp(http.StatusOK, map[string]any{"code": 0, "message": "Comment has been updated.", "comment": copyRec(c)})
			case http.MethodDelete:
				org.comments[id] = slices.Delete(org.comments[id], i, i+1)
				return jsonResp(http.StatusOK, booksErr(0, "The comment has been deleted."))
			}
		}
		return booksErrResp(http.StatusNotFound, 1002, "Comment does not exist.")
	}
	return booksErrResp(http.StatusNotFound, 5, "Invalid URL Passed")
}

// booksAttachment handles /{es}/{id}/attachment (multipart field "attachment", §8.5) and
// DELETE /{es}/{id}/documents/{doc_id}.
func (s *Server) booksAttachment(rq *request, org *booksOrg, ent *booksEntity, id string) *response {
	switch rq.r.Method {
	case http.MethodPost:
		f, err := multipartFile(rq, "attachment")
		if err != nil {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for attachment")
		}
		ext := strings.ToLower(f.FileName[strings.LastIndex(f.FileName, ".")+1:])
		if !slices.Contains([]string{"gif", "png", "jpeg", "jpg", "bmp", "pdf"}, ext) {
			return booksErrResp(http.StatusBadRequest, 2, "Invalid value passed for attachment")
		}
		f.ID = s.nextBooksID()
		org.files[id] = f
		org.data[ent.plural][id]["documents"] = []any{map[string]any{"document_id": f.ID, "file_name": f.FileName}}
		return jsonResp(http.StatusOK, booksErr(0, "Your file has been attached."))
	case http.MethodGet:
		f, ok := org.files[id]
		if !ok {
			return booksErrResp(http.StatusNotFound, 1002, "Attachment does not exist.")
		}
		return &response{status: http.StatusOK, header: http.Header{"Content-Type": {f.ContentType},
			"Content-Disposition": {mime.FormatMediaType("attachment", map[string]string{"filename": f.FileName})}}, body: f.Content}
	case http.MethodDelete:
		if _, ok := org.files[id]; !ok {
			return booksErrResp(http.StatusNotFound, 1002, "Attachment does not exist.")
		}
		delete(org.files, id)
		delete(org.data[ent.plural][id], "documents")
		return jsonResp(http.StatusOK, booksErr(0, fmt.Sprintf("Your file is no longer attached to the %s.", strings.ToLower(ent.title))))
	}
	return booksErrResp(http.StatusMethodNotAllowed, 5, "Invalid URL Passed")
}

// ---- seeding / inspection --------------------------------------------------------------------------------------

// BooksInsert stores an entity directly (no validation) and returns its id; entity is the plural path name.
// The organization is created if it does not exist yet.
func (s *Server) BooksInsert(orgID, entity string, rec map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.booksInsertLocked(orgID, entity, rec)
}

func (s *Server) booksInsertLocked(orgID, entity string, rec map[string]any) string {
	org, ok := s.books[orgID]
	if !ok {
		org = newBooksOrg(orgID, "Org "+orgID)
		s.books[orgID] = org
	}
	ent, ok := s.booksEnt[entity]
	if !ok {
		ent = &booksEntity{plural: entity, singular: strings.TrimSuffix(entity, "s"), idKey: strings.TrimSuffix(entity, "s") + "_id",
			title: titleCase(strings.TrimSuffix(entity, "s"))} // seeding only; the API serves the known entities
	}
	r := copyRec(rec)
	id := str(r[ent.idKey])
	if id == "" {
		id = s.nextBooksID()
		r[ent.idKey] = id
	}
	now := s.now().Format(booksTimeLayout)
	for _, k := range []string{"created_time", "last_modified_time"} {
		if _, ok := r[k]; !ok {
			r[k] = now
		}
	}
	if _, ok := r["status"]; !ok && ent.initialStatus != "" {
		r["status"] = ent.initialStatus
	}
	s.booksStore(org, ent, r)
	return id
}

// BooksRecord returns a copy of one stored Books entity.
func (s *Server) BooksRecord(orgID, entity, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	org, ok := s.books[orgID]
	if !ok {
		return nil, false
	}
	r, ok := org.data[entity][id]
	if !ok {
		return nil, false
	}
	return copyRec(r), true
}

// BooksRecords returns copies of all stored entities of one kind, sorted by id.
func (s *Server) BooksRecords(orgID, entity string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	org, ok := s.books[orgID]
	if !ok {
		return nil
	}
	ids := make([]string, 0, len(org.data[entity]))
	for id := range org.data[entity] {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmpID)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, copyRec(org.data[entity][id]))
	}
	return out
}
