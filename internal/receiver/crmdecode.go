package receiver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// decodeNotification is json.Unmarshal(body, n) written out for the one type
// it decodes, and also returns the body's top-level members (nil if body is
// not an object). It is hand-written because json.Unmarshal was ~20% of the
// receiver's CPU per request: a validity scan, reflection, a re-scan of
// affected_fields for its UnmarshalJSON and a decoder run per flexString.
// Here it is one walk over the members that also checks the body
// (objectMembers) and a direct decode of each known one; bodies it does not
// take apart (invalid JSON, not an object) go to json.Unmarshal itself, for
// its exact error.
//
// FuzzNotificationDecodeMatchesEncodingJSON holds it to encoding/json: the
// same struct, an error exactly when json.Unmarshal errs, and the same 400
// from decodeError. On error, n is left in an unspecified state.
func decodeNotification(body []byte, n *crmNotification) ([]member, error) {
	members, ok := objectMembers(body)
	if !ok {
		return nil, json.Unmarshal(body, n)
	}
	// As in encoding/json, a type error is remembered (the first one wins)
	// and decoding goes on, while an error of an UnmarshalJSON ends it.
	var typeErr error
	for _, m := range members {
		if err := n.decodeMember(m.key, m.value); err != nil {
			if _, ok := err.(*json.UnmarshalTypeError); !ok {
				return nil, err
			}
			if typeErr == nil {
				typeErr = err
			}
		}
	}
	return members, typeErr
}

// decodeMember decodes the value v (valid JSON) of the member key into its
// field, as encoding/json would: the field whose name is key exactly, else
// the one it matches case-insensitively (in the Unicode folds
// strings.EqualFold uses, as encoding/json does: "ſerver_time" is
// server_time); unknown keys are ignored.
func (n *crmNotification) decodeMember(key string, v []byte) error {
	switch key {
	case "server_time":
		return decodeInt64(&n.ServerTime, key, v)
	case "query_params":
		return n.decodeQueryParams(v)
	case "module":
		return decodeString(&n.Module, key, v)
	case "resource_uri":
		return decodeString(&n.ResourceURI, key, v)
	case "ids":
		return n.decodeIDs(v)
	case "affected_fields":
		return n.AffectedFields.UnmarshalJSON(v)
	case "affected_values":
		return n.AffectedValues.UnmarshalJSON(v) // a copy of v, null included
	case "operation":
		return decodeString(&n.Operation, key, v)
	case "channel_id":
		return n.ChannelID.decode(v)
	case "token":
		return decodeString(&n.Token, key, v)
	}
	for _, name := range [...]string{"server_time", "query_params", "module", "resource_uri", "ids",
		"affected_fields", "affected_values", "operation", "channel_id", "token"} {
		if strings.EqualFold(key, name) {
			return n.decodeMember(name, v)
		}
	}
	return nil
}

// decodeQueryParams: a later query_params merges into the map, null clears it.
func (n *crmNotification) decodeQueryParams(v []byte) error {
	switch {
	case v[0] == 'n':
		n.QueryParams = nil
	case v[0] != '{':
		return typeError("query_params", reflect.TypeFor[map[string]any](), v)
	case skipSpace(v, 1) == len(v)-1: // {}, the usual value
		if n.QueryParams == nil {
			n.QueryParams = map[string]any{}
		}
	default:
		if err := json.Unmarshal(v, &n.QueryParams); err != nil {
			if ute, ok := err.(*json.UnmarshalTypeError); ok { // a number out of float64's range
				ute.Struct, ute.Field = "crmNotification", "query_params"
			}
			return err
		}
	}
	return nil
}

// decodeIDs: null clears ids, [] makes it empty but not nil.
func (n *crmNotification) decodeIDs(v []byte) error {
	switch v[0] {
	case 'n':
		n.IDs = nil
		return nil
	case '[':
	default:
		return typeError("ids", reflect.TypeFor[[]flexString](), v)
	}
	ids := make([]flexString, 0, bytes.Count(v, []byte{','})+1)
	for i := skipSpace(v, 1); i < len(v) && v[i] != ']'; {
		end := valueEnd(v, i)
		var id flexString
		if err := id.decode(v[i:end]); err != nil {
			return err
		}
		ids = append(ids, id)
		if i = skipSpace(v, end); i < len(v) && v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	n.IDs = ids
	return nil
}

// decode is UnmarshalJSON with the two usual shapes, a plain string and a
// number, done without the decoder.
func (f *flexString) decode(v []byte) error {
	switch c := v[0]; {
	case c == '"':
		s, _ := jsonString(v)
		*f = flexString(s)
	case c == '-' || '0' <= c && c <= '9':
		*f = flexString(v) // the literal's text, as json.Number keeps it
	default:
		return f.UnmarshalJSON(v)
	}
	return nil
}

// decodeString: null leaves the field as it was.
func decodeString(dst *string, field string, v []byte) error {
	switch v[0] {
	case '"':
		*dst, _ = jsonString(v)
	case 'n':
	default:
		return typeError(field, reflect.TypeFor[string](), v)
	}
	return nil
}

// decodeInt64: null leaves the field as it was; a fraction, an exponent or
// a number out of range is a type error, as with encoding/json.
func decodeInt64(dst *int64, field string, v []byte) error {
	switch v[0] {
	case 'n':
		return nil
	case '"', '{', '[', 't', 'f':
		return typeError(field, reflect.TypeFor[int64](), v)
	}
	x, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "number " + string(v), Type: reflect.TypeFor[int64](),
			Struct: "crmNotification", Field: field}
	}
	*dst = x
	return nil
}

// typeError is the error encoding/json gives for a value of the wrong kind
// (decodeError turns its Field and Type into the 400's field message).
func typeError(field string, t reflect.Type, v []byte) error {
	kind := "number"
	switch v[0] {
	case '"':
		kind = "string"
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case 't', 'f':
		kind = "bool"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: t, Struct: "crmNotification", Field: field}
}
