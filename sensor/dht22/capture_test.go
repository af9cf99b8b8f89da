package dht22

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"sensord/sensor"
)

// fakeClock advances by step on every reading, so a busy loop over it is
// deterministic: each sample is exactly one step after the previous one.
// stallAt (reading count) -> extra time makes the loop "lose the CPU".
type fakeClock struct {
	now     time.Duration
	step    time.Duration
	calls   int
	stallAt map[int]time.Duration
}

func (c *fakeClock) read() time.Duration {
	c.calls++
	c.now += c.step + c.stallAt[c.calls]
	return c.now
}

// scriptPin plays a waveform (edge times relative to the release, as wave
// builds them) on the fake clock.
type scriptPin struct {
	clock    *fakeClock
	wave     []Edge
	rel      time.Duration
	released bool
	stuckAt  int // if > 0, the line stays low after this many edges
}

func (p *scriptPin) String() string                        { return "GPIO4" }
func (p *scriptPin) Name() string                          { return "GPIO4" }
func (p *scriptPin) Number() int                           { return 4 }
func (p *scriptPin) Function() string                      { return "" }
func (p *scriptPin) Halt() error                           { return nil }
func (p *scriptPin) WaitForEdge(time.Duration) bool        { return false }
func (p *scriptPin) Pull() gpio.Pull                       { return gpio.PullUp }
func (p *scriptPin) DefaultPull() gpio.Pull                { return gpio.PullUp }
func (p *scriptPin) PWM(gpio.Duty, physic.Frequency) error { return errors.New("no PWM") }
func (p *scriptPin) Out(gpio.Level) error                  { p.released = false; return nil }
func (p *scriptPin) In(gpio.Pull, gpio.Edge) error {
	p.rel, p.released = p.clock.now, true
	return nil
}

func (p *scriptPin) Read() gpio.Level {
	if !p.released {
		return gpio.Low
	}
	t := p.clock.now - p.rel
	level := gpio.High
	for i, e := range p.wave {
		if p.stuckAt > 0 && i == p.stuckAt {
			return gpio.Low
		}
		if e.T > t {
			break
		}
		level = gpio.Level(e.Rising)
	}
	return level
}

func scriptDev(t *testing.T, p *scriptPin) *Dev {
	t.Helper()
	d, err := newDev(&pinCapture{pin: p}, false, &Opts{Clock: p.clock.read, NoRealtime: true})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// relWave is wave() shifted so the release is at 0.
func relWave(f Frame, o waveOpts) []Edge {
	e := wave(f, o)
	for i := range e {
		e[i].T -= 1000 * us
	}
	return e
}

func TestBusyLoopCapturesAFrame(t *testing.T) {
	clk := &fakeClock{step: 500 * time.Nanosecond}
	p := &scriptPin{clock: clk, wave: relWave(Encode(-101, 652), waveOpts{})}
	r, err := scriptDev(t, p).Read(context.Background())
	if err != nil || r.Temperature != -101 || r.Humidity != 652 {
		t.Fatalf("Read = %v, %v", r, err)
	}
}

func TestBusyLoopSlackCoversStalls(t *testing.T) {
	// The loop loses the CPU every ~500 µs of the frame, as a busy VM does.
	// An edge seen after a stall carries it as slack, and the read is
	// either exact (the slack bounds keep every bit on its side) or fails
	// with a kind the Poller retries: never a wrong value.
	for _, stall := range []time.Duration{10 * us, 20 * us, 35 * us} {
		for offset := range 10 {
			stalls := map[int]time.Duration{}
			for c := 2300 + 97*offset; c < 14000; c += 997 {
				stalls[c] = stall
			}
			clk := &fakeClock{step: 500 * time.Nanosecond, stallAt: stalls}
			p := &scriptPin{clock: clk, wave: relWave(Encode(-101, 652), waveOpts{})}
			d := scriptDev(t, p)
			r, err := d.Read(context.Background())
			var maxSlack time.Duration
			for _, e := range d.buf[:84] {
				maxSlack = max(maxSlack, e.Slack)
			}
			if offset == 0 && maxSlack < stall {
				t.Errorf("stall %v: no edge carries it as slack (max %v)", stall, maxSlack)
			}
			if err != nil {
				if k := sensor.ErrorKind(err); k != "timeout" && k != "short_frame" {
					t.Errorf("stall %v/%d: %v", stall, offset, err)
				}
				continue
			}
			if r.Temperature != -101 || r.Humidity != 652 {
				t.Errorf("stall %v/%d: read %v", stall, offset, r)
			}
		}
	}
}

func TestBusyLoopTimeouts(t *testing.T) {
	tests := []struct {
		name string
		p    *scriptPin
		want string
	}{
		{"a silent sensor is no response", &scriptPin{}, "no response"},
		{"a line stuck low mid-frame is reported", &scriptPin{wave: relWave(Encode(1, 1), waveOpts{}), stuckAt: 20}, "held low"},
		{"a frame cut after a few edges is no response", &scriptPin{wave: relWave(Encode(1, 1), waveOpts{})[:2]}, "no response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.clock = &fakeClock{step: us}
			_, err := scriptDev(t, tt.p).Read(context.Background())
			if !errors.Is(err, sensor.ErrTimeout) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a timeout saying %q", err, tt.want)
			}
		})
	}
}

func TestTooSoonUsesTheInjectedClock(t *testing.T) {
	clk := &fakeClock{step: us}
	p := &scriptPin{clock: clk, wave: relWave(Encode(1, 1), waveOpts{})}
	d := scriptDev(t, p)
	if _, err := d.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(context.Background()); !errors.Is(err, sensor.ErrTooSoon) {
		t.Fatalf("second read: %v, want too soon", err)
	}
	clk.now += DefaultMinPeriod
	if _, err := d.Read(context.Background()); err != nil {
		t.Fatalf("read after 2 s: %v", err)
	}
}

// BenchmarkBusyLoopVirtualClock runs the busy-loop capture and the decoder
// on the fake clock (one sample every 0.5 µs, as on a Pi 4), over 2000
// frames with random values and jitter, without and with periodic stalls of
// the sampling thread: the success rate of the capture logic itself, apart
// from what a given machine's scheduler does to it. Stalls of 20-40 µs every
// few hundred µs are what the CI virtual machine's host inflicts; a few µs
// is a Pi's interrupt handling.
func BenchmarkBusyLoopVirtualClock(b *testing.B) {
	for _, bc := range []struct {
		name         string
		jitter       time.Duration
		stall, every time.Duration
	}{
		{"jitter=5us/no-stalls", 5 * us, 0, 0},
		{"jitter=10us/no-stalls", 10 * us, 0, 0},
		{"jitter=5us/stall=5us-every-500us", 5 * us, 5 * us, 500 * us},
		{"jitter=5us/stall=25us-every-500us", 5 * us, 25 * us, 500 * us},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			const frames = 2000
			clk := &fakeClock{step: 500 * time.Nanosecond, stallAt: map[int]time.Duration{}}
			p := &scriptPin{clock: clk}
			d, err := newDev(&pinCapture{pin: p}, false, &Opts{Clock: clk.read, NoRealtime: true})
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 5))
			ok, wrong := 0, 0
			for b.Loop() {
				ok, wrong = 0, 0
				for i := range frames {
					tt, h := sensor.Deci(rng.IntN(1201)-400), sensor.Deci(rng.IntN(1001))
					p.wave = relWave(Encode(tt, h), waveOpts{jitter: bc.jitter, seed: uint64(i)})
					clear(clk.stallAt)
					if bc.every > 0 {
						// Stalls at a random phase, every `every` of samples.
						per := int(bc.every / clk.step)
						for c := clk.calls + rng.IntN(per); c < clk.calls+30000; c += per {
							clk.stallAt[c] = bc.stall
						}
					}
					clk.now += DefaultMinPeriod
					r, err := d.Read(context.Background())
					switch {
					case err != nil:
					case r.Temperature == tt && r.Humidity == h:
						ok++
					default:
						wrong++
					}
				}
			}
			if wrong > 0 {
				b.Fatalf("%d wrong readings published", wrong)
			}
			b.ReportMetric(100*float64(ok)/frames, "success-%")
		})
	}
}
