package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sensord/sensor"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const period = 2 * time.Second

func mustRule(t *testing.T, s string) Rule {
	t.Helper()
	r, err := ParseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// feed gives e one reading of temperature temps[i] (tenths) every period
// from start and returns every event, as "name state value".
func feed(t *testing.T, e *Engine, start time.Time, temps ...sensor.Deci) []string {
	t.Helper()
	var got []string
	for i, v := range temps {
		evs, err := e.Observe(sensor.Derive(sensor.Reading{Temperature: v, Humidity: 500, Time: start.Add(time.Duration(i) * period)}))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			got = append(got, ev.Name+" "+string(ev.State)+" "+ev.Value.String())
		}
	}
	return got
}

func newEngine(t *testing.T, store Store, rules ...string) *Engine {
	t.Helper()
	var rs []Rule
	for _, s := range rules {
		rs = append(rs, mustRule(t, s))
	}
	e, err := New(Options{Rules: rs, Period: period, FailingAfter: 3*period + time.Second, Store: store, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEngineHoldAndHysteresis(t *testing.T) {
	tests := []struct {
		name  string
		rule  string
		temps []sensor.Deci
		want  string
	}{
		{"raises at the first reading past the threshold without a hold", "hot: temperature > 30 clear 29",
			[]sensor.Deci{290, 301, 302}, "hot raised 30.1"},
		{"the threshold itself is not past it", "hot: temperature > 30 clear 29",
			[]sensor.Deci{300, 300}, ""},
		{"raises once the value has held for the hold time", "hot: temperature > 30 for 4s clear 29",
			[]sensor.Deci{301, 302, 303, 304}, "hot raised 30.3"},
		{"a dip restarts the hold", "hot: temperature > 30 for 4s clear 29",
			[]sensor.Deci{301, 302, 299, 301, 302, 303}, "hot raised 30.3"},
		{"clears only at the clear value", "hot: temperature > 30 clear 29",
			[]sensor.Deci{301, 295, 291, 290}, "hot raised 30.1|hot cleared 29.0"},
		{"clearing holds as long as raising", "hot: temperature > 30 for 2s clear 29",
			[]sensor.Deci{301, 301, 280, 291, 280, 280}, "hot raised 30.1|hot cleared 28.0"},
		{"a falling rule", "freeze: temperature < 3 clear 4",
			[]sensor.Deci{50, 29, 35, 40}, "freeze raised 2.9|freeze cleared 4.0"},
		{"a value wandering around the threshold raises once and never flaps", "hot: temperature > 30",
			[]sensor.Deci{299, 301, 298, 302, 297, 301, 299, 303, 296, 300, 301, 297}, "hot raised 30.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, nil, tt.rule)
			got := strings.Join(feed(t, e, t0, tt.temps...), "|")
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEngineDerivedMetricsUseTheSensorsValues(t *testing.T) {
	e := newEngine(t, nil, "dew: dew_point > 10", "ah: absolute_humidity > 9")
	rd := sensor.Reading{Temperature: 250, Humidity: 600, Time: t0}
	evs, err := e.Observe(sensor.Derive(rd))
	if err != nil {
		t.Fatal(err)
	}
	dp, _ := sensor.DewPoint(rd.Temperature, rd.Humidity)
	ah := sensor.AbsoluteHumidity(rd.Temperature, rd.Humidity)
	if len(evs) != 2 || evs[0].Value != dp || evs[1].Value != ah {
		t.Fatalf("got %+v, want dew point %v and absolute humidity %v", evs, dp, ah)
	}
}

func TestEngineGapForgetsAHold(t *testing.T) {
	e := newEngine(t, nil, "hot: temperature > 30 for 10s clear 29")
	got := feed(t, e, t0, 301)
	// The next reading comes a minute later: the minute is no evidence.
	got = append(got, feed(t, e, t0.Add(time.Minute), 301, 301, 301, 301, 301, 301)...)
	if want := "hot raised 30.1"; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := len(e.Active()); n != 1 || !e.Active()[0].Time.Equal(t0.Add(time.Minute+10*time.Second)) {
		t.Fatalf("active %+v, want raised 10 s after the gap", e.Active())
	}
}

func TestBuiltinRules(t *testing.T) {
	now := t0
	e, err := New(Options{Period: period, FailingAfter: 7 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	check := func(h Health) string {
		t.Helper()
		evs, err := e.Check(h)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, ev := range evs {
			s = append(s, ev.Name+" "+string(ev.State)+" "+ev.Value.String())
		}
		return strings.Join(s, "|")
	}
	start := t0
	steps := []struct {
		name string
		at   time.Duration
		h    Health
		want string
	}{
		{"nothing while the first reading is due", 5 * time.Second, Health{Started: start}, ""},
		{"the watch calling the sensor failing raises sensor_failing", 12 * time.Second, Health{Started: start, Failing: true}, "sensor_failing raised 12.0"},
		{"nothing more while the poller retries", 38 * time.Second, Health{Started: start, Failing: true}, ""},
		{"no reading past the retries raises no_reading", 39 * time.Second, Health{Started: start, Failing: true}, "no_reading raised 39.0"},
		{"still failing raises nothing more", 45 * time.Second, Health{Started: start, Failing: true}, ""},
		{"a good reading clears no_reading", 46 * time.Second, Health{Started: start, LastGood: start.Add(46 * time.Second)}, "no_reading cleared 0.0"},
		{"readings every period raise nothing", 54 * time.Second, Health{Started: start, LastGood: start.Add(53 * time.Second)}, ""},
		{"sensor_failing clears once the sensor has read well as long as no_reading waits", 84 * time.Second,
			Health{Started: start, LastGood: start.Add(84 * time.Second)}, "sensor_failing cleared 0.0"},
	}
	for _, s := range steps {
		now = start.Add(s.at)
		if got := check(s.h); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	store := FileStore{Path: filepath.Join(t.TempDir(), "alerts.json")}
	e := newEngine(t, store, "hot: temperature > 30 clear 29", "cold: temperature < 10")
	if got := feed(t, e, t0, 310); strings.Join(got, "|") != "hot raised 31.0" {
		t.Fatalf("got %q", got)
	}

	t.Run("a restarted engine has the alert active, and a reading still past it raises nothing", func(t *testing.T) {
		e2 := newEngine(t, store, "hot: temperature > 30 clear 29", "cold: temperature < 10")
		act := e2.Active()
		if len(act) != 1 || act[0].Name != "hot" || !act[0].Time.Equal(t0) || act[0].Value != 310 || act[0].Threshold != 300 {
			t.Fatalf("active after restart: %+v", act)
		}
		if got := feed(t, e2, t0.Add(time.Minute), 305); len(got) != 0 {
			t.Fatalf("got %q, want nothing", got)
		}
		if got := feed(t, e2, t0.Add(2*time.Minute), 280); strings.Join(got, "|") != "hot cleared 28.0" {
			t.Fatalf("got %q, want the clear", got)
		}
	})
	t.Run("after the clear a third start has nothing active", func(t *testing.T) {
		if act := newEngine(t, store, "hot: temperature > 30 clear 29").Active(); len(act) != 0 {
			t.Fatalf("active: %+v", act)
		}
	})
	t.Run("a rule redefined on another metric forgets the old state", func(t *testing.T) {
		feed(t, newEngine(t, store, "hot: temperature > 30 clear 29"), t0.Add(time.Hour), 310)
		if act := newEngine(t, store, "hot: humidity > 30").Active(); len(act) != 0 {
			t.Fatalf("active: %+v", act)
		}
	})
}

func TestStateFileProblems(t *testing.T) {
	dir := t.TempDir()
	t.Run("a file that does not parse is an error beside an engine with none active", func(t *testing.T) {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte("{not json"), 0o644)
		rs := []Rule{mustRule(t, "hot: temperature > 30")}
		e, err := New(Options{Rules: rs, Period: period, Store: FileStore{Path: p}})
		if !errors.Is(err, ErrStore) || e == nil || len(e.Active()) != 0 {
			t.Fatalf("got %v, %v", e, err)
		}
	})
	t.Run("a save that fails is reported and counted, the alert still raised", func(t *testing.T) {
		p := filepath.Join(dir, "missing-dir", "alerts.json")
		e := newEngine(t, FileStore{Path: p}, "hot: temperature > 30")
		evs, err := e.Observe(sensor.Derive(sensor.Reading{Temperature: 310, Time: t0}))
		if !errors.Is(err, ErrStore) || len(evs) != 1 || e.Stats().SaveErrors != 1 {
			t.Fatalf("got %v, %v, %+v", evs, err, e.Stats())
		}
	})
}

func TestEventJSON(t *testing.T) {
	ev := Event{Name: "hot", State: Raised, Metric: Temperature, Value: 304, Threshold: 300, Time: time.UnixMilli(1763856000123)}
	got, _ := json.Marshal(ev)
	want := `{"type":"alert","name":"hot","state":"raised","metric":"temperature","value":30.4,"threshold":30,"timestamp":1763856000123}`
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// A sensor that fails a few reads in a row is retried with the poller's
// back-off; no_reading must wait that out, or it would be raised and
// cleared again at every such run (a flapping alert), and it must say so
// at the moment Home Assistant's expire_after gives the entities up too.
func TestNoReadingWaitsOutThePollersRetries(t *testing.T) {
	now := t0
	e, err := New(Options{Period: period, FailingAfter: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// At a 2 s period the reads after a good one come at 2 s, then, each
	// failing, 2, 4, 8, 10 and 10 s apart: 36 s for five failed reads.
	silent := sensor.PeriodicOpts(period).Silence(NoReadingFailures)
	for _, after := range []time.Duration{11 * time.Second, 16 * time.Second, silent} {
		now = t0.Add(after)
		if evs, _ := e.Check(Health{Started: t0, LastGood: t0}); len(evs) != 0 {
			t.Fatalf("%s after the last good reading, while the poller still retries: %+v", after, evs)
		}
	}
	now = t0.Add(silent + period + time.Second)
	evs, _ := e.Check(Health{Started: t0, LastGood: t0})
	if len(evs) != 1 || evs[0].Name != NoReading || evs[0].State != Raised {
		t.Fatalf("after the retries: %+v, want no_reading raised", evs)
	}
}

// Every metric a rule may name holds before it raises and clears only at
// its clear value, held as long: the derived two judged on the values the
// sensor package derives from each reading.
func TestEveryMetricHoldsAndClearsAtItsClearValue(t *testing.T) {
	dp := func(temp, hum sensor.Deci) sensor.Deci { v, _ := sensor.DewPoint(temp, hum); return v }
	ah := sensor.AbsoluteHumidity
	type rd struct{ temp, hum sensor.Deci }
	for _, tt := range []struct {
		rule       string
		readings   []rd
		raiseAt    int // index of the reading that raises
		clearAt    int // index of the reading that clears
		raiseValue sensor.Deci
		clearValue sensor.Deci
	}{
		// Falls below 3 °C for 4 s, back at 4 °C for 4 s.
		{"freeze: temperature < 3 for 4s clear 4", []rd{{29, 500}, {28, 500}, {20, 500}, {35, 500}, {40, 500}, {41, 500}, {42, 500}},
			2, 6, 20, 42},
		{"damp: humidity > 70 for 4s clear 65", []rd{{200, 710}, {200, 720}, {200, 730}, {200, 660}, {200, 650}, {200, 640}, {200, 640}},
			2, 6, 730, 640},
		{"condensation: dew_point > 18 for 4s clear 15", []rd{{250, 700}, {250, 700}, {250, 700}, {250, 600}, {250, 500}, {250, 500}, {250, 500}},
			2, 6, dp(250, 700), dp(250, 500)},
		{"muggy: absolute_humidity > 15 for 4s clear 12", []rd{{250, 700}, {250, 700}, {250, 700}, {250, 600}, {250, 500}, {250, 500}, {250, 500}},
			2, 6, ah(250, 700), ah(250, 500)},
	} {
		t.Run(tt.rule, func(t *testing.T) {
			e := newEngine(t, nil, tt.rule)
			name := mustRule(t, tt.rule).Name
			var got []string
			for i, r := range tt.readings {
				evs, err := e.Observe(sensor.Derive(sensor.Reading{Temperature: r.temp, Humidity: r.hum, Time: t0.Add(time.Duration(i) * period)}))
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs {
					got = append(got, fmt.Sprintf("%d %s %s %s", i, ev.Name, ev.State, ev.Value))
				}
			}
			want := fmt.Sprintf("%d %s raised %s|%d %s cleared %s", tt.raiseAt, name, tt.raiseValue, tt.clearAt, name, tt.clearValue)
			if strings.Join(got, "|") != want {
				t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
			}
		})
	}
}

// A sensor that fails now and then (the watch calls it failing after a
// couple of failed reads, and well again at the next good one) is one
// sensor_failing alert, raised at the first run of failures and cleared
// once it has read well for as long as no_reading waits, not a raise and
// a clear at every run.
func TestSensorFailingDoesNotFlapOnASensorThatFailsNowAndThen(t *testing.T) {
	now := t0
	e, err := New(Options{Period: period, FailingAfter: 7 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	lastGood := t0
	// Every 10 s a run of failed reads long enough for the watch to call
	// the sensor failing for 4 s, then good readings again, for 2 minutes.
	for s := 0; s <= 120; s++ {
		now = t0.Add(time.Duration(s) * time.Second)
		failing := s%10 >= 6
		if !failing && s%2 == 0 {
			lastGood = now
		}
		evs, err := e.Check(Health{Started: t0, LastGood: lastGood, Failing: failing})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%d s %s %s", s, ev.Name, ev.State))
		}
	}
	if want := "6 s sensor_failing raised"; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want one raise that stays while the sensor keeps failing now and then", got)
	}
	// Reading well from then on clears it once it has held.
	for s := 121; s <= 200; s++ {
		now = t0.Add(time.Duration(s) * time.Second)
		if s%2 == 0 {
			lastGood = now
		}
		evs, _ := e.Check(Health{Started: t0, LastGood: lastGood})
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%d s %s %s", s, ev.Name, ev.State))
		}
	}
	hold := NoReadingAfter(period)
	want := fmt.Sprintf("6 s sensor_failing raised|%d s sensor_failing cleared", 120+int(hold.Seconds()))
	if strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
	}
}
