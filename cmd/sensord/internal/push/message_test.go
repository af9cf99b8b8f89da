package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"sensord/broadcast"
)

func TestParseJSONFollowsWebsocketOut(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     Push
	}{
		{"Node-RED's alert example goes as JSON text", `{"payload":{"alert":"System maintenance in 5 minutes"}}`,
			Push{Payload: broadcast.RawJSON(`{"alert":"System maintenance in 5 minutes"}`)}},
		{"a string goes as it is", `{"payload":"hello \"you\"","topic":"t"}`, Push{Topic: "t", Payload: `hello "you"`}},
		{"a number goes as JSON text", `{"payload":21.50}`, Push{Payload: broadcast.RawJSON(`21.5`)}},
		{"null goes as null, as ensureString writes it", `{"payload":null}`, Push{Payload: broadcast.RawJSON(`null`)}},
		{"false goes as false", `{"payload":false}`, Push{Payload: broadcast.RawJSON(`false`)}},
		{"a Buffer goes as bytes", `{"payload":{"type":"Buffer","data":[0,1,255]}}`, Push{Payload: []byte{0, 1, 255}}},
		{"a Buffer-like object with more keys is an object", `{"payload":{"type":"Buffer","data":[1],"x":1}}`,
			Push{Payload: broadcast.RawJSON(`{"type":"Buffer","data":[1],"x":1}`)}},
		{"a session picks one client", `{"payload":1,"_session":{"type":"websocket","id":"00aa11bb22cc33dd"}}`,
			Push{Payload: broadcast.RawJSON(`1`), Session: "00aa11bb22cc33dd"}},
		{"a null session broadcasts", `{"payload":1,"_session":null}`, Push{Payload: broadcast.RawJSON(`1`)}},
		{"the path is read, other keys ignored", `{"path":"/ws/api","payload":"x","_msgid":"abc","Payload":"not this"}`,
			Push{Path: "/ws/api", Payload: "x"}},
		{"a repeated key's last value counts", `{"payload":"a","payload":"b"}`, Push{Payload: "b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJSON([]byte(tt.in))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseJSON(%s) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseJSONRefusesWithAReason(t *testing.T) {
	for in, want := range map[string]error{
		``:               ErrMalformed,
		`[1]`:            ErrMalformed,
		`{"payload":`:    ErrMalformed,
		`{"payload":1}x`: ErrMalformed,
		`{}`:             ErrEmpty,
		`{"payload":""}`: ErrEmpty,
		`{"payload":{"type":"Buffer","data":[]}}`:                                              ErrEmpty,
		`{"payload":1,"topic":[]}`:                                                             ErrMalformed,
		`{"payload":1,"path":1}`:                                                               ErrMalformed,
		`{"payload":1,"_session":"abc"}`:                                                       ErrMalformed,
		`{"payload":1,"_session":{"type":"websocket"}}`:                                        ErrMalformed,
		`{"payload":1,"_session":{"type":"websocket","id":""}}`:                                ErrMalformed,
		`{"payload":1,"_session":{"id":"00aa11bb22cc33dd"}}`:                                   ErrMalformed,
		`{"payload":1,"_session":{"type":"websocket","id":"` + strings.Repeat("a", 65) + `"}}`: ErrMalformed,
		`{"payload":"` + strings.Repeat("x", MaxFrame+1) + `"}`:                                ErrTooLarge,
		`{"payload":[` + strings.Repeat("1,", MaxFrame/2) + `1]}`:                              ErrTooLarge,
	} {
		if _, err := ParseJSON([]byte(in)); !errors.Is(err, want) {
			t.Errorf("ParseJSON(%.60s) = %v, want %v", in, err, want)
		}
	}
}

// stringifyCases are JSON texts whose JSON.stringify(JSON.parse(..)) the
// test asks Node.js for.
var stringifyCases = []string{
	`{"alert":"System maintenance in 5 minutes"}`,
	` { "a" : [ 1 , 2.50 , -0 , 1E3 , 1e21 , 1.5e-7 , 0.000001 , 123456789012345678901234 ] , "b" : { } , "c" : [ ] } `,
	`{"s":"tab\there, nl\n, quote \", back \\, slash \/, bell \u0007, del \u007f, é \u00e9, <>&, \u2028"}`,
	`[true,false,null,"",{"":""}]`,
	`1e400`,
	`-1e-400`,
	`{"z":1,"a":2,"m":{"y":[{"x":null}]}}`,
	`"a string"`,
	`0.1`,
	`-12.75`,
	`9007199254740993`,
}

// TestStringifyWritesWhatJSONStringifyWrites compares with Node.js.
func TestStringifyWritesWhatJSONStringifyWrites(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed (make test-deps installs it): %v", err)
	}
	in, _ := json.Marshal(stringifyCases)
	cmd := exec.Command(node, "-e", `let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{process.stdout.write(JSON.stringify(JSON.parse(s).map(x=>JSON.stringify(JSON.parse(x)))))})`)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(stringifyCases) {
		t.Fatalf("node said %s: %v", out, err)
	}
	for i, c := range stringifyCases {
		got, err := Stringify([]byte(c))
		if err != nil || string(got) != want[i] {
			t.Errorf("Stringify(%s)\n got %s, %v\nwant %s", c, got, err, want[i])
		}
	}
}

// FuzzParseJSON: any body is refused with one of the errors or gives a
// push whose payload is non-empty, within MaxFrame, and, as JSON text,
// valid JSON that Stringify leaves as it is and that means what the
// body's payload meant.
func FuzzParseJSON(f *testing.F) {
	for _, c := range stringifyCases {
		f.Add([]byte(`{"payload":` + c + `}`))
	}
	f.Add([]byte(`{"payload":{"type":"Buffer","data":[0,1,255]},"topic":"t","_session":{"type":"websocket","id":"00aa11bb22cc33dd"},"path":"/ws/api"}`))
	f.Add([]byte(`{"payload":"\ud800x","topic":"a\u0000b"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseJSON(body)
		if err != nil {
			for _, e := range []error{ErrMalformed, ErrEmpty, ErrTooLarge} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error %v is none of the push errors", err)
		}
		switch v := p.Payload.(type) {
		case string:
			if v == "" || len(v) > MaxFrame {
				t.Fatalf("string payload of %d bytes", len(v))
			}
		case []byte:
			if len(v) == 0 || len(v) > MaxFrame {
				t.Fatalf("binary payload of %d bytes", len(v))
			}
		case broadcast.RawJSON:
			if len(v) == 0 || len(v) > MaxFrame || !json.Valid(v) {
				t.Fatalf("JSON payload %q", v)
			}
			again, err := Stringify(v)
			if err != nil || !bytes.Equal(again, v) {
				t.Fatalf("Stringify(%s) = %s, %v: not a fixed point", v, again, err)
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) != nil {
				t.Fatal("a body that does not parse was taken")
			}
			var a, b any
			if json.Unmarshal(m["payload"], &a) == nil && json.Unmarshal(v, &b) == nil && !reflect.DeepEqual(a, b) && !hasNonFinite(m["payload"]) {
				t.Fatalf("payload %s became %s", m["payload"], v)
			}
		default:
			t.Fatalf("payload of type %T", p.Payload)
		}
	})
}

// hasNonFinite reports whether raw holds a number past a double's range
// (JSON.stringify writes those as null).
func hasNonFinite(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := n.Float64(); err != nil {
				return true
			}
		}
	}
}
