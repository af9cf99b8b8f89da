package sensorwatch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestHalfTheReadsFailingIsOneSteadyVerdict reads a simulated DHT22 whose
// frames carry a flipped bit half the time, checks the watch once per
// two seconds of the test's clock for ten minutes of it, and wants one verdict
// all along: degraded, with the rate and the cause in words, and one WARN.
func TestHalfTheReadsFailingIsOneSteadyVerdict(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sim, err := dht22sim.New(dht22sim.Config{ErrorRate: 0.5, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := dht22.NewEdge(sim.EdgeLine("GPIO4"), &dht22.Opts{MinPeriod: dht22.SimMinPeriod})
	if err != nil {
		t.Fatal(err)
	}
	p, err := sensor.NewPoller(dev, &sensor.PollOpts{Period: dht22.SimMinPeriod, MinPeriod: dht22.SimMinPeriod,
		MaxBackoff: 4 * dht22.SimMinPeriod, Now: clk.now, Plausibility: sensor.Plausibility{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	w := &Watch{Stats: p.Stats, Progress: p.Progress, StuckAfter: time.Minute, Window: health.Window{Period: 2 * time.Second},
		Started: clk.now(), Now: clk.now, Log: slog.New(slog.NewTextHandler(&out, nil)), Name: "sim", Wiring: Wiring{Sensor: "sim", Pin: "GPIO4"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx, nil)

	states := map[health.SensorCondition]int{}
	flips := 0
	var prev health.SensorCondition
	for i := range 300 {
		want := p.Stats().Reads + 2
		testutil.Until(t, 20*time.Second, func() bool { return p.Stats().Reads >= want },
			func() string { return "the poller made no 2 more reads" })
		clk.advance(2 * time.Second)
		w.Check()
		st := w.Current()
		if i < 15 {
			continue // the window fills
		}
		states[st.State]++
		if prev != "" && st.State != prev {
			flips++
		}
		prev = st.State
		if st.State == health.SensorDegraded {
			pct := st.WindowFailed * 100 / st.WindowReads
			if pct < 35 || pct > 65 || !strings.Contains(st.Summary, fmt.Sprintf("(%d of %d)", st.WindowFailed, st.WindowReads)) {
				t.Fatalf("check %d: %d %% failed, summary %q", i, pct, st.Summary)
			}
		}
	}
	st := w.Current()
	t.Logf("verdicts after the first 30 s: %v; last: %s", states, st.Summary)
	if flips != 0 || states[health.SensorDegraded] != 285 {
		t.Fatalf("the verdict changed %d times: %v", flips, states)
	}
	if st.Cause != "noise" || !strings.HasPrefix(st.Summary, "degraded: ") || !strings.Contains(st.Summary, "in the last 10 minutes") ||
		!strings.Contains(st.Problem, "garbled") {
		t.Errorf("verdict %+v, want degraded over 10 minutes, caused by noise", st)
	}
	if n := strings.Count(out.String(), `msg="sensor degraded"`); n != 1 {
		t.Errorf("%d WARN lines for the degraded sensor, want 1:\n%s", n, out.String())
	}
	if strings.Contains(out.String(), "failing") || strings.Contains(out.String(), "recovered") {
		t.Errorf("the journal flapped:\n%s", out.String())
	}
}

// hanging blocks every read until ctx is done.
type hanging struct{ started chan struct{} }

func (h *hanging) Read(ctx context.Context) (sensor.Reading, error) {
	close(h.started)
	<-ctx.Done()
	return sensor.Reading{}, ctx.Err()
}
func (h *hanging) String() string { return "hanging" }
func (h *hanging) Halt() error    { return nil }

func TestAHungReadGetsAVerdictAndAWarning(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	dev := &hanging{started: make(chan struct{})}
	p, err := sensor.NewPoller(dev, &sensor.PollOpts{Period: 2 * time.Second, MinPeriod: 2 * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	w := &Watch{Stats: p.Stats, Progress: p.Progress, StuckAfter: 14 * time.Second, Window: health.Window{Period: 2 * time.Second},
		Started: clk.now(), Now: clk.now, Log: slog.New(slog.NewTextHandler(&out, nil)), Name: "hanging", Wiring: Wiring{Sensor: "dht22", Pin: "GPIO4"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx, nil)
	<-dev.started
	w.Check()
	if st := w.Current(); st.State == health.SensorStuck {
		t.Fatalf("stuck at once: %+v", st)
	}
	clk.advance(15 * time.Second)
	w.Check()
	st := w.Current()
	if st.State != health.SensorStuck || !strings.Contains(st.Problem, "has not returned for 15s") || !strings.Contains(st.Fix, "-power-pin") {
		t.Fatalf("verdict %+v, want stuck with words", st)
	}
	if w.Failing() || strings.Count(out.String(), `level=WARN msg="sensor read hung"`) != 1 {
		t.Fatalf("want one WARN for the hung read and no failing reads (failing %v), got:\n%s", w.Failing(), out.String())
	}
}

// causing fails every read with err.
type causing struct{ err error }

func (c causing) Read(context.Context) (sensor.Reading, error) { return sensor.Reading{}, c.err }
func (c causing) String() string                               { return "causing" }
func (c causing) Halt() error                                  { return nil }

func TestTheVerdictSaysTheCauseInWords(t *testing.T) {
	for _, tc := range []struct {
		cause        sensor.Cause
		problem, fix string
	}{
		{sensor.CauseNoAnswer, "does not answer at all", "has power"},
		{sensor.CauseBadSignal, "edges missing or too slow", "pull-up resistor"},
		{sensor.CauseWrongModel, "another model's format", "DHT11"},
		{sensor.CauseStuckLow, "stuck low", "short between data and GND"},
		{sensor.CauseStuckHigh, "stuck high", "short between data and 3.3 V"},
		{sensor.CauseNoise, "garbled", "loose wire"},
	} {
		t.Run(tc.cause.String(), func(t *testing.T) {
			clk := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			dev := causing{err: sensor.WithCause(fmt.Errorf("dht22: x: %w", sensor.ErrTimeout), tc.cause)}
			p, err := sensor.NewPoller(dev, &sensor.PollOpts{Period: 10 * time.Millisecond, MinPeriod: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			var out testutil.Buffer
			w := &Watch{Stats: p.Stats, Window: health.Window{Period: 2 * time.Second}, Started: clk.now(), Now: clk.now,
				Log: slog.New(slog.NewTextHandler(&out, nil)), Name: "x", Wiring: Wiring{Sensor: "dht22", Pin: "GPIO4"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go p.Run(ctx, nil)
			testutil.Until(t, 20*time.Second, func() bool { return p.Stats().Reads >= 3 }, func() string { return "no reads" })
			clk.advance(10 * time.Second)
			w.Check()
			st := w.Current()
			if st.State != health.SensorFailing || st.Cause != tc.cause.String() || !strings.Contains(st.Problem, tc.problem) ||
				!strings.Contains(st.Fix, tc.fix) || !strings.Contains(st.Summary, st.Problem) {
				t.Errorf("verdict %+v, want failing because %v", st, tc.cause)
			}
			if !strings.Contains(out.String(), "cause="+tc.cause.String()) {
				t.Errorf("the journal does not name the cause:\n%s", out.String())
			}
		})
	}
}
