package broadcast

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseIncoming(f *testing.F) {
	for _, s := range []string{`{"action":"get_status"}`, `{"a":[1,{"b":null}]}`, ` {"x":1} `, `not json`,
		`[1,2]`, `42`, `"str"`, `{`, `{"a":1}{"b":2}`, `null`, "", "\xff\xfe", `{"payload":"\u0000"}`} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte{0, 1, 2, 255}, true)
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		in := ParseIncoming("s1", data, binary)
		if in.Session != "s1" || !bytes.Equal(in.Raw, data) || in.Binary != binary || in.Msg == nil {
			t.Fatalf("ParseIncoming(%q, %v) = %+v", data, binary, in)
		}
		switch {
		case binary:
			if b, ok := in.Msg["payload"].([]byte); !ok || !bytes.Equal(b, data) || in.JSON {
				t.Fatalf("binary frame: Msg %v JSON %v", in.Msg, in.JSON)
			}
		case in.JSON:
			// It was a JSON object, and Msg is that object.
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil || m == nil {
				t.Fatalf("JSON true for %q: %v", data, err)
			}
			if _, err := json.Marshal(in.Msg); err != nil {
				t.Fatalf("Msg does not marshal: %v", err)
			}
		default:
			if p, ok := in.Msg["payload"].(string); !ok || p != string(data) || len(in.Msg) != 1 {
				t.Fatalf("text frame %q: Msg %v", data, in.Msg)
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil && m != nil {
				t.Fatalf("%q is a JSON object but JSON is false", data)
			}
		}
	})
}

// matchRef is the MQTT matching rule written the obvious way, to check
// MatchTopic against.
func matchRef(f, topic string) bool {
	if !validRef(f) {
		return false
	}
	if strings.HasPrefix(topic, "$") && (f[0] == '+' || f[0] == '#') {
		return false
	}
	fl, tl := strings.Split(f, "/"), strings.Split(topic, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if l != "+" && l != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

func validRef(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

func FuzzMatchTopic(f *testing.F) {
	for _, c := range [][2]string{
		{"sensors/#", "sensors"}, {"sensors/#", "sensors/a/b"}, {"sensors/+/temp", "sensors/x/temp"},
		{"+", ""}, {"+/+", "/"}, {"#", "$SYS/x"}, {"a/#/b", "a/x/b"}, {"a+", "a+"}, {"/#", "/"},
		{"a//b", "a//b"}, {"+/#", "a"}, {"$SYS/#", "$SYS/load"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if !utf8.ValidString(filter) || !utf8.ValidString(topic) {
			return
		}
		got, want := MatchTopic(filter, topic), matchRef(filter, topic)
		if got != want {
			t.Fatalf("MatchTopic(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		if ValidFilter(filter) != validRef(filter) {
			t.Fatalf("ValidFilter(%q) = %v, reference says %v", filter, ValidFilter(filter), validRef(filter))
		}
		// A topic (no wildcards) used as a filter matches itself.
		if topic != "" && !strings.ContainsAny(topic, "+#") && !MatchTopic(topic, topic) {
			t.Fatalf("MatchTopic(%q, itself) = false", topic)
		}
	})
}

func TestMatchTopic(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"sensors/dht22", "sensors/dht22", true},
		{"sensors/dht22", "sensors/dht2", false},
		{"sensors/+", "sensors/dht22", true},
		{"sensors/+", "sensors/dht22/temp", false},
		{"sensors/+/temp", "sensors/x/temp", true},
		{"sensors/#", "sensors", true},
		{"sensors/#", "sensors/a/b/c", true},
		{"sensors/#", "sensorsx", false},
		{"#", "anything/at/all", true},
		{"+", "", true},
		{"+/+", "/", true},
		{"#", "$SYS/load", false},
		{"$SYS/#", "$SYS/load", true},
		{"a/#/b", "a/x/b", false}, // invalid filter
		{"a+", "a+", false},       // invalid filter
		{"", "", false},
	} {
		if got := MatchTopic(tc.filter, tc.topic); got != tc.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestMatchTopicDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { MatchTopic("sensors/+/temp/#", "sensors/dht22/temp/x") }); n != 0 {
		t.Fatalf("MatchTopic allocates %v times", n)
	}
}
