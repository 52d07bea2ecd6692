package receiver

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/zohook/zohook/internal/events"
)

// HookConfig is one webhook source (CRM workflow webhook or Books webhook),
// with its secret already resolved.
type HookConfig struct {
	Connection string
	// Secret authenticates the sender. Required.
	Secret string
	// SecretHeader and SecretQuery name where the sender puts the secret.
	// Defaults "X-Zohook-Secret" and "secret".
	SecretHeader, SecretQuery string
	// Signature (Books): verify X-Zoho-Webhook-Signature, an HMAC-SHA256 keyed
	// with Secret, instead of looking for the secret itself.
	Signature bool
	// Module / ModuleField: fixed module, or the body field holding it.
	Module, ModuleField string
	// Operation / OperationField: fixed operation, or the body field holding
	// it; else the ?operation= URL parameter; else "update".
	Operation, OperationField string
	// RecordIDField: body field with the record id ("id" for CRM workflow
	// hooks; "<entity>_id" inside the entity object for Books).
	RecordIDField string
}

func (h HookConfig) withDefaults(connection string) HookConfig {
	if h.Connection == "" {
		h.Connection = connection // the receiver's -connection, like notifications
	}
	if h.SecretHeader == "" {
		h.SecretHeader = "X-Zohook-Secret"
	}
	if h.SecretQuery == "" {
		h.SecretQuery = "secret"
	}
	return h
}

// SignatureHeader is where Zoho's finance apps put the webhook HMAC.
const SignatureHeader = "X-Zoho-Webhook-Signature"

// hookEvent is what a hook body must yield; validated with validator/v10.
type hookEvent struct {
	Module    string `json:"module" validate:"required,zoho_api_name"`
	Operation string `json:"operation" validate:"required,max=64,zoho_api_name"`
	RecordID  string `json:"record_id" validate:"required,number,max=30"`
}

func (s *Server) hook(kind string, hooks map[string]HookConfig, c echo.Context) (HookConfig, *RequestError) {
	h, ok := hooks[c.Param("name")]
	if !ok {
		return h, &RequestError{Status: http.StatusNotFound, Body: ErrorBody{Error: fmt.Sprintf("no %s hook named %q is configured", kind, c.Param("name"))}}
	}
	return h.withDefaults(s.cfg.Connection), nil
}

// checkSecret compares the secret from the header or the query parameter
// with the configured one; hashes make the comparison constant-time even in
// length.
func checkSecret(h HookConfig, r *http.Request) *RequestError {
	got := r.Header.Get(h.SecretHeader)
	if got == "" {
		got = r.URL.Query().Get(h.SecretQuery)
	}
	if got == "" || h.Secret == "" {
		return unauthorized("missing or invalid webhook secret")
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(h.Secret))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return unauthorized("missing or invalid webhook secret")
	}
	return nil
}

// checkSignature verifies Zoho's webhook HMAC: SHA-256 keyed with the secret
// over the query and form parameters sorted by key as key1value1key2value2…,
// followed by the raw body (API.md §9; documented for Zoho Billing, presumed
// for Books). Zoho does not document the digest encoding, so lowercase hex
// and base64 are both accepted.
func checkSignature(h HookConfig, r *http.Request, body []byte, form url.Values) *RequestError {
	sig := strings.TrimSpace(r.Header.Get(SignatureHeader))
	if sig == "" {
		return unauthorized("missing " + SignatureHeader)
	}
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = append(params[k], v...)
	}
	for k, v := range form {
		params[k] = append(params[k], v...)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mac := hmac.New(sha256.New, []byte(h.Secret))
	for _, k := range keys {
		for _, v := range params[k] {
			mac.Write([]byte(k))
			mac.Write([]byte(v))
		}
	}
	if form == nil {
		mac.Write(body)
	}
	sum := mac.Sum(nil)
	for _, want := range []string{hex.EncodeToString(sum), base64.StdEncoding.EncodeToString(sum)} {
		if hmac.Equal([]byte(strings.ToLower(sig)), []byte(strings.ToLower(want))) || hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return unauthorized("invalid " + SignatureHeader)
}

// parseHookBody turns a JSON object or a form into a map. Form fields with
// one value become strings, repeated ones lists.
func parseHookBody(mediaType string, body []byte) (map[string]any, url.Values, *RequestError) {
	if mediaType == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, nil, badRequest("invalid form body: " + err.Error())
		}
		m := make(map[string]any, len(form))
		for k, v := range form {
			if len(v) == 1 {
				m[k] = v[0]
			} else {
				m[k] = v
			}
		}
		return m, form, nil
	}
	// Numbers stay json.Number: a record id sent as a JSON number has 19
	// digits, which a float64 would silently round to another record's id.
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, badRequest("invalid JSON object: " + err.Error())
	}
	if dec.More() {
		return nil, nil, badRequest("invalid JSON object: data after the object")
	}
	if m == nil {
		return nil, nil, badRequest("body must be a JSON object")
	}
	return m, nil, nil
}

// scalar renders a body value used as module/operation/id; numbers keep
// their digits (parseHookBody decodes them as json.Number).
func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return strings.TrimSpace(t)
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%.0f", t), ".0")
	case json.Number:
		return t.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// hookEnvelope builds the event of a webhook: values are what the rules
// see, body is what is stored as the raw callback (values, or the whole
// body around them for Books). Neither may carry a configured secret.
func (s *Server) hookEnvelope(src events.Source, name string, h HookConfig, ev hookEvent, values, body map[string]any) (*events.Envelope, *RequestError) {
	if err := s.validate.Struct(&ev); err != nil {
		return nil, badRequest("invalid webhook", fieldErrors(err)...)
	}
	hashed, err := json.Marshal(values)
	if err != nil {
		return nil, badRequest("body cannot be stored: " + err.Error())
	}
	raw := hashed
	if body != nil {
		if raw, err = json.Marshal(body); err != nil {
			return nil, badRequest("body cannot be stored: " + err.Error())
		}
	}
	// Values come out of body, so checking the stored body covers both.
	if s.secrets.carriedBy(raw, h.Secret) {
		return nil, errSecretInBody
	}
	sum := sha256.Sum256(hashed)
	return &events.Envelope{
		Version:    events.EnvelopeVersion,
		ID:         events.DeriveID(string(src), h.Connection, name, ev.Module, ev.Operation, ev.RecordID, hex.EncodeToString(sum[:])),
		Source:     src,
		Connection: h.Connection,
		Module:     ev.Module,
		Operation:  ev.Operation,
		RecordID:   ev.RecordID,
		Values:     values,
		Hook:       name,
		ReceivedAt: s.cfg.Now().UTC(),
		Raw:        raw,
	}, nil
}

// dropSecretField removes the secret's own field from a body: an admin may
// template the secret into the body as well as (or instead of) the URL. Any
// spelling (Secret, SECRET) goes: it is the credential whatever its case.
// The secret anywhere else is refused (secrets.go).
func dropSecretField(m map[string]any, h HookConfig) {
	for k := range m {
		if strings.EqualFold(k, h.SecretQuery) {
			delete(m, k)
		}
	}
}

// operation picks the hook's operation: fixed, from a body field, from the
// URL, or "update".
func operation(h HookConfig, body map[string]any, r *http.Request) string {
	switch {
	case h.Operation != "":
		return events.NormalizeOperation(h.Operation)
	case h.OperationField != "" && scalar(body[h.OperationField]) != "":
		return events.NormalizeOperation(scalar(body[h.OperationField]))
	case r.URL.Query().Get("operation") != "":
		return events.NormalizeOperation(r.URL.Query().Get("operation"))
	}
	return events.OpUpdate
}

// crmWorkflow handles POST /zoho/crm/workflow/{name}: a CRM workflow rule's
// webhook, JSON or form, whose body the admin templated (API.md §6).
func (s *Server) crmWorkflow(c echo.Context) error {
	name := c.Param("name")
	h, rerr := s.hook("crm_workflow", s.cfg.CRMWorkflowHooks, c)
	if rerr != nil {
		return rerr
	}
	if rerr := checkSecret(h, c.Request()); rerr != nil {
		return rerr
	}
	body, mt, err := s.readBody(c, "application/json", "text/json", "application/x-www-form-urlencoded", "text/plain")
	if err != nil {
		return err
	}
	m, _, rerr := parseHookBody(mt, body)
	if rerr != nil {
		return rerr
	}
	dropSecretField(m, h)
	ev := hookEvent{Module: h.Module, Operation: operation(h, m, c.Request())}
	if ev.Module == "" {
		ev.Module = scalar(m[h.ModuleField])
	}
	idField := h.RecordIDField
	if idField == "" {
		idField = "id"
	}
	ev.RecordID = scalar(m[idField])
	env, rerr := s.hookEnvelope(events.SourceCRMWorkflow, name, h, ev, m, nil)
	if rerr != nil {
		return rerr
	}
	return s.publish(c, []*events.Envelope{env})
}

// books handles POST /zoho/books/{name}: a Zoho Books webhook whose default
// payload wraps the entity under its singular name ({"invoice": {...}}).
func (s *Server) books(c echo.Context) error {
	name := c.Param("name")
	h, rerr := s.hook("books", s.cfg.BooksHooks, c)
	if rerr != nil {
		return rerr
	}
	if !h.Signature {
		if rerr := checkSecret(h, c.Request()); rerr != nil {
			return rerr
		}
	}
	body, mt, err := s.readBody(c, "application/json", "text/json", "application/x-www-form-urlencoded")
	if err != nil {
		return err
	}
	m, form, rerr := parseHookBody(mt, body)
	if rerr != nil {
		return rerr
	}
	if h.Signature {
		if rerr := checkSignature(h, c.Request(), body, form); rerr != nil {
			return rerr
		}
	}
	if js, ok := m["JSONString"].(string); ok && form != nil {
		// Books' legacy form encoding carries the JSON in one field.
		if m, _, rerr = parseHookBody("application/json", []byte(js)); rerr != nil {
			return rerr
		}
	}
	dropSecretField(m, h)
	entity, obj := h.Module, map[string]any(nil)
	if entity == "" && h.ModuleField != "" {
		entity = scalar(m[h.ModuleField])
	}
	if entity == "" {
		for k, v := range m {
			if o, ok := v.(map[string]any); ok {
				if entity != "" {
					return badRequest("cannot tell the entity: the body has several objects; set module in the hook's configuration")
				}
				entity, obj = k, o
			}
		}
	} else if o, ok := m[entity].(map[string]any); ok {
		obj = o
	}
	if obj == nil {
		obj = m // a user-defined flat payload
	}
	idField := h.RecordIDField
	if idField == "" {
		idField = entity + "_id"
	}
	ev := hookEvent{Module: entity, Operation: operation(h, obj, c.Request()), RecordID: scalar(obj[idField])}
	if ev.RecordID == "" {
		ev.RecordID = scalar(m[idField])
	}
	env, rerr := s.hookEnvelope(events.SourceBooks, name, h, ev, obj, m)
	if rerr != nil {
		return rerr
	}
	return s.publish(c, []*events.Envelope{env})
}
