package health

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/sensor"
)

// clock is a settable clock for the window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a Checker at a 2 s period over stats and alive the test sets.
type fixture struct {
	clock *clock
	stats sensor.Stats
	// verdict is the sensor watch's; ok unless a step sets another.
	verdict SensorState
	alive   error
	mqtt    string
	// output is what Describe says degrades an output.
	output string
	c      *Checker
}

func newFixture() *fixture {
	f := &fixture{clock: &clock{t: start}, verdict: SensorState{State: SensorOK}}
	f.c = &Checker{
		Now:      f.clock.now,
		Started:  start,
		Window:   Window{Period: 2 * time.Second},
		Version:  "v-test",
		Sensor:   func() sensor.Stats { return f.stats },
		Verdict:  func() SensorState { return f.verdict },
		Alive:    func() error { return f.alive },
		Degraded: []func() string{func() string { return f.mqtt }},
		Describe: func(r *Report) string { r.Sensor.Name = "dht22 on GPIO4"; r.Name = "kitchen"; return f.output },
	}
	return f
}

// read records a good reading now.
func (f *fixture) read() {
	f.stats.Reads++
	f.stats.Successes++
	f.stats.LastSuccess = f.clock.now()
}

// fail records a failed read now.
func (f *fixture) fail(err string) {
	f.stats.Reads++
	if f.stats.Errors == nil {
		f.stats.Errors = map[string]uint64{}
	}
	f.stats.Errors["timeout"]++
	f.stats.LastError, f.stats.LastErrorTime = err, f.clock.now()
}

func TestTheStatusFollowsTheSensorsVerdict(t *testing.T) {
	failing := SensorState{State: SensorFailing, Summary: "failing: no good reading for 2m1s; the sensor on GPIO4 does not answer"}
	degraded := SensorState{State: SensorDegraded, Summary: "degraded: 50 % of reads failed in the last 10 minutes (150 of 300); the sensor's answers on GPIO4 arrive garbled"}
	tests := []struct {
		name       string
		steps      func(f *fixture)
		wantCode   int
		wantStatus string
		wantReason string
	}{
		{"a fresh daemon without a reading is starting, not ok", func(f *fixture) {
			f.verdict = SensorState{State: SensorWaiting}
		}, 200, StatusStarting, "no good reading yet"},
		{"a failing sensor is unhealthy, in the verdict's words", func(f *fixture) {
			f.fail("dht22: no response on GPIO4: timeout")
			f.verdict = failing
		}, 503, StatusUnhealthy, failing.Summary},
		{"a stuck read is unhealthy", func(f *fixture) {
			f.verdict = SensorState{State: SensorStuck, Summary: "stuck: a read of the sensor on GPIO4 has not returned for 31s"}
		}, 503, StatusUnhealthy, "stuck: a read of the sensor on GPIO4 has not returned for 31s"},
		{"a good reading makes it ok", func(f *fixture) {
			f.clock.advance(2 * time.Second)
			f.read()
		}, 200, StatusOK, ""},
		// At a 50 % error rate three periods without a good reading come
		// now and then; the verdict stays degraded, and so does the status.
		{"a degraded sensor whose last reading is past the window is degraded, not a 503", func(f *fixture) {
			f.read()
			f.clock.advance(20 * time.Second)
			f.fail("dht22: checksum mismatch")
			f.verdict = degraded
		}, 200, StatusDegraded, degraded.Summary},
		{"a stuck loop is unhealthy whatever the readings", func(f *fixture) {
			f.read()
			f.alive = errors.New("broadcaster /ws/api stuck for 16s")
		}, 503, StatusUnhealthy, "broadcaster /ws/api stuck for 16s"},
		{"a stuck loop outranks a failing sensor", func(f *fixture) {
			f.verdict = failing
			f.alive = errors.New("sensor loop stuck for 31s")
		}, 503, StatusUnhealthy, "sensor loop stuck for 31s"},
		{"a broker that is down degrades but stays 200", func(f *fixture) {
			f.read()
			f.mqtt = "mqtt disconnected: connection refused"
		}, 200, StatusDegraded, "mqtt disconnected: connection refused"},
		{"a failing sensor outranks the broker", func(f *fixture) {
			f.verdict = failing
			f.mqtt = "mqtt disconnected: connection refused"
		}, 503, StatusUnhealthy, failing.Summary},
		{"a Degraded part is weighed before a degraded sensor", func(f *fixture) {
			f.verdict = degraded
			f.mqtt = "mqtt connecting"
		}, 200, StatusDegraded, "mqtt connecting"},
		{"a degraded sensor is weighed before a described output", func(f *fixture) {
			f.verdict = degraded
			f.output = "history cannot be written"
		}, 200, StatusDegraded, degraded.Summary},
		{"a described output that is down degrades but stays 200", func(f *fixture) {
			f.read()
			f.output = "history cannot be written"
		}, 200, StatusDegraded, "history cannot be written"},
		{"a Degraded part is weighed before a described one", func(f *fixture) {
			f.read()
			f.mqtt = "mqtt connecting"
			f.output = "history cannot be written"
		}, 200, StatusDegraded, "mqtt connecting"},
		{"starting outranks the broker", func(f *fixture) {
			f.verdict = SensorState{State: SensorWaiting}
			f.mqtt = "mqtt connecting"
		}, 200, StatusStarting, "no good reading yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			tt.steps(f)
			code, r := f.c.Check()
			if code != tt.wantCode || r.Status != tt.wantStatus || r.Reason != tt.wantReason {
				t.Errorf("Check = %d %q %q, want %d %q %q", code, r.Status, r.Reason, tt.wantCode, tt.wantStatus, tt.wantReason)
			}
			if r.Sensor.SensorState != f.verdict {
				t.Errorf("the report's sensor state %+v is not the verdict the status came from %+v", r.Sensor.SensorState, f.verdict)
			}
		})
	}
}

func TestWindowOverdueCountsFromTheStartUntilAReading(t *testing.T) {
	w := Window{Period: 100 * time.Millisecond}
	if got := w.Length(); got != 1300*time.Millisecond {
		t.Errorf("Length = %s, want 1.3s", got)
	}
	if age, over := w.Overdue(start.Add(2*time.Second), time.Time{}, start); age != 2*time.Second || !over {
		t.Errorf("no reading, 2 s after start: %s %v", age, over)
	}
	if age, over := w.Overdue(start.Add(2*time.Second), start.Add(time.Second), start); age != time.Second || over {
		t.Errorf("a reading 1 s ago: %s %v", age, over)
	}
}

func TestTheReportCarriesCountersAndKeepsItsShape(t *testing.T) {
	f := newFixture()
	f.clock.advance(90500 * time.Millisecond)
	f.fail("dht22: timeout")
	f.read()
	f.read()
	f.read()
	_, r := f.c.Check()
	if r.Uptime != 90.5 || r.Version != "v-test" || r.Sensor.Period != 2 || r.Sensor.SuccessRate != 0.75 ||
		r.Sensor.LastSuccess != f.clock.now().UnixMilli() || r.Sensor.LastErrorTime != f.clock.now().UnixMilli() || r.Sensor.Name != "dht22 on GPIO4" {
		t.Errorf("report %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// Keys in order; clients and warnings are {} and [] (never null) when
	// Describe leaves them empty; mqtt and client are absent without them.
	got := string(b)
	for _, want := range []string{`{"status":"ok","version":"v-test","uptime":90.5,"sensor":{"name":"dht22 on GPIO4","period":2,"reads":4,"successes":3,"held":0,"success_rate":0.75,"errors":{"timeout":1},"last_error":"dht22: timeout",`,
		`"state":"ok","window_reads":0,"window_failed":0,"window_seconds":0},"clients":{},"name":"kitchen","warnings":[],"extra":{"calibration":{"temperature_offset":0,"humidity_offset":0},"history":{"enabled":false,"queued":0,"written":0,"dropped":0},"device":{"hostname":"","addresses":null,"cores":0}}}`} {
		if !strings.Contains(got, want) {
			t.Errorf("JSON %s\nlacks %s", got, want)
		}
	}
}

func TestServeHTTPAnswersTheVerdictAsUncachedJSON(t *testing.T) {
	f := newFixture()
	f.verdict = SensorState{State: SensorFailing, Summary: "failing: no good reading for 2m0s"}
	rec := httptest.NewRecorder()
	f.c.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var r Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || r.Status != StatusUnhealthy || rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("%d %+v %v", rec.Code, r, rec.Header())
	}
}
