package receiver

import (
	"bytes"
	"encoding/json"
)

// A few byte-level walks over JSON that encoding/json has already accepted.
// They let the CRM notification path decode a body once: json.Unmarshal
// checks and decodes it, and these find where things are in it (the token
// member to cut out, the affected field names) without a second decoder run
// or a re-encoding. They assume valid JSON and never panic on invalid input
// (they stop at the end of the slice), but their results are only
// meaningful for valid JSON: call them on bytes the decoder accepted.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string whose opening quote is
// at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // skip the escaped byte (a quote or backslash included)
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i] (a
// string, object, array or literal).
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != ']' && b[i] != '}' {
			i++
		}
		return i
	}
}

// jsonString returns the text of the JSON string literal lit (quotes
// included); only a literal with escapes goes through the decoder.
func jsonString(lit []byte) (string, bool) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", false
	}
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(lit, &s) != nil {
		return "", false
	}
	return s, true
}

// member is one top-level member of a JSON object: its key (unescaped) and
// the bytes of the key literal through the end of the value.
type member struct {
	key   string
	raw   []byte // `"key":value` exactly as sent
	value []byte // the value alone
}

// objectMembers lists the members of the JSON object obj in order; false if
// obj is not an object.
func objectMembers(obj []byte) ([]member, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	members := make([]member, 0, 12)
	for i++; ; {
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return nil, false
		}
		switch obj[i] {
		case '}':
			return members, true
		case ',':
			i++
			continue
		case '"':
		default:
			return nil, false
		}
		kStart := i
		kEnd := stringEnd(obj, i)
		key, ok := jsonString(obj[kStart:kEnd])
		if !ok {
			return nil, false
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		vStart := skipSpace(obj, i+1)
		vEnd := valueEnd(obj, vStart)
		members = append(members, member{key: key, raw: obj[kStart:vEnd], value: obj[vStart:vEnd]})
		i = vEnd
	}
}

// joinMembers writes the members back as one JSON object.
func joinMembers(members []member, size int) []byte {
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m.raw...)
	}
	return append(out, '}')
}
