package dht22sim_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
)

func dp(d sensor.Deci) *sensor.Deci { return &d }

// edgeDev is a driver reading a simulated sensor through the fake
// character device, as fast as the simulation allows.
func edgeDev(t testing.TB, c dht22sim.Config) (*dht22.Dev, *dht22sim.Sim) {
	return simDev(t, c, func(sim *dht22sim.Sim, o *dht22.Opts) (*dht22.Dev, error) {
		return dht22.NewEdge(sim.EdgeLine("GPIO4"), o)
	})
}

// pinDev is the same through the fake pin (the busy-loop capture).
func pinDev(t testing.TB, c dht22sim.Config) (*dht22.Dev, *dht22sim.Sim) {
	return simDev(t, c, func(sim *dht22sim.Sim, o *dht22.Opts) (*dht22.Dev, error) {
		return dht22.New(sim.Pin("GPIO4"), o)
	})
}

// simDev makes a simulation of c (seed 1 unless set) and opens a driver on
// it with open.
func simDev(t testing.TB, c dht22sim.Config, open func(*dht22sim.Sim, *dht22.Opts) (*dht22.Dev, error)) (*dht22.Dev, *dht22sim.Sim) {
	t.Helper()
	if c.Seed == 0 {
		c.Seed = 1
	}
	sim, err := dht22sim.New(c)
	if err != nil {
		t.Fatal(err)
	}
	d, err := open(sim, &dht22.Opts{MinPeriod: dht22.SimMinPeriod})
	if err != nil {
		t.Fatal(err)
	}
	return d, sim
}

// readN reads n times, each read the simulation's minimum period after the
// previous one ended (as the Poller does), and returns the readings and
// errors.
func readN(t testing.TB, d *dht22.Dev, n int) ([]sensor.Reading, []error) {
	t.Helper()
	var rs []sensor.Reading
	var errs []error
	for i := range n {
		if i > 0 {
			time.Sleep(dht22.SimMinPeriod)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := d.Read(ctx)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs = append(rs, r)
	}
	return rs, errs
}

func TestEdgeLineEndToEnd(t *testing.T) {
	tests := []struct {
		name string
		c    dht22sim.Config
	}{
		{"a room reading arrives intact", dht22sim.Config{}},
		{"-10.1 °C arrives as sign and magnitude", dht22sim.Config{Temperature: dp(-101), Humidity: dp(652)}},
		{"-0.1 °C keeps its sign", dht22sim.Config{Temperature: dp(-1), Humidity: dp(999)}},
		{"-40.0 °C and 0 %RH, the bottom of the range", dht22sim.Config{Temperature: dp(-400), Humidity: dp(0)}},
		{"80.0 °C and 100 %RH, the top of the range", dht22sim.Config{Temperature: dp(800), Humidity: dp(1000)}},
		{"5 µs jitter on every edge decodes", dht22sim.Config{Jitter: 5 * time.Microsecond}},
		{"10 µs jitter on every edge decodes", dht22sim.Config{Jitter: 10 * time.Microsecond}},
		{"a glitch in every frame is filtered", dht22sim.Config{GlitchRate: 1}},
		{"a sensor clock 25 % slow decodes", dht22sim.Config{ClockScale: 1.25, Jitter: 3 * time.Microsecond}},
		{"a sensor clock 20 % fast decodes", dht22sim.Config{ClockScale: 0.8, Jitter: 3 * time.Microsecond}},
		{"a late-armed line that misses the first edge decodes", dht22sim.Config{EdgeDelay: 40 * time.Microsecond}},
		{"a late-armed line that misses the whole preamble decodes", dht22sim.Config{EdgeDelay: 150 * time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, sim := edgeDev(t, tt.c)
			rs, errs := readN(t, d, 20)
			if len(errs) > 0 {
				t.Fatalf("%d of 20 reads failed, first: %v", len(errs), errs[0])
			}
			wt, wh, _ := sim.Last()
			if last := rs[len(rs)-1]; last.Temperature != wt || last.Humidity != wh {
				t.Errorf("last reading %s °C %s %%RH, the sim sent %s °C %s %%RH", last.Temperature, last.Humidity, wt, wh)
			}
			if tt.c.Temperature != nil && rs[0].Temperature != *tt.c.Temperature {
				t.Errorf("temperature %s, want %s", rs[0].Temperature, *tt.c.Temperature)
			}
			if tt.c.Humidity != nil && rs[0].Humidity != *tt.c.Humidity {
				t.Errorf("humidity %s, want %s", rs[0].Humidity, *tt.c.Humidity)
			}
		})
	}
}

func TestEdgeLineFaults(t *testing.T) {
	tests := []struct {
		name string
		c    dht22sim.Config
		want error
	}{
		{"a flipped bit in every frame fails the checksum", dht22sim.Config{ErrorRate: 1}, sensor.ErrChecksum},
		{"no response times out", dht22sim.Config{NoResponse: true}, sensor.ErrTimeout},
		{"a line armed after the preamble gives a short frame", dht22sim.Config{EdgeDelay: 200 * time.Microsecond}, sensor.ErrShortFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, _ := edgeDev(t, tt.c)
			rs, errs := readN(t, d, 5)
			if len(rs) != 0 {
				t.Fatalf("%d reads succeeded: %v", len(rs), rs)
			}
			for _, err := range errs {
				if !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
			}
		})
	}
}

func TestEdgeLineErrorRateNeverPublishesAWrongValue(t *testing.T) {
	d, sim := edgeDev(t, dht22sim.Config{ErrorRate: 0.5, Temperature: dp(214), Humidity: dp(482)})
	rs, errs := readN(t, d, 40)
	if len(rs) == 0 || len(errs) == 0 {
		t.Fatalf("%d successes and %d errors at a 50 %% error rate", len(rs), len(errs))
	}
	for _, r := range rs {
		if r.Temperature != 214 || r.Humidity != 482 {
			t.Errorf("a corrupted frame got through: %v", r)
		}
	}
	for _, err := range errs {
		if !errors.Is(err, sensor.ErrChecksum) {
			t.Errorf("err = %v, want a checksum error", err)
		}
	}
	if got := sim.Frames(); got != 40 {
		t.Errorf("sim answered %d frames, want 40", got)
	}
}

func TestEdgeLineHangBlocksUntilContextDone(t *testing.T) {
	for _, c := range []dht22sim.Config{{HangAfterReads: 2}, {HangAfter: 30 * time.Millisecond}} {
		d, sim := edgeDev(t, c)
		time.Sleep(40 * time.Millisecond) // let HangAfter pass
		if c.HangAfterReads > 0 {
			if _, errs := readN(t, d, 2); len(errs) > 0 {
				t.Fatalf("reads before the hang failed: %v", errs)
			}
		}
		if !sim.Hung() {
			t.Fatalf("%+v: sim not hung", c)
		}
		time.Sleep(dht22.SimMinPeriod)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := d.Read(ctx)
		cancel()
		if took := time.Since(start); took < 90*time.Millisecond || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%+v: Read returned %v after %v, want it to block until the context's deadline", c, err, took)
		}
	}
}

func TestRandomWalkMoves(t *testing.T) {
	d, _ := edgeDev(t, dht22sim.Config{Seed: 42})
	rs, errs := readN(t, d, 30)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	seen := map[sensor.Deci]bool{}
	for i, r := range rs {
		seen[r.Temperature] = true
		if r.Temperature < 150 || r.Temperature > 280 || r.Humidity < 300 || r.Humidity > 600 {
			t.Errorf("reading %d left room conditions: %v", i, r)
		}
		if i > 0 {
			if dt := r.Temperature - rs[i-1].Temperature; dt > 1 || dt < -1 {
				t.Errorf("reading %d jumped by %s °C", i, dt)
			}
		}
	}
	if len(seen) < 3 {
		t.Errorf("only %d distinct temperatures in 30 reads: the walk should visibly move", len(seen))
	}
}

func TestTooSoon(t *testing.T) {
	sim, _ := dht22sim.New(dht22sim.Config{Seed: 1})
	d, err := dht22.NewEdge(sim.EdgeLine("GPIO4"), &dht22.Opts{MinPeriod: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(context.Background()); !errors.Is(err, sensor.ErrTooSoon) {
		t.Errorf("second read at once: %v, want too soon", err)
	}
}

func TestRealLinesMayNotGoBelowTwoSeconds(t *testing.T) {
	// A plain line (not simulated) with a fast MinPeriod is refused.
	sim, _ := dht22sim.New(dht22sim.Config{})
	plain := struct{ dht22.EdgeLine }{sim.EdgeLine("x")}
	if _, err := dht22.NewEdge(plain, &dht22.Opts{MinPeriod: time.Second}); err == nil {
		t.Error("a 1 s minimum period was accepted for a real line")
	}
	if _, err := dht22.NewEdge(sim.EdgeLine("x"), &dht22.Opts{MinPeriod: time.Millisecond}); err == nil {
		t.Error("a 1 ms minimum period was accepted even for the sim")
	}
	for _, p := range []time.Duration{time.Microsecond, 21 * time.Millisecond} {
		if _, err := dht22.NewEdge(sim.EdgeLine("x"), &dht22.Opts{StartPulse: p}); err == nil {
			t.Errorf("start pulse %v accepted", p)
		}
	}
}

func TestStartPulseTooShortGetsNoAnswer(t *testing.T) {
	sim, _ := dht22sim.New(dht22sim.Config{Seed: 1})
	l := sim.EdgeLine("GPIO4")
	l.DriveLow()
	l.Release() // at once: far shorter than 1 ms
	n, err := l.Edges(context.Background(), make([]dht22.Edge, 128), 2*time.Millisecond)
	if n != 0 || err != nil || sim.Frames() != 0 {
		t.Errorf("got %d edges, %v, %d frames; want no answer", n, err, sim.Frames())
	}
}

func TestSense(t *testing.T) {
	d, _ := edgeDev(t, dht22sim.Config{Temperature: dp(-101), Humidity: dp(652)})
	var e physic.Env
	if err := d.Sense(&e); err != nil {
		t.Fatal(err)
	}
	if want := physic.ZeroCelsius - 10100*physic.MilliCelsius; e.Temperature != want {
		t.Errorf("temperature %v, want %v", e.Temperature, want)
	}
	if want := 652 * physic.MilliRH; e.Humidity != want {
		t.Errorf("humidity %v, want %v", e.Humidity, want)
	}
	var p physic.Env
	d.Precision(&p)
	if p.Temperature != 100*physic.MilliKelvin || p.Humidity != physic.MilliRH {
		t.Errorf("precision %+v", p)
	}
}

func TestSenseContinuous(t *testing.T) {
	d, _ := edgeDev(t, dht22sim.Config{Temperature: dp(214), Humidity: dp(482)})
	if _, err := d.SenseContinuous(time.Millisecond); err == nil {
		t.Error("an interval below the minimum period was accepted")
	}
	ch, err := d.SenseContinuous(dht22.SimMinPeriod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SenseContinuous(dht22.SimMinPeriod); err == nil {
		t.Error("a second SenseContinuous was accepted")
	}
	for range 3 {
		e := <-ch
		if e.Temperature != physic.ZeroCelsius+21400*physic.MilliCelsius {
			t.Errorf("temperature %v", e.Temperature)
		}
	}
	if err := d.Halt(); err != nil {
		t.Fatal(err)
	}
	for range ch { // drains and ends: Halt closed it
	}
}

// quietShare measures how often this machine lets a thread run for a
// DHT22 frame's 6 ms without losing the CPU for more than 15 µs: the share
// of 20 such windows that were clean. A Pi or a laptop is near 1; a busy
// virtual machine can be near 0 (its host steals the vCPU every few hundred
// microseconds), and there the busy loop rightly drops most frames.
func quietShare() float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	clean := 0
	for range 20 {
		start := time.Now()
		last, ok := time.Duration(0), true
		for {
			t := time.Since(start)
			if t-last > 15*time.Microsecond {
				ok = false
			}
			last = t
			if t > 6*time.Millisecond {
				break
			}
		}
		if ok {
			clean++
		}
		time.Sleep(time.Millisecond)
	}
	return float64(clean) / 20
}

// TestPinEndToEnd drives the busy-loop capture through the fake pin in real
// time. What must hold on any machine: every success carries exactly the
// simulated values, and every failure is a kind the Poller counts and
// retries. That reads succeed at all is asserted where the machine lets a
// thread keep its CPU for a frame (see quietShare); elsewhere it is logged.
func TestPinEndToEnd(t *testing.T) {
	quiet := quietShare()
	for _, c := range []dht22sim.Config{
		{Temperature: dp(-101), Humidity: dp(652)},
		{Temperature: dp(-1), Humidity: dp(1000), Jitter: 5 * time.Microsecond},
		{Temperature: dp(800), Humidity: dp(0), GlitchRate: 1},
		{Temperature: dp(-400), Humidity: dp(1), ClockScale: 1.2},
	} {
		d, _ := pinDev(t, c)
		rs, errs := readN(t, d, 100)
		for _, r := range rs {
			if r.Temperature != *c.Temperature || r.Humidity != *c.Humidity {
				t.Errorf("%+v: read %v", c, r)
			}
		}
		for _, err := range errs {
			switch k := sensor.ErrorKind(err); k {
			case "timeout", "short_frame":
			case "checksum":
				// A stall while the loop samples a bit stretches its
				// high time past the cut (a 0 read as 1, seen once here
				// as 80.0 read as -80.0); the checksum refuses the frame.
				// Only a success with other values would be wrong.
			default:
				t.Errorf("%+v: unexpected error kind %q: %v", c, k, err)
			}
		}
		t.Logf("%+v: %d of 100 reads succeeded (machine quiet in %.0f%% of 6 ms windows)", c, len(rs), 100*quiet)
		if len(rs) == 0 && quiet >= 0.25 {
			t.Errorf("%+v: no read of 100 succeeded on a quiet machine; first error: %v", c, errs[0])
		}
	}
}

func TestPinErrorRateNeverPublishesAWrongValue(t *testing.T) {
	d, sim := pinDev(t, dht22sim.Config{ErrorRate: 1, Temperature: dp(214), Humidity: dp(482)})
	rs, errs := readN(t, d, 30)
	if len(rs) != 0 {
		t.Errorf("a corrupted frame got through: %v", rs)
	}
	checksum := 0
	for _, err := range errs {
		switch sensor.ErrorKind(err) {
		case "checksum":
			checksum++
		case "timeout", "short_frame": // a frame lost to the machine's load
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	// On a loaded machine every frame may be lost to timing before its
	// checksum is looked at, so only log how many reached it.
	t.Logf("%d of 30 corrupted frames reached the checksum", checksum)
	if sim.Frames() != 30 {
		t.Errorf("%d frames played, want 30", sim.Frames())
	}
}

func TestPinNoResponseTimesOut(t *testing.T) {
	d, _ := pinDev(t, dht22sim.Config{NoResponse: true})
	_, errs := readN(t, d, 3)
	for _, err := range errs {
		if !errors.Is(err, sensor.ErrTimeout) {
			t.Errorf("err = %v, want timeout", err)
		}
	}
	if len(errs) != 3 {
		t.Errorf("%d errors, want 3", len(errs))
	}
}

func TestPinLevels(t *testing.T) {
	sim, _ := dht22sim.New(dht22sim.Config{Seed: 1})
	p := sim.Pin("GPIO4")
	var _ gpio.PinIO = p
	if p.Read() != gpio.High {
		t.Error("idle line is not high (pull-up)")
	}
	p.Out(gpio.Low)
	if p.Read() != gpio.Low {
		t.Error("driven line does not read low")
	}
	time.Sleep(1100 * time.Microsecond)
	p.In(gpio.PullUp, gpio.NoEdge)
	// The answer starts ~30 µs after the release and lasts ~5 ms; after
	// 20 ms the sensor has let go again.
	time.Sleep(20 * time.Millisecond)
	if p.Read() != gpio.High || sim.Frames() != 1 {
		t.Errorf("after the answer: level %v, frames %d", p.Read(), sim.Frames())
	}
	if err := p.In(gpio.PullUp, gpio.BothEdges); err == nil {
		t.Error("edge detection on the fake pin was accepted")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []dht22sim.Config{
		{Jitter: -1}, {Jitter: time.Millisecond}, {ErrorRate: 2}, {GlitchRate: -1},
		{HangAfter: -1}, {ClockScale: 3},
	} {
		if _, err := dht22sim.New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func ExampleSim_Pin() {
	// The busy-loop capture polls the fake pin; the sim answers the start
	// pulse with the waveform in real time. A machine that takes the CPU
	// away mid-frame costs that frame (the error says why), so read until
	// one decodes. (No Output check: a busy virtual machine may lose them all.)
	t, h := sensor.Deci(214), sensor.Deci(482)
	sim, _ := dht22sim.New(dht22sim.Config{Temperature: &t, Humidity: &h})
	dev, err := dht22.New(sim.Pin("GPIO4"), &dht22.Opts{MinPeriod: dht22.SimMinPeriod})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 100 {
		if r, err := dev.Read(context.Background()); err == nil {
			fmt.Println(dev, r.Temperature, r.Humidity) // DHT22{GPIO4(sim), busy-loop} 21.4 48.2
			return
		}
		time.Sleep(dht22.SimMinPeriod)
	}
}

func ExampleWaveform() {
	e := dht22sim.Waveform(dht22.Encode(-1, 1000))
	fmt.Println(len(e), "edges, first falls at", e[0].T, "last rises at", e[len(e)-1].T)
	// Output: 84 edges, first falls at 30µs last rises at 3.808ms
}
