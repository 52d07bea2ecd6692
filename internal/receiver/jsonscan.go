package receiver

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A few byte-level walks over JSON. They let the CRM notification path
// decode a body in one pass and without reflection: objectMembers checks the
// body (as json.Valid would) while it lists its members, which
// decodeNotification decodes; the others find where things are in JSON
// already checked (the end of a value, the affected field names) without a
// decoder run or a re-encoding. They never panic on invalid input (they
// stop at the end of the slice), but only objectMembers' results are
// meaningful for it: call the others on checked bytes.

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
// included), as the decoder gives it; only a literal with escapes or bytes
// that are not UTF-8 (which the decoder replaces) goes through the decoder.
func jsonString(lit []byte) (string, bool) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", false
	}
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
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

// objectMembers lists the members of obj in order; false unless obj is one
// valid JSON object, exactly as json.Valid has it (its nesting limit
// included): the walk is the check, so a body needs no json.Valid first.
func objectMembers(obj []byte) ([]member, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	members := make([]member, 0, 12)
	end, ok := scanContainer(obj, i, 1, &members)
	if !ok || skipSpace(obj, end) != len(obj) {
		return nil, false
	}
	return members, true
}

// maxNesting is encoding/json's limit: arrays and objects nested deeper are
// not valid JSON to json.Valid.
const maxNesting = 10000

// scanContainer checks the array or object at b[i], nested depth deep, and
// returns the index just past it; with members not nil, it appends the
// object's members to *members.
func scanContainer(b []byte, i, depth int, members *[]member) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	isObject, closing := b[i] == '{', byte(']')
	if isObject {
		closing = '}'
	}
	if i = skipSpace(b, i+1); i < len(b) && b[i] == closing {
		return i + 1, true
	}
	for {
		var ok bool
		kStart, kEnd := i, i
		if isObject {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if kEnd, ok = scanString(b, i); !ok {
				return kEnd, false
			}
			if i = skipSpace(b, kEnd); i >= len(b) || b[i] != ':' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
		vStart := i
		if i, ok = scanValue(b, i, depth); !ok {
			return i, false
		}
		if members != nil {
			key, _ := jsonString(b[kStart:kEnd])
			*members = append(*members, member{key: key, raw: b[kStart:i], value: b[vStart:i]})
		}
		if i = skipSpace(b, i); i >= len(b) {
			return i, false
		}
		switch b[i] {
		case closing:
			return i + 1, true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return i, false
		}
	}
}

// scanValue checks the value at b[i], inside depth arrays and objects, and
// returns the index just past it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{' || c == '[':
		return scanContainer(b, i, depth+1, nil)
	case c == '-' || '0' <= c && c <= '9':
		return scanNumber(b, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			return i + len(lit), true
		}
	}
	return i, false
}

// scanString checks the string literal whose opening quote is at b[i]: no
// control characters, only JSON's escapes (its bytes need not be UTF-8:
// json.Valid does not ask it).
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i++; i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i <= 4 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// scanNumber checks the number at b[i]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		start := i + 1
		if i = digits(b, start); i == start {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		if i = digits(b, i); i == start {
			return i, false
		}
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
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
