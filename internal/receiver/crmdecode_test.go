package receiver

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// decodeNotification gives what json.Unmarshal gives for every input: the
// same struct, an error exactly when it errs, and the same 400 for it (the
// field and message of a type error, the text of any other). It takes apart
// exactly the bodies json.Valid accepts as objects (FuzzJSONScan checks the
// members themselves).
func FuzzNotificationDecodeMatchesEncodingJSON(f *testing.F) {
	valid := `{"server_time":1718117126473,"query_params":{},"module":"Deals",` +
		`"resource_uri":"https://www.zohoapis.com/crm/v8/Deals","ids":["5725767000000524157","5725767000000524158"],` +
		`"affected_fields":[{"5725767000000524157":["Stage","Amount"]}],"operation":"update","channel_id":"1000000068001","token":"t"}`
	if tmpl, err := os.ReadFile("../../bench/notify-1k.json"); err == nil {
		r := strings.NewReplacer("__TOKEN__", "tok", "__ID__", "5725767000100000000", "__SERVER_TIME__", "1764410000000")
		f.Add([]byte(r.Replace(string(tmpl))))
	}
	for _, s := range []string{
		valid,
		` {"module":"Leads","ids":[5725767000000524201],"operation":"insert","channel_id":1000000068001,"token":"t",` +
			`"affected_values":[{"record_id":"5725767000000524201","values":{"Lead_Status":"New"}}]} `,
		`{"module":"Deals","ids":["1","1"],"operation":"delete","channel_id":"1","token":"t"}`,
		`{"token":"t","ids":{"a":1}}`,
		"\xff\xfe{}", `[]`, `{}`, `null`, ` null `, `"x"`, `12`, `true`, ``, ` `, `{`, `{"a":1}{"b":2}`, `{"a":1,}`,
		// duplicate keys: the last wins, a map merges, null clears ids and query_params
		`{"module":"A","module":"B","Module":"C"}`,
		`{"query_params":{"a":1},"query_params":{"b":[true,null,"x"]},"QUERY_PARAMS":{"a":2}}`,
		`{"query_params":{"a":1},"query_params":null}`,
		`{"query_params":{"a":1},"query_params":{}}`,
		`{"ids":["1","2","3"],"ids":["4"]}`, `{"ids":["1"],"ids":[]}`, `{"ids":["1"],"ids":null}`, `{"ids":[]}`,
		`{"affected_fields":["A"],"affected_fields":null}`, `{"affected_values":[1],"affected_values":null}`,
		`{"affected_values":{"1":{"a":"b"}},"affected_values":[ 1 , 2 ]}`,
		`{"channel_id":"1","channel_id":null}`, `{"server_time":5,"server_time":null}`, `{"module":"A","module":null}`,
		// case and Unicode folds
		`{"MODULE":"Deals","Server_Time":7,"IDS":["1"],"Operation":"insert","CHANNEL_ID":2,"ToKeN":"t"}`,
		`{"ſerver_time":1,"ids":["1"],"affected_ſields":["x"],"token":"ſ"}`,
		`{"toKen":"kelvin","query_params":{"\u212a":1}}`,
		`{"\u006dodule":"esc","m\u00f6dule":"no","modulE":"yes"}`,
		`{"modul":"x","modules":"y","":"z","module ":"w"}`,
		// numbers and wrong kinds
		`{"server_time":1.5}`, `{"server_time":1e3}`, `{"server_time":99999999999999999999}`, `{"server_time":-0}`,
		`{"server_time":"123"}`, `{"server_time":true}`, `{"server_time":[1]}`, `{"server_time":{}}`,
		`{"server_time":-9223372036854775808}`, `{"server_time":9223372036854775808}`, `{"server_time":1E+2}`,
		`{"module":1}`, `{"module":false}`, `{"module":["Deals"]}`, `{"token":{"a":"b"}}`, `{"resource_uri":-1.5e-7}`,
		`{"ids":"1"}`, `{"ids":1}`, `{"ids":true}`, `{"ids":[true]}`, `{"ids":[["1"]]}`, `{"ids":[{}]}`,
		`{"ids":[null,"",0,-1.5e+10,"\u0031"]}`, `{"ids":[1,2],"module":7}`, `{"module":7,"ids":[1,false]}`,
		`{"channel_id":true}`, `{"channel_id":[]}`, `{"channel_id":{"a":1}}`, `{"channel_id":1.0e-3}`, `{"channel_id":null}`,
		`{"query_params":[]}`, `{"query_params":"x"}`, `{"query_params":1}`, `{"query_params":{"a":1e400}}`,
		`{"query_params":{"a":[1,{"b":-1e999}]},"module":1}`, `{"module":1,"query_params":{"a":1e400}}`,
		`{"server_time":1e400,"module":"Deals","ids":["1"],"operation":"update","channel_id":"1","token":"t"}`,
		`{"affected_fields":"x"}`, `{"affected_fields":[1,null,"A",{"1":["B"]},{"2":"C"},["D"]]}`,
		`{"affected_values":"x"}`, `{"affected_values":  {"1" : {}} }`,
		// escapes, whitespace, nesting, bytes that are not UTF-8
		"{ \"module\" : \"De\\u0061ls\\n\" ,\t\"token\":\"a\\\"b\\\\\" , \"ids\" : [ \"1\" , 2 ] }\r\n",
		`{"module":"\ud800","operation":"\u00e9\u20ac\ud83d\ude00"}`,
		"{\"module\":\"\xff\",\"ids\":[\"\xc3\x28\"],\"token\":\"\xed\xa0\x80\"}",
		"{\"\xffmodule\":\"x\",\"mod\xc3ule\":\"y\"}",
		`{"x":{"module":"inner","ids":[[[]]]},"y":[{"token":"z"}],"module":"outer"}`,
		`{"query_params":{"a":{"b":{"c":[1,2,{"d":null}]}}},"unknown":[1,2,3]}`,
		// what json.Valid refuses, or accepts, at the edges of the grammar
		`{"a":01}`, `{"a":-01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`, `{"a":0.0e-0}`,
		`{"a":-0.5E+12,"b":[0,-0,1e9]}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, `{"a":"\uABcd\/\b\f\r\t"}`,
		"{\"a\":\"tab\there\"}", "{\"a\":\"\x7f\x00\"}", "{\"a\":\"\\", `{"a":"`, `{"a":tru}`, `{"a":nul}`, `{"a":truex}`,
		`{"a":[true,false,null]}`, `{"a" 1}`, `{"a":1 "b":2}`, `{,}`, `{"a":1,,"b":2}`, `{"a":[1,]}`, `{"a":[,1]}`,
		`{"a":[1}`, `{"a":{]}`, `{1:2}`, `{"a":1}}`, `{"a":1} x`, "\t{\"a\":1}\r\n", "{\"a\":1}\v", `{"a":[]]}`,
		`{"a":{"b":1,}}`, `{"a":{"b"}}`, `{"a":{"b":}}`, `{"a":[[[[]]]],"b":{"c":{"d":{}}}}`, `{"ids":["1"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want, got crmNotification
		wantErr := json.Unmarshal(body, &want)
		members, gotErr := decodeNotification(body, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%q: error %v, json.Unmarshal's %v", body, gotErr, wantErr)
		}
		if wantErr != nil {
			if w, g := decodeError(wantErr), decodeError(gotErr); !reflect.DeepEqual(w, g) {
				t.Fatalf("%q: answer %v, json.Unmarshal's %v", body, g, w)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ndecoded        %#v\njson.Unmarshal %#v", body, got, want)
		}
		if i := skipSpace(body, 0); (members != nil) != (i < len(body) && body[i] == '{') {
			t.Fatalf("%q: members %q", body, members)
		}
	})
}

func BenchmarkDecodeNotification(b *testing.B) {
	tmpl, err := os.ReadFile("../../bench/notify-1k.json")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(strings.NewReplacer("__TOKEN__", "tok", "__ID__", "5725767000100000000",
		"__SERVER_TIME__", "1764410000000").Replace(string(bytes.TrimSpace(tmpl))))
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n crmNotification
			if err := json.Unmarshal(body, &n); err != nil {
				b.Fatal(err)
			}
			if _, ok := objectMembers(body); !ok { // as decodeCRMNotification did after it
				b.Fatal("not an object")
			}
		}
	})
	b.Run("decodeNotification", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n crmNotification
			if _, err := decodeNotification(body, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
