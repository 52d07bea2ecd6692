package receiver

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/zohook/zohook/internal/events"
)

// crmNotification is the body Zoho CRM POSTs to a notification channel's
// notify_url (API.md §5.7).
type crmNotification struct {
	ServerTime     int64           `json:"server_time" validate:"omitempty,gt=0"`
	QueryParams    map[string]any  `json:"query_params"`
	Module         string          `json:"module" validate:"required,zoho_api_name"`
	ResourceURI    string          `json:"resource_uri" validate:"max=2048"`
	IDs            []flexString    `json:"ids" validate:"required,min=1,unique,dive,required,number,max=30"`
	AffectedFields json.RawMessage `json:"affected_fields"`
	AffectedValues json.RawMessage `json:"affected_values"`
	Operation      string          `json:"operation" validate:"required,oneof=insert create update edit delete"`
	ChannelID      flexString      `json:"channel_id" validate:"required,number,max=30"`
	Token          string          `json:"token"`
}

func (s *Server) crmNotify(c echo.Context) error {
	body, _, err := s.readBody(c, "application/json", "text/json")
	if err != nil {
		return err
	}
	envs, rerr := s.decodeCRMNotification(c, body)
	if rerr != nil {
		return rerr
	}
	return s.publish(c, envs)
}

// decodeCRMNotification parses, authenticates and validates a callback, in
// that order: a wrong token gets 401 even when other fields are also wrong, so
// an unauthenticated caller learns nothing about the expected shape.
func (s *Server) decodeCRMNotification(c echo.Context, body []byte) ([]*events.Envelope, *RequestError) {
	var n crmNotification
	if err := decodeJSON(body, &n); err != nil {
		return nil, err
	}
	conn, module, ok := s.cfg.CRMTokens.VerifyChannelToken(c.Request().Context(), string(n.ChannelID), n.Token)
	if !ok {
		return nil, unauthorized("invalid or missing channel token")
	}
	if conn == "" {
		conn = s.cfg.Connection
	}
	if err := s.validate.Struct(&n); err != nil {
		return nil, badRequest("invalid notification", fieldErrors(err)...)
	}
	// A channel zohook subscribed watches one module: a notification naming
	// another is not one Zoho sent for that channel.
	if module != "" && n.Module != module {
		return nil, badRequest("invalid notification", FieldError{Field: "module",
			Message: "channel " + string(n.ChannelID) + " watches " + module + ", not " + n.Module})
	}
	if len(n.IDs) > s.cfg.MaxIDsPerNotification {
		return nil, badRequest("invalid notification", FieldError{Field: "ids",
			Message: "must have at most " + strconv.Itoa(s.cfg.MaxIDsPerNotification) + " items"})
	}
	fields, err := withoutToken(body)
	if err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	changed := parseAffectedFields(n.AffectedFields)
	values := parseAffectedValues(n.AffectedValues)
	op := events.NormalizeOperation(n.Operation)
	now := s.cfg.Now().UTC()
	envs := make([]*events.Envelope, len(n.IDs))
	for i, id := range n.IDs {
		rid := string(id)
		envs[i] = &events.Envelope{
			Version:    events.EnvelopeVersion,
			ID:         events.DeriveID(string(events.SourceCRMNotify), conn, string(n.ChannelID), n.Module, op, rid, strconv.FormatInt(n.ServerTime, 10), contentKey(n.ServerTime, raw)),
			Source:     events.SourceCRMNotify,
			Connection: conn,
			Module:     n.Module,
			Operation:  op,
			RecordID:   rid,
			ChannelID:  string(n.ChannelID),
			ServerTime: n.ServerTime,
			ReceivedAt: now,
			Raw:        raw,
		}
		envs[i].ChangedFields = changed.forRecord(rid)
		envs[i].Values = values[rid]
		if len(n.IDs) > 1 {
			envs[i].Raw = recordShare(fields, rid, envs[i].ChangedFields, envs[i].Values)
		}
	}
	return envs, nil
}

// recordShare is the callback as it concerns one of its records: its id
// alone and only its changed fields and values. Storing the whole body with
// each record would make a 1,000-record callback 1,000 copies of itself:
// storage quadratic in its size, pushing older events out of a full stream.
func recordShare(fields map[string]json.RawMessage, id string, changed []string, values map[string]any) json.RawMessage {
	share := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		switch k {
		case "ids", "affected_fields", "affected_values":
		default:
			share[k] = v
		}
	}
	share["ids"], _ = json.Marshal([]string{id})
	if _, ok := fields["affected_fields"]; ok && changed != nil {
		share["affected_fields"], _ = json.Marshal([]map[string][]string{{id: changed}})
	}
	if _, ok := fields["affected_values"]; ok && values != nil {
		share["affected_values"], _ = json.Marshal([]map[string]any{{"record_id": id, "values": values}})
	}
	out, _ := json.Marshal(share) // re-encoding decoded JSON cannot fail
	return out
}

// contentKey: with server_time Zoho identifies the change itself; without it
// the body is the only stable identity we have.
func contentKey(serverTime int64, raw []byte) string {
	if serverTime > 0 {
		return ""
	}
	return string(raw)
}

// withoutToken decodes the body's top level without its "token" key: the
// channel token is a secret and the stored event is readable by every
// worker and operator. Any spelling goes ("Token", "TOKEN"): Go's decoder
// matched it to the token field case-insensitively, so it was the token.
func withoutToken(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for k := range m {
		if strings.EqualFold(k, "token") {
			delete(m, k)
		}
	}
	return m, nil
}

// affected holds changed field names, either for all records of the callback
// or per record id. Zoho's exact shape is undocumented (API.md §5.7): both
// ["Stage","Amount"] and [{"<id>":["Stage"]}] are seen.
type affected struct {
	all      []string
	byRecord map[string][]string
}

func (a affected) forRecord(id string) []string {
	if f, ok := a.byRecord[id]; ok {
		return f
	}
	return a.all
}

func parseAffectedFields(raw json.RawMessage) affected {
	var out affected
	if len(raw) == 0 {
		return out
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return out
	}
	for _, it := range items {
		var name string
		if json.Unmarshal(it, &name) == nil {
			out.all = append(out.all, name)
			continue
		}
		var per map[string][]string
		if json.Unmarshal(it, &per) == nil {
			if out.byRecord == nil {
				out.byRecord = map[string][]string{}
			}
			for id, fields := range per {
				out.byRecord[id] = append(out.byRecord[id], fields...)
			}
		}
	}
	sort.Strings(out.all)
	return out
}

// parseAffectedValues reads [{"record_id": "...", "values": {...}}] or
// {"<id>": {...}}; unknown shapes yield nothing (the worker re-reads the
// record anyway).
func parseAffectedValues(raw json.RawMessage) map[string]map[string]any {
	out := map[string]map[string]any{}
	if len(raw) == 0 {
		return out
	}
	var list []struct {
		RecordID flexString     `json:"record_id"`
		ID       flexString     `json:"id"`
		Values   map[string]any `json:"values"`
	}
	if json.Unmarshal(raw, &list) == nil {
		for _, it := range list {
			id := string(it.RecordID)
			if id == "" {
				id = string(it.ID)
			}
			if id != "" && it.Values != nil {
				out[id] = it.Values
			}
		}
		return out
	}
	_ = json.Unmarshal(raw, &out)
	return out
}
