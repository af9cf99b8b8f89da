package sensorwatch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
	"sensord/sensor"
)

// switchable fails every read while failing is set, and otherwise returns
// a steady reading. Its clock is the test's.
type switchable struct {
	failing atomic.Bool
	now     func() time.Time
}

func (s *switchable) Read(ctx context.Context) (sensor.Reading, error) {
	if s.failing.Load() {
		return sensor.Reading{}, fmt.Errorf("dht22: no response on GPIO4: %w", sensor.ErrTimeout)
	}
	return sensor.Reading{Temperature: 214, Humidity: 482, Time: s.now()}, nil
}
func (s *switchable) String() string { return "switchable" }
func (s *switchable) Halt() error    { return nil }

func TestSensorFailureLogsOneWarningARepeatAMinuteAndOneRecovery(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	dev := &switchable{now: now}
	dev.failing.Store(true)
	var out testutil.Buffer
	p, err := sensor.NewPoller(dev, &sensor.PollOpts{Period: 10 * time.Millisecond, MinPeriod: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// The window of a 2 s period (7 s) on the test's clock, while the
	// poller reads every 10 ms.
	w := &Watch{Stats: p.Stats, Window: health.Window{Period: 2 * time.Second}, Started: now(), Now: now,
		Log: slog.New(slog.NewTextHandler(&out, nil)), Name: dev.String(), Wiring: Wiring{Sensor: "dht22", Pin: "GPIO4"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx, func(sensor.Derived) {})

	// waitReads lets the poller make n more reads.
	waitReads := func(n uint64) {
		t.Helper()
		want := p.Stats().Reads + n
		testutil.Until(t, 20*time.Second, func() bool { return p.Stats().Reads >= want },
			func() string { return fmt.Sprintf("the poller made no %d more reads", n) })
	}
	count := func(msg string) int { return strings.Count(out.String(), `msg="`+msg+`"`) }

	waitReads(3)
	w.Check()
	if count("sensor failing") != 0 || w.Current().State != "waiting" {
		t.Fatalf("inside the start-up grace: %q, state %+v", out.String(), w.Current())
	}
	advance(10 * time.Second) // past three periods and a second
	waitReads(3)
	for range 5 {
		w.Check()
	}
	if count("sensor failing") != 1 || !strings.Contains(out.String(), "level=WARN") ||
		!strings.Contains(out.String(), `problem="no answer from the sensor on GPIO4"`) || !strings.Contains(out.String(), "pull-up resistor") {
		t.Fatalf("want one WARN with the problem and the fix, got:\n%s", out.String())
	}
	if st := w.Current(); st.State != "failing" || st.Fix == "" {
		t.Fatalf("state %+v, want failing with a fix", st)
	}
	advance(30 * time.Second)
	w.Check()
	if count("sensor still failing") != 0 {
		t.Fatalf("a repeat within the minute:\n%s", out.String())
	}
	advance(31 * time.Second)
	waitReads(2)
	w.Check()
	w.Check()
	if count("sensor still failing") != 1 {
		t.Fatalf("want one repeat after a minute, got:\n%s", out.String())
	}

	dev.failing.Store(false)
	advance(time.Second)
	testutil.Until(t, 20*time.Second, func() bool { return !p.Stats().LastSuccess.IsZero() },
		func() string { return "no good read after the sensor recovered" })
	w.Check()
	w.Check()
	if count("sensor recovered") != 1 || !strings.Contains(out.String(), "down_for=1m12s") || !strings.Contains(out.String(), "failed_reads=") {
		t.Fatalf("want one INFO with the downtime and the failed reads, got:\n%s", out.String())
	}
	if st := w.Current(); st.State != "ok" {
		t.Fatalf("state after recovery %+v, want ok", st)
	}
}

func TestExplainNamesThePinOrTheBusAndAFix(t *testing.T) {
	for _, tc := range []struct {
		name, kind, lastErr string
		wr                  Wiring
		problem, fix        string
	}{
		{"a DHT22 that does not answer", "timeout", "", Wiring{Sensor: "dht22", Pin: "GPIO4"}, "no answer from the sensor on GPIO4", "pull-up resistor"},
		{"garbled answers", "checksum", "", Wiring{Sensor: "dht22", Pin: "GPIO17"}, "arrive garbled (checksum errors)", "loose wire"},
		{"an I2C chip on the first bus", "timeout", "", Wiring{Sensor: "bme280"}, "on the first I2C bus", "I2C is enabled"},
		{"an I2C chip on a named bus", "out_of_range", "", Wiring{Sensor: "sht3x", Bus: "/dev/i2c-3"}, "on /dev/i2c-3 reports impossible values", "-sensor names the chip"},
		{"no read yet", "", "", Wiring{Sensor: "sim", Pin: "GPIO4"}, "no good reading from the sensor on GPIO4 yet", "pull-up"},
		{"an error of no known kind", "other", "dht22: bus busy", Wiring{Sensor: "dht22", Pin: "GPIO4"}, "fails: dht22: bus busy", "wiring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problem, fix := Explain(tc.kind, sensor.CauseUnknown, tc.lastErr, tc.wr)
			if !strings.Contains(problem, tc.problem) || !strings.Contains(fix, tc.fix) {
				t.Errorf("Explain = %q, %q; want %q and %q", problem, fix, tc.problem, tc.fix)
			}
		})
	}
}

// TestAGoodReadingEndsABadVerdictAtOnce: the first reading after start,
// and the first after a failure, change the verdict with that reading;
// in between, GoodReading leaves the checks to Run.
func TestAGoodReadingEndsABadVerdictAtOnce(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var st sensor.Stats
	var mu sync.Mutex
	stats := func() sensor.Stats { mu.Lock(); defer mu.Unlock(); return st }
	read := func(ok bool) {
		mu.Lock()
		defer mu.Unlock()
		st.Reads++
		if ok {
			st.Successes++
			st.LastSuccess = clock
		}
	}
	w := &Watch{Stats: stats, Window: health.Window{Period: 2 * time.Second}, Started: clock, Now: func() time.Time { return clock },
		Log: slog.New(slog.NewTextHandler(&testutil.Buffer{}, nil)), Name: "x", Wiring: Wiring{Sensor: "dht22", Pin: "GPIO4"}}

	read(true)
	w.GoodReading()
	if c := w.Current().State; c != health.SensorOK {
		t.Fatalf("after the first reading: %s, want ok at once", c)
	}
	for range 10 {
		read(false)
	}
	clock = clock.Add(3 * time.Minute)
	w.Check()
	if c := w.Current().State; c != health.SensorFailing {
		t.Fatalf("after 3 minutes of failed reads: %s, want failing", c)
	}
	read(true)
	w.GoodReading()
	recovered := w.Current()
	if recovered.State != health.SensorOK {
		t.Errorf("after a reading that ended the failure: %s, want ok at once", recovered.State)
	}
	// While ok, a reading does not check: the window's figures move with
	// Run's checks only.
	for range 10 {
		read(false)
	}
	w.GoodReading()
	if s := w.Current(); s != recovered {
		t.Errorf("GoodReading checked an ok sensor again: %+v, was %+v", s, recovered)
	}
}
