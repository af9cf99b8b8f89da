package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/health"
	"sensord/sensor"
)

// answerer records every reply; its clock stands 90.5 s after the start.
func answerer(latest *sensor.Reading) (*Answerer, *[]broadcast.Message) {
	var sent []broadcast.Message
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &Answerer{
		Publish: func(m broadcast.Message) error { sent = append(sent, m); return nil },
		Now:     func() time.Time { return start.Add(90500 * time.Millisecond) },
		Started: start,
		Sensor:  func() health.SensorState { return health.SensorState{State: "ok"} },
		Latest: func() (sensor.Reading, bool) {
			if latest == nil {
				return sensor.Reading{}, false
			}
			return *latest, true
		},
	}, &sent
}

// ask sends one request and returns the one reply as JSON.
func ask(t *testing.T, a *Answerer, sent *[]broadcast.Message, req string) string {
	t.Helper()
	*sent = nil
	a.Answer(broadcast.ParseIncoming("s1", []byte(req), false))
	if len(*sent) != 1 {
		t.Fatalf("%s: %d replies, want 1", req, len(*sent))
	}
	m := (*sent)[0]
	if m.Session != "s1" || m.Topic != Topic {
		t.Errorf("%s: reply on session %q topic %q, want s1 and %q: only the asker gets it", req, m.Session, m.Topic, Topic)
	}
	b, err := json.Marshal(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGetStatusAnswersOnlineWithUptimeMemoryAndTheSensor(t *testing.T) {
	a, sent := answerer(nil)
	var st struct {
		Status string
		Uptime float64
		Memory uint64
		Sensor struct{ State string }
	}
	got := ask(t, a, sent, `{"action":"get_status"}`)
	if err := json.Unmarshal([]byte(got), &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "online" || st.Uptime != 90.5 || st.Memory == 0 || st.Sensor.State != "ok" {
		t.Errorf("get_status = %s, want online, uptime 90.5 from the injected clock, the heap and the sensor's state", got)
	}
	if !strings.HasPrefix(got, `{"status":"online","uptime":90.5,"memory":`) {
		t.Errorf("get_status = %s: the reference flow's keys come first, in its order", got)
	}
}

func TestGetLatestAnswersTheReadingOrSaysThereIsNone(t *testing.T) {
	a, sent := answerer(nil)
	if got := ask(t, a, sent, `{"action":"get_latest"}`); got != `{"error":"no reading yet"}` {
		t.Errorf("before a reading: %s", got)
	}
	r := sensor.Reading{Temperature: 214, Humidity: 482, Time: time.UnixMilli(1763856000123)}
	a, sent = answerer(&r)
	if got, want := ask(t, a, sent, `{"action":"get_latest"}`), `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`; got != want {
		t.Errorf("get_latest = %s, want %s", got, want)
	}
}

func TestBadRequestsGetAnErrorThatSaysWhatToSend(t *testing.T) {
	a, sent := answerer(nil)
	for _, tt := range []struct{ name, req, want string }{
		{"an unknown action", `{"action":"reboot"}`, `unknown action \"reboot\": known actions are get_status, get_latest`},
		{"no action", `{"no":"action"}`, `missing \"action\": known actions are get_status, get_latest`},
		{"an action that is not a string", `{"action":7}`, `missing \"action\"`},
		{"text that is not JSON", `not json`, "malformed request"},
		{"a JSON array", `[1,2]`, "malformed request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ask(t, a, sent, tt.req); !strings.HasPrefix(got, `{"error":"`) || !strings.Contains(got, tt.want) {
				t.Errorf("%s answered %s, want an error containing %s", tt.req, got, tt.want)
			}
		})
	}
}
