package zohotest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// maxAttachmentBytes is the 20 MB per-file cap (§4.1).
const maxAttachmentBytes = 20 << 20

// Attachment is a file (or link) attached to a CRM record or a Books entity.
type Attachment struct {
	ID          string
	FileName    string
	Title       string
	Size        int64
	Content     []byte
	ContentType string
	LinkURL     string // set for link attachments (attachmentUrl)
	Created     time.Time
}

var (
	errNoFile       = errors.New("no file part")
	errNotMultipart = errors.New("not a multipart/form-data body")
	errTooLarge     = errors.New("file too large")
)

// multipartFile reads the named file part of a multipart/form-data body (Books attachments).
func multipartFile(rq *request, field string) (*Attachment, error) {
	ct, p, err := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		return nil, errNoFile
	}
	mr := multipart.NewReader(bytes.NewReader(rq.body), p["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, errNoFile
		}
		if part.FormName() != field || part.FileName() == "" {
			continue
		}
		return readFilePart(part)
	}
}

// readFilePart reads a multipart file part into an Attachment.
func readFilePart(part *multipart.Part) (*Attachment, error) {
	b, err := io.ReadAll(io.LimitReader(part, maxAttachmentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read part: %w", err)
	}
	if len(b) > maxAttachmentBytes {
		return nil, errTooLarge
	}
	ctype := part.Header.Get("Content-Type")
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return &Attachment{FileName: part.FileName(), Size: int64(len(b)), Content: b, ContentType: ctype}, nil
}

// upload is what a multipart/form-data upload body carries.
type upload struct {
	file  *Attachment // the "file" part, nil when absent
	link  string      // the "attachmentUrl" part
	title string      // a "title" part
}

// readUpload reads the parts of a multipart/form-data body: Zoho's "Upload an Attachment" sample sends either a
// "file" part or an "attachmentUrl" part (§4.1, §4.2).
func readUpload(rq *request) (*upload, error) {
	ct, p, err := mime.ParseMediaType(rq.r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" || p["boundary"] == "" {
		return nil, errNotMultipart
	}
	up := &upload{}
	mr := multipart.NewReader(bytes.NewReader(rq.body), p["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return up, nil
		}
		if err != nil {
			return nil, errNotMultipart
		}
		switch part.FormName() {
		case "file":
			if part.FileName() == "" {
				continue
			}
			f, err := readFilePart(part)
			if err != nil {
				return nil, err
			}
			up.file = f
		case "attachmentUrl", "title":
			b, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				return nil, fmt.Errorf("read part: %w", err)
			}
			if part.FormName() == "title" {
				up.title = string(b)
			} else {
				up.link = string(b)
			}
		}
	}
}

// invalidUpload is the 400 Zoho's OAS documents for a missing upload (MandatoryParamError).
func invalidUpload(expected string) *response {
	return jsonResp(http.StatusBadRequest, map[string]any{"code": "INVALID_REQUEST",
		"message": "unable to process your request. please verify whether you have entered proper method name, parameter and parameter values.",
		"status":  "error", "details": map[string]any{"expected_type": expected}})
}

func (s *Server) serveAttachments(rq *request, mod *crmModule, recID string, rest []string) *response {
	rec, ok := mod.recs[recID]
	if !ok {
		return crmErrResp(http.StatusBadRequest, "INVALID_DATA", "the related id given seems to be invalid",
			map[string]any{"related_status": "invalid", "resource_path_index": 1})
	}
	m := rq.r.Method
	if len(rest) == 1 {
		aid := rest[0]
		switch m {
		case http.MethodGet:
			a := findAttachment(mod.attachments[recID], aid)
			if a == nil {
				return emptyResp(http.StatusNoContent)
			}
			if a.LinkURL != "" {
				return &response{status: http.StatusFound, header: http.Header{"Location": {a.LinkURL}}}
			}
			return &response{status: http.StatusOK, header: http.Header{"Content-Type": {a.ContentType},
				"Content-Disposition": {mime.FormatMediaType("attachment", map[string]string{"filename": a.FileName})}}, body: a.Content}
		case http.MethodDelete:
			return s.deleteAttachments(mod, recID, []string{aid})
		}
		return badMethod()
	}
	switch m {
	case http.MethodPost:
		return s.uploadAttachment(rq, mod, recID)
	case http.MethodGet:
		return s.listAttachments(rq, mod, rec)
	case http.MethodDelete:
		ids := splitList(rq.query("ids"))
		if len(ids) == 0 {
			return missingParam("ids")
		}
		return s.deleteAttachments(mod, recID, ids)
	}
	return badMethod()
}

func findAttachment(list []*Attachment, id string) *Attachment {
	for _, a := range list {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// uploadAttachment accepts exactly what Zoho's documented sample sends: a multipart/form-data body with a "file"
// part or an "attachmentUrl" part, never both, and title as a query parameter (or a part). A link sent any other
// way (only in the query string, as the OAS declares it, or as a url-encoded form) is refused: no documented
// sample sends it so, and a client that did would be trusting the fake alone.
func (s *Server) uploadAttachment(rq *request, mod *crmModule, recID string) *response {
	up, err := readUpload(rq)
	switch {
	case errors.Is(err, errTooLarge):
		return tooLarge(apiCRM)
	case err != nil:
		return invalidUpload("multipart/form-data with a file or an attachmentUrl part")
	case up.file != nil && up.link != "":
		return invalidUpload("a file or an attachmentUrl part, not both")
	case up.file == nil && up.link == "":
		return invalidUpload("file or attachmentUrl")
	}
	a := up.file
	if a == nil {
		a = &Attachment{FileName: up.link, LinkURL: up.link}
	}
	title := rq.query("title")
	if title == "" {
		title = up.title
	}
	s.crm.attSeq += 3
	a.ID = strconv.FormatInt(s.crm.attSeq, 10)
	a.Title = title
	a.Created = s.now()
	mod.attachments[recID] = append(mod.attachments[recID], a)
	now := a.Created.Format(crmTimeLayout)
	return jsonResp(http.StatusOK, map[string]any{"data": []any{map[string]any{"code": "SUCCESS", "details": map[string]any{
		"Modified_Time": now, "Modified_By": minUser(), "Created_Time": now, "id": a.ID, "Created_By": minUser()},
		"message": "attachment uploaded successfully", "status": "success"}}})
}

func (s *Server) listAttachments(rq *request, mod *crmModule, rec map[string]any) *response {
	if rq.query("fields") == "" {
		return missingParam("fields")
	}
	recID := str(rec["id"])
	list := mod.attachments[recID]
	perPage, page, bad := rq.paging()
	if bad != nil {
		return bad
	}
	off := (page - 1) * perPage
	if off >= len(list) {
		return emptyResp(http.StatusNoContent)
	}
	end := min(off+perPage, len(list))
	parentName := str(rec[displayField(mod.name)])
	var data []any
	for _, a := range list[off:end] {
		t := a.Created.Format(crmTimeLayout)
		kind, link := "Attachment", any(nil)
		attType := 1
		if a.LinkURL != "" {
			kind, link, attType = "Link URL", a.LinkURL, 2
		}
		data = append(data, map[string]any{"id": a.ID, "File_Name": a.FileName, "Size": strconv.FormatInt(a.Size, 10),
			"Owner": fakeUser(), "Created_Time": t, "Modified_Time": t, "Created_By": fakeUser(),
			"Modified_By": fakeUser(), "Parent_Id": map[string]any{"id": recID, "name": parentName},
			"$file_id": "fid_" + a.ID, "$se_module": mod.name, "$editable": true, "$type": kind, "$state": "save",
			"$link_url": link, "$attachment_type": attType, "$sharing_permission": "full_access", "Title": a.Title})
	}
	return jsonResp(http.StatusOK, map[string]any{"data": data, "info": map[string]any{"per_page": perPage, "count": len(data),
		"page": page, "more_records": end < len(list)}})
}

func (s *Server) deleteAttachments(mod *crmModule, recID string, ids []string) *response {
	var results []any
	ok := 0
	for _, id := range ids {
		i := slices.IndexFunc(mod.attachments[recID], func(a *Attachment) bool { return a.ID == id })
		if i < 0 {
			results = append(results, crmErr("INVALID_DATA", "the id given seems to be invalid", map[string]any{"id": id}))
			continue
		}
		mod.attachments[recID] = slices.Delete(mod.attachments[recID], i, i+1)
		ok++
		results = append(results, map[string]any{"code": "SUCCESS", "details": map[string]any{"id": id},
			"message": "record deleted", "status": "success"})
	}
	status := http.StatusOK
	switch {
	case ok == 0:
		status = http.StatusBadRequest
	case ok < len(ids):
		status = http.StatusMultiStatus
	}
	return jsonResp(status, map[string]any{"data": results})
}

// CRMAttachments returns copies of the attachments of one CRM record.
func (s *Server) CRMAttachments(module, id string) []Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	mod, ok := s.crm.modules[module]
	if !ok {
		return nil
	}
	var out []Attachment
	for _, a := range mod.attachments[id] {
		c := *a
		c.Content = bytes.Clone(a.Content)
		out = append(out, c)
	}
	return out
}
