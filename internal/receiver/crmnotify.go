package receiver

import (
	"bytes"
	"encoding/json"
	"slices"
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
	AffectedFields affected        `json:"affected_fields" validate:"-"`
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
//
// The body is decoded once (decodeNotification: one walk over its members,
// which also checks it). What is stored is the body itself minus its token
// member, cut out at the byte level: no second decode into a map and no
// re-encoding, except for the rare callbacks that need them (several
// records, or no server_time).
func (s *Server) decodeCRMNotification(c echo.Context, body []byte) ([]*events.Envelope, *RequestError) {
	var n crmNotification
	members, err := decodeNotification(body, &n)
	if err != nil {
		return nil, decodeError(err)
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
	if members == nil { // a null body, which json.Unmarshal accepts
		return nil, badRequest("invalid JSON: not an object")
	}
	members = withoutToken(members)
	raw := json.RawMessage(joinMembers(members, len(body)))
	if s.secrets.carriedBy(raw, n.Token) {
		return nil, errSecretInBody
	}
	var fields map[string]json.RawMessage
	if len(n.IDs) > 1 || n.ServerTime <= 0 {
		fields = make(map[string]json.RawMessage, len(members))
		for _, m := range members {
			fields[m.key] = json.RawMessage(m.value) // the last of repeated keys wins, as in the decoder
		}
	}
	// contentKey: with server_time Zoho identifies the change itself; without
	// it the body is the only stable identity we have, in a canonical form
	// (keys sorted, no spaces) so that a retry spelled differently is still
	// the same event.
	var contentKey string
	if n.ServerTime <= 0 {
		canon, err := json.Marshal(fields)
		if err != nil {
			return nil, badRequest("invalid JSON: " + err.Error())
		}
		contentKey = string(canon)
	}
	var values map[string]map[string]any
	if len(n.AffectedValues) > 0 {
		values = parseAffectedValues(n.AffectedValues)
	}
	op := events.NormalizeOperation(n.Operation)
	now := s.cfg.Now().UTC()
	serverTime := strconv.FormatInt(n.ServerTime, 10)
	envs := make([]*events.Envelope, len(n.IDs))
	for i, id := range n.IDs {
		rid := string(id)
		envs[i] = &events.Envelope{
			Version:    events.EnvelopeVersion,
			ID:         events.DeriveID(string(events.SourceCRMNotify), conn, string(n.ChannelID), n.Module, op, rid, serverTime, contentKey),
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
		envs[i].ChangedFields = n.AffectedFields.forRecord(rid)
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
// Keys are matched in any spelling, as the decoder matched them.
func recordShare(fields map[string]json.RawMessage, id string, changed []string, values map[string]any) json.RawMessage {
	share := make(map[string]json.RawMessage, len(fields))
	var hadFields, hadValues bool
	for k, v := range fields {
		switch {
		case strings.EqualFold(k, "ids"):
		case strings.EqualFold(k, "affected_fields"):
			hadFields = true
		case strings.EqualFold(k, "affected_values"):
			hadValues = true
		default:
			share[k] = v
		}
	}
	share["ids"], _ = json.Marshal([]string{id})
	if hadFields && changed != nil {
		share["affected_fields"], _ = json.Marshal([]map[string][]string{{id: changed}})
	}
	if hadValues && values != nil {
		share["affected_values"], _ = json.Marshal([]map[string]any{{"record_id": id, "values": values}})
	}
	out, _ := json.Marshal(share) // re-encoding decoded JSON cannot fail
	return out
}

// withoutToken drops the body's "token" members: the channel token is a
// secret and the stored event is readable by every worker and operator. Any
// spelling goes ("Token", "TOKEN", escaped): Go's decoder matched it to the
// token field case-insensitively, so it was the token.
func withoutToken(members []member) []member {
	out := members[:0]
	for _, m := range members {
		if !strings.EqualFold(m.key, "token") {
			out = append(out, m)
		}
	}
	return out
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

// UnmarshalJSON reads affected_fields while the notification is decoded
// (by decodeNotification, or encoding/json for the bodies it hands over).
// It never fails: a shape it does not know yields no names (the worker
// re-reads the record anyway), as a wrong affected_fields must not cost
// Zoho's callback a 400.
func (a *affected) UnmarshalJSON(b []byte) error {
	*a = parseAffectedFields(b)
	return nil
}

// parseAffectedFields reads affected_fields in one pass over its bytes
// (valid JSON: the decoder checked it). Names without escapes are slices of
// one string made of the whole value, so a 56-name list costs two
// allocations, not 56 decoder runs. Only per-record objects
// ({"<id>": [...]}) go through the decoder.
func parseAffectedFields(raw []byte) affected {
	var out affected
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return out
	}
	text := string(raw)
	out.all = make([]string, 0, bytes.Count(raw, []byte{','})+1)
	for i++; i < len(raw); {
		i = skipSpace(raw, i)
		if i >= len(raw) {
			break
		}
		switch raw[i] {
		case ']':
			if len(out.all) == 0 {
				out.all = nil
			}
			slices.Sort(out.all)
			return out
		case ',':
			i++
			continue
		case '"':
			end := stringEnd(raw, i)
			if bytes.IndexByte(raw[i:end], '\\') < 0 {
				out.all = append(out.all, text[i+1:end-1])
			} else if name, ok := jsonString(raw[i:end]); ok {
				out.all = append(out.all, name)
			}
			i = end
		case '{':
			end := valueEnd(raw, i)
			var per map[string][]string
			if json.Unmarshal(raw[i:end], &per) == nil {
				if out.byRecord == nil {
					out.byRecord = map[string][]string{}
				}
				for id, fields := range per {
					out.byRecord[id] = append(out.byRecord[id], fields...)
				}
			}
			i = end
		default: // numbers, null, nested arrays: not names
			i = valueEnd(raw, i)
		}
	}
	return affected{} // unterminated: not valid JSON
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
