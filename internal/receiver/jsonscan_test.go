package receiver

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceAffectedFields is the former parseAffectedFields (one decoder run
// per item), except that a null item is no longer read as an empty name.
func referenceAffectedFields(raw json.RawMessage) affected {
	var out affected
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return out
	}
	for _, it := range items {
		if bytes.Equal(bytes.TrimSpace(it), []byte("null")) {
			continue
		}
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

// The byte-level walks agree with encoding/json on every valid document:
// the members of an object (the last of repeated keys winning, as in the
// decoder), the object rebuilt from them, and the affected field names.
func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"token":"x","b":[1,{"c":"]}"}],"d":"\"}"}`,
		`{ "ids" : ["1" , "2"], "affected_fields": ["Stage", "Amount", {"1": ["Phone"]}, null, 3, ["x"]] }`,
		`{"\u0074oken":"t","TOKEN":"u","k":"\\"}`,
		`["a\u00e9", "b\"c", "", "Z"]`,
		`{}`, `[]`, `"x"`, `{"a":{"b":{"c":[[],{}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// readBody refuses bodies that are not UTF-8: the decoder would
		// replace bad bytes, the walks keep them.
		if !json.Valid(b) || !utf8.Valid(b) {
			return
		}
		var want map[string]json.RawMessage
		isObject := json.Unmarshal(b, &want) == nil && want != nil
		members, ok := objectMembers(b)
		if ok != isObject {
			t.Fatalf("objectMembers ok=%v, decoder says object=%v: %s", ok, isObject, b)
		}
		if ok {
			got := map[string]json.RawMessage{}
			for _, m := range members {
				if !json.Valid(m.value) {
					t.Fatalf("member %q value %q is not a JSON value", m.key, m.value)
				}
				got[m.key] = m.value
			}
			if !maps.EqualFunc(got, want, compactEqual) {
				t.Fatalf("members %v, decoder %v", got, want)
			}
			joined := joinMembers(members, len(b))
			var back map[string]json.RawMessage
			if err := json.Unmarshal(joined, &back); err != nil || !maps.EqualFunc(back, want, compactEqual) {
				t.Fatalf("rebuilt object %s (%v) differs from %s", joined, err, b)
			}
		}
		got, ref := parseAffectedFields(b), referenceAffectedFields(b)
		if !slices.Equal(got.all, ref.all) || !maps.EqualFunc(got.byRecord, ref.byRecord, slices.Equal) {
			t.Fatalf("affected fields of %s: %+v, reference %+v", b, got, ref)
		}
	})
}

func compactEqual(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

// objectMembers refuses what json.Valid refuses at its nesting limit.
func TestObjectMembersNestingLimit(t *testing.T) {
	for _, depth := range []int{maxNesting - 1, maxNesting, maxNesting + 1} {
		inner := depth - 1 // the object itself is one level
		b := []byte(`{"a":` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `}`)
		if _, ok := objectMembers(b); ok != json.Valid(b) || ok != (depth <= maxNesting) {
			t.Errorf("depth %d: objectMembers ok=%v, json.Valid %v", depth, ok, json.Valid(b))
		}
	}
}
