package mqtt

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"sensord/sensor"
)

func TestQueueDropsTheOldestAndPutsBackAtTheFront(t *testing.T) {
	q := newQueue(3)
	ms := func(rs []Publication) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.Time.UnixMilli())
		}
		return out
	}
	for i := range 5 {
		q.push(Publication{Time: time.UnixMilli(int64(i))})
	}
	if held, dropped := q.stats(); held != 3 || dropped != 2 {
		t.Fatalf("held %d dropped %d, want 3 2", held, dropped)
	}
	// A back-fill with nothing delivered starts at the oldest dropped.
	if got := q.oldestDropped(); !got.Equal(time.UnixMilli(0)) {
		t.Fatalf("oldest dropped %v, want reading 0", got)
	}
	taken := q.takeAll()
	if got := ms(taken); !slices.Equal(got, []int64{2, 3, 4}) {
		t.Fatalf("took %v", got)
	}
	q.push(Publication{Time: time.UnixMilli(5)})
	q.putBack(taken)
	if got := ms(q.takeAll()); !slices.Equal(got, []int64{3, 4, 5}) {
		t.Errorf("after put-back %v, want [3 4 5] (the oldest put back does not fit)", got)
	}
	if _, dropped := q.stats(); dropped != 3 {
		t.Errorf("dropped %d, want 3", dropped)
	}
	if got := q.oldestDropped(); !got.Equal(time.UnixMilli(0)) {
		t.Errorf("oldest dropped %v after a put-back dropped reading 2, want reading 0 still", got)
	}
	if empty := newQueue(1); !empty.oldestDropped().IsZero() {
		t.Error("a queue that dropped nothing has an oldest dropped")
	}
}

func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		tls      bool
		user, pw string
	}{
		{"mqtt://broker.local", "mqtt://broker.local:1883", false, "", ""},
		{"mqtts://broker.local", "mqtts://broker.local:8883", true, "", ""},
		{"mqtt://u:p%40ss@10.0.2.2:1884/", "mqtt://10.0.2.2:1884", false, "u", "p@ss"},
		{"mqtt://[::1]:1883", "mqtt://[::1]:1883", false, "", ""},
	} {
		b, err := ParseURL(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if b.String() != tt.want || b.TLS != tt.tls || b.Username != tt.user || b.Password != tt.pw {
			t.Errorf("%s: got %+v (%s)", tt.in, b, b)
		}
	}
	for _, bad := range []string{"", "ws://x", "mqtt://", "mqtt://h/topic", "mqtt://h?x=1", "mqtt://h:", "mqtt://user:hunter2@/x", "http://user:hunter2@h"} {
		_, err := ParseURL(bad)
		if !errors.Is(err, ErrURL) {
			t.Errorf("%q: err %v, want ErrURL", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}

func TestHubMessageShape(t *testing.T) {
	at := time.UnixMilli(1763856000123)
	for _, tt := range []struct{ topic, payload, want string }{
		{"sensors/kitchen/temperature", "21.4", `{"type":"mqtt","source":"kitchen","metric":"temperature","value":"21.4","timestamp":1763856000123}`},
		{"sensors/kitchen", "x", `{"type":"mqtt","source":"kitchen","value":"x","timestamp":1763856000123}`},
		{"sensors", "x", `{"type":"mqtt","value":"x","timestamp":1763856000123}`},
		{"sensors//", "", `{"type":"mqtt","source":"","metric":"","value":"","timestamp":1763856000123}`},
		{"a/b/c/d/e", "{\"k\":1}", `{"type":"mqtt","source":"b","metric":"c","value":"{\"k\":1}","timestamp":1763856000123,"topic":"a/b/c/d/e"}`},
		{"sensors/x/temperature/raw", "2140", `{"type":"mqtt","source":"x","metric":"temperature","value":"2140","timestamp":1763856000123,"topic":"sensors/x/temperature/raw"}`},
		{"sensors/x/temperature/", "", `{"type":"mqtt","source":"x","metric":"temperature","value":"","timestamp":1763856000123,"topic":"sensors/x/temperature/"}`},
		{"a/b/c", "\xff<", `{"type":"mqtt","source":"b","metric":"c","value":"�<","timestamp":1763856000123}`},
	} {
		got := string(NewHubMessage(tt.topic, []byte(tt.payload), at).AppendJSON(nil))
		if got != tt.want {
			t.Errorf("%q %q:\n got %s\nwant %s", tt.topic, tt.payload, got, tt.want)
		}
	}
}

// Home Assistant must not show an entity as unavailable while the poller
// is still retrying a failing sensor with its back-off.
func TestExpireAfterOutlastsTheRetryBackoff(t *testing.T) {
	for _, tt := range []struct {
		p    time.Duration
		want int
	}{
		{100 * time.Millisecond, 10},  // the floor
		{2 * time.Second, 38},         // 2+2+4+8+10+10 s of retries, one period more
		{2500 * time.Millisecond, 48}, // 45 s of retries, one period more, whole seconds
		{time.Minute, 420},            // the back-off never below the period
	} {
		got := expireAfter(tt.p)
		if got != tt.want {
			t.Errorf("period %s: %d, want %d", tt.p, got, tt.want)
		}
		silent := sensor.PeriodicOpts(tt.p).Silence(expireFailures)
		if time.Duration(got)*time.Second <= silent {
			t.Errorf("period %s: expire_after %d s is not longer than the %s the poller is silent over %d failed reads", tt.p, got, silent, expireFailures)
		}
	}
}

func FuzzNewHubMessage(f *testing.F) {
	f.Add("sensors/kitchen/temperature", []byte("21.4"))
	f.Add("a", []byte{0xff, 0})
	f.Add("//\"/\\", []byte("\u2028"))
	f.Add("sensors/x/temperature/raw", []byte("2140"))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		m := NewHubMessage(topic, payload, time.UnixMilli(1))
		var back map[string]any
		if err := json.Unmarshal(m.AppendJSON(nil), &back); err != nil {
			t.Fatalf("not JSON: %v: %s", err, m.AppendJSON(nil))
		}
		if back["type"] != "mqtt" || back["value"] != m.Value {
			t.Fatalf("round trip %v from %+v", back, m)
		}
		levels := strings.Count(topic, "/") + 1
		if _, ok := back["source"]; ok != (levels > 1) {
			t.Fatalf("source present %v with %d levels", ok, levels)
		}
		if _, ok := back["metric"]; ok != (levels > 2) {
			t.Fatalf("metric present %v with %d levels", ok, levels)
		}
		if got, ok := back["topic"]; ok != (levels > 3) || (ok && got != strings.ToValidUTF8(topic, "\uFFFD")) {
			t.Fatalf("topic %v (present %v) with %d levels of %q", got, ok, levels, topic)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	f.Add("mqtt://u:pw@h:1883")
	f.Add("mqtts://h")
	f.Add("mqtt://u:pw@h/%zz")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseURL(s)
		if err != nil {
			if !errors.Is(err, ErrURL) {
				t.Fatalf("error %v is not ErrURL", err)
			}
			return
		}
		if b.Host == "" || b.Port == "" {
			t.Fatalf("%q parsed without host or port: %+v", s, b)
		}
		if b.Password != "" && strings.Contains(b.String(), b.Password) && !strings.Contains(b.Addr(), b.Password) {
			t.Fatalf("String %q shows the password", b.String())
		}
	})
}
