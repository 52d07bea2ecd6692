package zoho

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// AttachmentOptions tunes AddAttachment.
type AttachmentOptions struct {
	// Title is sent as the title query parameter.
	Title string
}

// File is one multipart file part.
type File struct {
	FileName string
	Content  []byte
	// ContentType defaults to application/octet-stream.
	ContentType string
}

// multipartBody encodes form fields and files ("name" → File).
func multipartBody(form url.Values, files map[string]File) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range form {
		for _, v := range vs {
			if err := w.WriteField(k, v); err != nil {
				return nil, "", fmt.Errorf("zoho: multipart: %w", err)
			}
		}
	}
	for name, f := range files {
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, escapeQuotes(name), escapeQuotes(f.FileName)))
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, "", fmt.Errorf("zoho: multipart: %w", err)
		}
		if _, err := pw.Write(f.Content); err != nil {
			return nil, "", fmt.Errorf("zoho: multipart: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", fmt.Errorf("zoho: multipart: %w", err)
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

func escapeQuotes(s string) string { return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) }

func (s *CRMService) attachmentWrite(ctx context.Context, r *request) (*RecordResult, *Response, error) {
	res, err := s.c.do(ctx, r)
	if err != nil {
		return nil, res.response(), err
	}
	items, ok := decodeItems(res.body, "data")
	if !ok || len(items) == 0 {
		return nil, res.response(), &Error{API: APICRM, Method: r.method, Path: r.path, HTTPStatus: res.status, Code: "UNEXPECTED_RESPONSE", Message: "no data[] in answer"}
	}
	rr := resultFromMap(0, items[0])
	if !rr.OK() {
		return &rr, res.response(), &BatchError{API: APICRM, Total: 1, Failed: []RecordError{rr.Err().(RecordError)}}
	}
	return &rr, res.response(), nil
}

// AddAttachment uploads a file to a record (multipart field "file"). The
// content is read fully first so that retries can resend it.
func (s *CRMService) AddAttachment(ctx context.Context, module, id, fileName string, content io.Reader, opts *AttachmentOptions) (*RecordResult, *Response, error) {
	rel, err := segs(module, id, "Attachments")
	if err != nil {
		return nil, nil, err
	}
	if fileName == "" {
		return nil, nil, &InputError{Input: "file_name", Reason: "required"}
	}
	data, err := io.ReadAll(content)
	if err != nil {
		return nil, nil, fmt.Errorf("zoho crm: reading attachment: %w", err)
	}
	body, ct, err := multipartBody(nil, map[string]File{"file": {FileName: fileName, Content: data}})
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	if opts != nil && opts.Title != "" {
		q.Set("title", opts.Title)
	}
	return s.attachmentWrite(ctx, &request{api: APICRM, method: http.MethodPost, path: rel, query: q, body: body, contentType: ct})
}

// AttachLink attaches a URL to a record (§4.2). It sends what Zoho's own
// "Upload an Attachment" sample sends (for example
// https://www.zoho.com/crm/developer/docs/api/v2.1/upload-attachment.html,
// and the same page of later versions, .../api/v8/upload-attachment.html):
// `-F "attachmentUrl=…"` in place of `-F "file=@…"`, a multipart/form-data
// body with one or the other part. The page lists title under Parameters
// (the query string), as for a file upload.
// The OAS files declare attachmentUrl as a query parameter with no body,
// but no documented sample sends that.
func (s *CRMService) AttachLink(ctx context.Context, module, id, link, title string) (*RecordResult, *Response, error) {
	rel, err := segs(module, id, "Attachments")
	if err != nil {
		return nil, nil, err
	}
	if u, err := url.Parse(link); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, &InputError{Input: "url", Reason: "must be an absolute http(s) URL"}
	}
	body, ct, err := multipartBody(url.Values{"attachmentUrl": {link}}, nil)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	if title != "" {
		q.Set("title", title)
	}
	return s.attachmentWrite(ctx, &request{api: APICRM, method: http.MethodPost, path: rel, query: q, body: body, contentType: ct})
}

// AttachmentListOptions tunes ListAttachments.
type AttachmentListOptions struct {
	// Fields defaults to id, File_Name, Size, Created_Time, $link_url (Zoho requires fields).
	Fields        []string
	Page, PerPage int
}

// ListAttachments lists a record's attachments (one page).
func (s *CRMService) ListAttachments(ctx context.Context, module, id string, opts *AttachmentListOptions) ([]Record, *Response, error) {
	rel, err := segs(module, id, "Attachments")
	if err != nil {
		return nil, nil, err
	}
	fields := []string{"id", "File_Name", "Size", "Created_Time", "$link_url"}
	q := url.Values{}
	if opts != nil {
		if len(opts.Fields) > 0 {
			fields = opts.Fields
		}
		if opts.Page > 0 {
			q.Set("page", strconv.Itoa(opts.Page))
		}
		if opts.PerPage > 0 {
			q.Set("per_page", strconv.Itoa(opts.PerPage))
		}
	}
	q.Set("fields", strings.Join(fields, ","))
	return s.list(ctx, rel, q, nil)
}

// DownloadAttachment returns the file bytes; Response.Header carries
// Content-Type and Content-Disposition.
func (s *CRMService) DownloadAttachment(ctx context.Context, module, id, attachmentID string) ([]byte, *Response, error) {
	rel, err := segs(module, id, "Attachments", attachmentID)
	if err != nil {
		return nil, nil, err
	}
	res, err := s.c.do(ctx, &request{api: APICRM, method: http.MethodGet, path: rel})
	if err != nil {
		return nil, res.response(), err
	}
	if res.status == http.StatusNoContent {
		return nil, res.response(), fmt.Errorf("zoho crm: attachment %s: %w", attachmentID, ErrNotFound)
	}
	return res.body, res.response(), nil
}

// DeleteAttachment deletes one attachment.
func (s *CRMService) DeleteAttachment(ctx context.Context, module, id, attachmentID string) (*RecordResult, *Response, error) {
	rel, err := segs(module, id, "Attachments", attachmentID)
	if err != nil {
		return nil, nil, err
	}
	return s.attachmentWrite(ctx, &request{api: APICRM, method: http.MethodDelete, path: rel})
}
