package powercycle

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/internal/testutil"
	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
)

// rig is a simulated DHT22 behind the power cycler, whose waits are
// counted, not slept, except for the second the sim needs to see the power
// off; its clock is the test's.
type rig struct {
	p     *Sensor
	sim   *dht22sim.Sim
	log   *testutil.Buffer
	mu    sync.Mutex
	clock time.Time
	waits []time.Duration
}

func newRig(t *testing.T, c dht22sim.Config) *rig {
	t.Helper()
	c.Seed = 1
	sim, err := dht22sim.New(c)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := dht22.NewEdge(sim.EdgeLine("GPIO4"), &dht22.Opts{MinPeriod: dht22.SimMinPeriod})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{sim: sim, log: &testutil.Buffer{}, clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r.p, err = New(dev, sim.PowerLine("GPIO17"), slog.New(slog.NewTextHandler(r.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.p.now = r.now
	r.p.wait = func(ctx context.Context, d time.Duration) error {
		r.mu.Lock()
		r.waits = append(r.waits, d)
		r.mu.Unlock()
		if d == OffFor {
			// The sim counts its own off time in real time.
			return sleep(ctx, 1100*time.Millisecond)
		}
		return nil
	}
	return r
}

func (r *rig) now() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.clock }
func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.clock = r.clock.Add(d)
	r.mu.Unlock()
}

// read reads once, a simulated minimum period after the previous read.
func (r *rig) read(t *testing.T) error {
	t.Helper()
	time.Sleep(dht22.SimMinPeriod) // the driver's minimum period, on its real clock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.p.Read(ctx)
	return err
}

func TestAStoppedSensorIsPowerCycledAndAnswersAgain(t *testing.T) {
	r := newRig(t, dht22sim.Config{StopAfterReads: 3})
	for i := range 3 {
		if err := r.read(t); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	for i := range FailRun {
		err := r.read(t)
		if !errors.Is(err, sensor.ErrTimeout) {
			t.Fatalf("failed read %d: %v, want a timeout", i, err)
		}
		if st := r.p.Stats(); (i < FailRun-1) != (st.Cycles == 0) {
			t.Fatalf("after %d failed reads: %d cycles, want one after %d", i+1, st.Cycles, FailRun)
		}
	}
	if err := r.read(t); err != nil {
		t.Fatalf("the read after the cycle: %v", err)
	}
	st := r.p.Stats()
	if st.Cycles != 1 || st.Helped != 1 || st.Failed != 0 {
		t.Errorf("stats %+v, want one cycle that helped", st)
	}
	if len(r.waits) != 2 || r.waits[0] != OffFor || r.waits[1] != WarmUp {
		t.Errorf("waits %v, want off %v then warm-up %v", r.waits, OffFor, WarmUp)
	}
	out := r.log.String()
	if !strings.Contains(out, `level=WARN msg="sensor power cycle: switching the sensor off and on again"`) || !strings.Contains(out, "power=GPIO17(sim)") ||
		!strings.Contains(out, `msg="sensor answers again after its power cycle"`) {
		t.Errorf("log:\n%s", out)
	}
}

func TestACycleThatDoesNotHelpBacksOff(t *testing.T) {
	r := newRig(t, dht22sim.Config{NoResponse: true})
	fail := func(n int) {
		t.Helper()
		for range n {
			if err := r.read(t); !errors.Is(err, sensor.ErrTimeout) {
				t.Fatalf("read: %v, want a timeout", err)
			}
		}
	}
	fail(FailRun)
	if c := r.p.Stats().Cycles; c != 1 {
		t.Fatalf("%d cycles after %d failures, want 1", c, FailRun)
	}
	fail(2 * FailRun)
	if c := r.p.Stats().Cycles; c != 1 {
		t.Fatalf("%d cycles within the back-off, want still 1", c)
	}
	r.advance(RetryMin)
	fail(FailRun)
	if st := r.p.Stats(); st.Cycles != 2 || st.Helped != 0 {
		t.Fatalf("stats %+v, want a second cycle after %v, none helped", st, RetryMin)
	}
	r.advance(RetryMin)
	fail(FailRun)
	if c := r.p.Stats().Cycles; c != 2 {
		t.Fatalf("%d cycles %v after the second, want the wait doubled", c, RetryMin)
	}
	r.advance(RetryMin)
	fail(FailRun)
	if c := r.p.Stats().Cycles; c != 3 {
		t.Fatalf("%d cycles %v after the second, want a third", c, 2*RetryMin)
	}
}

// busy fails every read with a line another program holds.
type busy struct{}

func (busy) Read(context.Context) (sensor.Reading, error) {
	return sensor.Reading{}, sensor.WithCause(errors.New("sensors: line busy"), sensor.CauseLineBusy)
}
func (busy) String() string { return "busy" }
func (busy) Halt() error    { return nil }

func TestALineAnotherProgramHoldsIsNotPowerCycled(t *testing.T) {
	sim, err := dht22sim.New(dht22sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(busy{}, sim.PowerLine("GPIO17"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 * FailRun {
		p.Read(context.Background())
	}
	if c := p.Stats().Cycles; c != 0 {
		t.Fatalf("%d cycles for a busy line, want none", c)
	}
}
