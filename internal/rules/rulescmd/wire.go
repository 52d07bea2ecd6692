package rulescmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/zohook/zohook/internal/rules"
	"github.com/zohook/zohook/internal/zoho"
)

// placeholderOrg stands for the Books organization_id when neither the
// step, --organization-id nor ZOHOOK_ZOHO_BOOKS_ORG_ID gives one.
const placeholderOrg = "ORGANIZATION_ID"

// plannedCall is what one step would send: its requests, or why none can
// be shown.
type plannedCall struct {
	Key      string
	Action   string
	Inputs   map[string]any // with zohook's defaults (rules.WireDefaults)
	Requests []zoho.PlannedRequest
	// Unplanned says why no request is shown although the step ran: its
	// inputs hold outputs the dry run does not know.
	Unplanned string
}

// wireExec is the executor of dry runs and rule tests: each call gets
// zohook's defaults, as in the worker, and is planned by the Zoho client
// (zoho.PlanAction builds the requests RunAction would send); nothing is
// sent. Outputs come from the embedded DryRun (given ones, or placeholders
// that later expressions render as <steps.id...>).
type wireExec struct {
	*rules.DryRun
	cfg zoho.Config
	// refusals: steps Zoho refuses in a rule test, by key, with its message.
	refusals map[string]string

	mu    sync.Mutex
	calls []plannedCall
}

func newWireExec(cfg zoho.Config, outputs map[string]map[string]any, refusals map[string]string) *wireExec {
	if outputs == nil {
		outputs = map[string]map[string]any{}
	}
	return &wireExec{DryRun: &rules.DryRun{Outputs: outputs}, cfg: cfg, refusals: refusals}
}

// errRefused is a refusal a rule test asked for: like Zoho's 4xx, it is
// permanent, so on_failure applies.
var errRefused = errors.New("refused")

// Execute plans the call, then answers as the DryRun does.
func (w *wireExec) Execute(ctx context.Context, call rules.Call) (map[string]any, error) {
	in := rules.WireDefaults(call.Action, call.Inputs)
	pc := plannedCall{Key: call.Key, Action: call.Action, Inputs: in}
	reqs, err := zoho.PlanAction(ctx, w.cfg, call.Action, in)
	switch {
	case err == nil:
		pc.Requests = reqs
	case hasPlaceholder(in):
		// A placeholder where the client wants a number or a list is not
		// a refusal Zoho would make: the real output fills it.
		pc.Unplanned = "the request depends on outputs this run does not know (" + err.Error() + ")"
	default:
		w.record(pc)
		return nil, fmt.Errorf("zohook would not send it: %w", err)
	}
	w.record(pc)
	if msg, ok := w.refusals[call.Key]; ok {
		return nil, fmt.Errorf("%w by Zoho (as the test says): %s", errRefused, msg)
	}
	return w.DryRun.Execute(ctx, call)
}

func (w *wireExec) record(pc plannedCall) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, pc)
}

func (w *wireExec) planned() []plannedCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]plannedCall(nil), w.calls...)
}

func (w *wireExec) call(key string) (plannedCall, bool) {
	for _, c := range w.planned() {
		if c.Key == key {
			return c, true
		}
	}
	return plannedCall{}, false
}

// hasPlaceholder reports inputs holding a dry run's stand-in for an
// unknown output ("<steps.x.y>").
func hasPlaceholder(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, "<steps.")
	case map[string]any:
		for _, e := range x {
			if hasPlaceholder(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasPlaceholder(e) {
				return true
			}
		}
	}
	return false
}

// wireRequest is a planned request as printed and compared: the URL split
// into path and query, the body decoded.
type wireRequest struct {
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	Path        string            `json:"-"`
	Query       url.Values        `json:"-"`
	Headers     map[string]string `json:"headers,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	// Body: the JSON body as sent (numbers keep their digits), a form as
	// a map of lists, multipart parts as {name: value | {file_name, content}}.
	Body any `json:"body,omitempty"`
	// raw is the body's text when it is JSON, for printing as sent.
	raw []byte
}

func toWire(p zoho.PlannedRequest) (wireRequest, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return wireRequest{}, fmt.Errorf("planned URL: %w", err)
	}
	w := wireRequest{Method: p.Method, URL: p.URL, Path: u.Path, Query: u.Query(), ContentType: p.ContentType()}
	for k, vs := range p.Header {
		if k == "Content-Type" {
			continue
		}
		if w.Headers == nil {
			w.Headers = map[string]string{}
		}
		w.Headers[k] = strings.Join(vs, ", ")
	}
	if len(p.Body) == 0 {
		return w, nil
	}
	switch w.ContentType {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(p.Body))
		dec.UseNumber()
		if err := dec.Decode(&w.Body); err != nil {
			return w, fmt.Errorf("planned body: %w", err)
		}
		w.raw = p.Body
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(p.Body))
		if err != nil {
			return w, fmt.Errorf("planned form: %w", err)
		}
		m := map[string]any{}
		for k, vs := range form {
			m[k] = strings.Join(vs, ",")
		}
		w.Body = m
	case "multipart/form-data":
		parts, err := multipartParts(p.Header.Get("Content-Type"), p.Body)
		if err != nil {
			return w, err
		}
		w.Body = parts
	default:
		w.Body = string(p.Body)
	}
	return w, nil
}

// multipartParts reads a multipart body into {name: value} for fields and
// {name: {file_name, content | size}} for files; its boundary is random,
// so the raw bytes are never shown.
func multipartParts(contentType string, body []byte) (map[string]any, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("planned multipart: %w", err)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	out := map[string]any{}
	for {
		part, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("planned multipart: %w", err)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, fmt.Errorf("planned multipart: %w", err)
		}
		if part.FileName() == "" {
			out[part.FormName()] = string(data)
			continue
		}
		f := map[string]any{"file_name": part.FileName(), "size": int64(len(data))}
		if utf8.Valid(data) {
			f["content"] = string(data)
		}
		out[part.FormName()] = f
	}
}

// htmlUnescape turns Go's \u003c, \u003e and \u0026 escapes of encoded
// JSON back into <, > and & (the same JSON string, shown as written). An
// escape preceded by an odd number of backslashes is text, not an escape.
func htmlUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+5 < len(s) && s[i+1] == 'u' {
			if r, ok := map[string]byte{"003c": '<', "003e": '>', "0026": '&'}[s[i+2:i+6]]; ok {
				b.WriteByte(r)
				i += 5
				continue
			}
		}
		if s[i] == '\\' && i+1 < len(s) {
			// Any other escape: copy it whole, so \\u003c stays text.
			b.WriteString(s[i : i+2])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// printRequest writes a request as sent: the request line with the full
// URL, headers, and the body (JSON indented, numbers as sent).
func printRequest(b *strings.Builder, w wireRequest, indent string) {
	fmt.Fprintf(b, "%s%s %s\n", indent, w.Method, w.URL)
	keys := make([]string, 0, len(w.Headers))
	for k := range w.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s%s: %s\n", indent, k, w.Headers[k])
	}
	if w.ContentType != "" {
		fmt.Fprintf(b, "%sContent-Type: %s\n", indent, w.ContentType)
	}
	switch {
	case w.raw != nil:
		var out bytes.Buffer
		if err := json.Indent(&out, w.raw, indent, "  "); err != nil {
			out.Reset()
			out.Write(w.raw)
		}
		// Go's encoder writes <, > and & as \u003c, \u003e, \u0026: the
		// same JSON string, shown as the characters people wrote.
		fmt.Fprintf(b, "%s%s\n", indent, htmlUnescape(out.String()))
	case w.ContentType == "multipart/form-data":
		parts := w.Body.(map[string]any)
		names := make([]string, 0, len(parts))
		for k := range parts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, n := range names {
			switch p := parts[n].(type) {
			case string:
				fmt.Fprintf(b, "%s[part %s] %s\n", indent, n, p)
			case map[string]any:
				fmt.Fprintf(b, "%s[part %s: file %q, %d bytes]\n", indent, n, p["file_name"], p["size"])
				if c, ok := p["content"].(string); ok {
					for _, l := range strings.Split(strings.TrimRight(c, "\n"), "\n") {
						fmt.Fprintf(b, "%s  | %s\n", indent, l)
					}
				}
			}
		}
	case w.Body != nil:
		if m, ok := w.Body.(map[string]any); ok && w.ContentType == "application/x-www-form-urlencoded" {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(b, "%s%s=%v\n", indent, k, m[k])
			}
			return
		}
		fmt.Fprintf(b, "%s%v\n", indent, w.Body)
	}
}
