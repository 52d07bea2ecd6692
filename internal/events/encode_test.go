package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// encodeReference is Encode as it was written with encoding/json: the
// hand-written encoder must store byte for byte the same event.
func encodeReference(e *Envelope) ([]byte, error) {
	bare := *e
	bare.Raw = nil
	data, err := json.Marshal(&bare)
	if err != nil || len(e.Raw) == 0 {
		return data, err
	}
	out := append([]byte(nil), data[:len(data)-1]...)
	out = append(out, `,"raw":`...)
	out = append(out, e.Raw...)
	return append(out, '}'), nil
}

func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	f.Add("id1", "Deals", "update", "42", "Stage,Amount", "", "", int64(1700000000123), int64(0), `{"a":1}`, "k", "v", false)
	f.Add("<&>", "Dé\u2028als", "x\"y\\z", "\x01\x7f", "a<b,ü", "hook\ttab", "origin", int64(-5), int64(3), `[1,"x"]`, "nested", `{"a":[1,{"b":null}]}`, true)
	f.Add("\xff\xfe", "m", "o", "", "", "", "", int64(0), int64(0), "", "", "", false)
	f.Fuzz(func(t *testing.T, id, module, op, rid, fields, hook, origin string, st, replay int64, raw, vk, vv string, local bool) {
		e := &Envelope{Version: EnvelopeVersion, ID: id, Source: SourceCRMNotify, Connection: "default", Module: module,
			Operation: op, RecordID: rid, ChannelID: hook + "c", Hook: hook, ServerTime: st, Replay: replay, Origin: origin,
			ReceivedAt: time.Unix(st/1000, st%1000*1e6+7).UTC()}
		if local {
			e.ReceivedAt = e.ReceivedAt.In(time.FixedZone("X", 5*3600+30*60))
		}
		if fields != "" {
			e.ChangedFields = strings.Split(fields, ",")
		}
		if vk != "" {
			var v any
			if json.Unmarshal([]byte(vv), &v) != nil {
				v = vv
			}
			e.Values = map[string]any{vk: v, "n": 1.5}
		}
		if json.Valid([]byte(raw)) {
			e.Raw = json.RawMessage(raw)
		}
		want, werr := encodeReference(e)
		got, gerr := appendEnvelope(nil, e, e.Raw)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("errors differ: encoding/json %v, hand-written %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("encodings differ:\n got  %s\n want %s", got, want)
		}
	})
}

func TestEncodeRefusesDeepValues(t *testing.T) {
	deep := any("x")
	for range MaxDepth {
		deep = []any{deep}
	}
	e := &Envelope{ID: "1", Source: SourceCRMNotify, Module: "Deals", Operation: OpUpdate, Values: map[string]any{"a": deep}}
	if _, err := Encode(e); !errors.Is(err, ErrInvalidEnvelope) {
		t.Fatalf("values deeper than a worker decodes: got %v, want ErrInvalidEnvelope", err)
	}
	e.Values = map[string]any{"a": []any{[]any{1}}}
	data, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err != nil {
		t.Fatalf("encoded event does not decode: %v", err)
	}
}

// DeriveID names stored events: it must give the ids earlier versions gave.
func TestDeriveIDUnchanged(t *testing.T) {
	old := func(parts ...string) string {
		h := sha256.New()
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s;", len(p), p)
		}
		return hex.EncodeToString(h.Sum(nil)[:16])
	}
	for _, parts := range [][]string{nil, {""}, {"crm.notify", "default", "1", "Deals", "update", "42", "1700000000000", ""}, {"ab", "c"}, {strings.Repeat("é", 300)}} {
		if got, want := DeriveID(parts...), old(parts...); got != want {
			t.Errorf("DeriveID(%q) = %s, was %s", parts, got, want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	raw := json.RawMessage(`{"server_time":1700000000000,"module":"Deals","ids":["42"],"affected_fields":["Stage","Amount"],"operation":"update","channel_id":"1"}`)
	e := &Envelope{Version: 1, ID: DeriveID("x"), Source: SourceCRMNotify, Connection: "default", Module: "Deals", Operation: OpUpdate,
		RecordID: "5725767000000524157", ChangedFields: []string{"Stage", "Amount"}, ChannelID: "1", ServerTime: 1700000000000,
		ReceivedAt: time.Now().UTC(), Raw: raw}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}
