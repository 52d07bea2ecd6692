package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendEnvelope writes e as encoding/json would write it (same members,
// order, omitempty and escaping; TestEncodeMatchesEncodingJSON holds it to
// that), with raw spliced in last. Written by hand because reflection-based
// encoding was 8% of the receiver's CPU per request; only Values, a free
// form map, still goes through encoding/json.
func appendEnvelope(b []byte, e *Envelope, raw []byte) ([]byte, error) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.Version), 10)
	b = appendMember(b, "id", e.ID)
	b = appendMember(b, "source", string(e.Source))
	b = appendMember(b, "connection", e.Connection)
	b = appendMember(b, "module", e.Module)
	b = appendMember(b, "operation", e.Operation)
	b = appendMember(b, "record_id", e.RecordID)
	if len(e.ChangedFields) > 0 {
		b = append(b, `,"changed_fields":[`...)
		for i, f := range e.ChangedFields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f)
		}
		b = append(b, ']')
	}
	if len(e.Values) > 0 {
		v, err := json.Marshal(e.Values)
		if err != nil {
			return nil, err
		}
		// values sits one level below the envelope.
		if err := checkDepth(v, MaxDepth-1); err != nil {
			return nil, err
		}
		b = append(b, `,"values":`...)
		b = append(b, v...)
	}
	if e.ChannelID != "" {
		b = appendMember(b, "channel_id", e.ChannelID)
	}
	if e.Hook != "" {
		b = appendMember(b, "hook", e.Hook)
	}
	if e.ServerTime != 0 {
		b = append(b, `,"server_time":`...)
		b = strconv.AppendInt(b, e.ServerTime, 10)
	}
	b = append(b, `,"received_at":`...)
	if y := e.ReceivedAt.Year(); y < 0 || y >= 10000 {
		// encoding/json refuses these years (time.Time.MarshalJSON).
		return nil, fmt.Errorf("received_at year %d outside [0,9999]", y)
	}
	b = append(b, '"')
	b = e.ReceivedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if e.Origin != "" {
		b = appendMember(b, "origin", e.Origin)
	}
	if e.Replay != 0 {
		b = append(b, `,"replay":`...)
		b = strconv.AppendInt(b, e.Replay, 10)
	}
	if len(raw) > 0 {
		b = append(b, `,"raw":`...)
		b = append(b, raw...)
	}
	return append(b, '}'), nil
}

func appendMember(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString quotes s as encoding/json does by default: HTML-sensitive
// characters, control characters, U+2028/U+2029 escaped, invalid UTF-8
// replaced. Plain ASCII, the usual case, is copied as it is.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
