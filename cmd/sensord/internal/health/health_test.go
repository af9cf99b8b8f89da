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
	alive error
	mqtt  string
	// output is what Describe says degrades an output.
	output string
	c      *Checker
}

func newFixture() *fixture {
	f := &fixture{clock: &clock{t: start}}
	f.c = &Checker{
		Now:      f.clock.now,
		Started:  start,
		Window:   Window{Period: 2 * time.Second},
		Version:  "v-test",
		Sensor:   func() sensor.Stats { return f.stats },
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

func TestTheHealthWindow(t *testing.T) {
	tests := []struct {
		name       string
		steps      func(f *fixture)
		wantCode   int
		wantStatus string
		wantReason string
	}{
		{"a fresh daemon without a reading is starting, not ok", func(f *fixture) {},
			200, StatusStarting, "no good reading yet"},
		{"failed reads within the start-up grace are still starting", func(f *fixture) {
			f.clock.advance(5 * time.Second)
			f.fail("dht22: timeout")
		}, 200, StatusStarting, "no good reading yet"},
		{"no reading three periods and a second after the start is unhealthy", func(f *fixture) {
			f.clock.advance(7*time.Second + time.Millisecond)
			f.fail("dht22: no response on GPIO4: timeout")
		}, 503, StatusUnhealthy, "no good reading for 7s (expected one every 2s); last error: dht22: no response on GPIO4: timeout"},
		{"a good reading makes it ok", func(f *fixture) {
			f.clock.advance(2 * time.Second)
			f.read()
		}, 200, StatusOK, ""},
		{"ok until the window has passed since the last reading", func(f *fixture) {
			f.read()
			f.clock.advance(7 * time.Second)
		}, 200, StatusOK, ""},
		{"a reading older than three periods and a second is stale: unhealthy", func(f *fixture) {
			f.read()
			f.clock.advance(20 * time.Second)
		}, 503, StatusUnhealthy, "no good reading for 20s (expected one every 2s)"},
		{"a stuck loop is unhealthy whatever the readings", func(f *fixture) {
			f.read()
			f.alive = errors.New("broadcaster /ws/api stuck for 16s")
		}, 503, StatusUnhealthy, "broadcaster /ws/api stuck for 16s"},
		{"a broker that is down degrades but stays 200", func(f *fixture) {
			f.read()
			f.mqtt = "mqtt disconnected: connection refused"
		}, 200, StatusDegraded, "mqtt disconnected: connection refused"},
		{"a stale sensor outranks the broker", func(f *fixture) {
			f.read()
			f.clock.advance(time.Minute)
			f.mqtt = "mqtt disconnected: connection refused"
		}, 503, StatusUnhealthy, "no good reading for 1m0s"},
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
			f.mqtt = "mqtt connecting"
		}, 200, StatusStarting, "no good reading yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			tt.steps(f)
			code, r := f.c.Check()
			if code != tt.wantCode || r.Status != tt.wantStatus || !strings.HasPrefix(r.Reason, tt.wantReason) || (tt.wantReason == "" && r.Reason != "") {
				t.Errorf("Check = %d %q %q, want %d %q %q", code, r.Status, r.Reason, tt.wantCode, tt.wantStatus, tt.wantReason)
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
		`"state":"","window_reads":0,"window_failed":0,"window_seconds":0},"clients":{},"name":"kitchen","warnings":[],"extra":{"calibration":{"temperature_offset":0,"humidity_offset":0},"history":{"enabled":false,"queued":0,"written":0,"dropped":0},"device":{"hostname":"","addresses":null,"cores":0}}}`} {
		if !strings.Contains(got, want) {
			t.Errorf("JSON %s\nlacks %s", got, want)
		}
	}
}

func TestServeHTTPAnswersTheVerdictAsUncachedJSON(t *testing.T) {
	f := newFixture()
	f.clock.advance(time.Minute)
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
