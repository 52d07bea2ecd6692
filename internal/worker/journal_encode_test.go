package worker

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The spliced encoding of an entry decodes to what encoding/json's own
// encoding of it decodes to.
func TestEntryEncodeMatchesEncodingJSON(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	cases := map[string]*Entry{
		"empty": {rec: EventRecord{Version: 1}},
		"full": {rec: EventRecord{Version: 1, HasRecord: true, Failures: 2, Holder: "w/1", Updated: now, DeadLettered: now,
			Attempts: []Attempt{{}},
			Steps: map[string]*StepRecord{
				"b/update#1": {State: StepDone, Action: "crm.update", Output: map[string]any{"id": "7", "n": 1.5}, Attempts: 1, At: now,
					Calls: json.RawMessage(`[{"api":"crm","method":"PUT","path":"/crm/v8/Deals","status":200}]`)},
				"a/get<&>\u00e9": {State: StepStarted, Action: "crm.get", At: now, Started: now, OutputKey: "k"},
				"c/nil":          nil,
			}},
			recordJSON: json.RawMessage(`{"id":"7","Stage":"Closed Won","Amount":10}`)},
		"record only": {rec: EventRecord{Version: 1, HasRecord: true}, recordJSON: json.RawMessage(`{}`)},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := e.encode()
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(entryWire{EventRecord: e.rec, Record: e.recordJSON})
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
			var g, w entryWire
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("decoded differently:\n got  %s\n want %s", got, want)
			}
		})
	}
}
