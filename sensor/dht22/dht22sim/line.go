package dht22sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"

	"sensord/sensor/dht22"
)

// maxWave is the most edges one answer has: 84, plus a glitch's two.
const maxWave = 96

// Pin is a fake gpio.PinIO wired to the simulated sensor, for the driver's
// busy-loop capture: Out(gpio.Low) starts the start pulse, In releases the
// line and starts the answer, Read returns the level at this instant.
type Pin struct {
	sim  *Sim
	name string

	// Owned by the goroutine driving the pin (see the package doc).
	driving bool
	out     gpio.Level
	lowAt   time.Duration
	wave    []time.Duration // absolute edge times of the current answer
	buf     [maxWave]time.Duration
}

// Pin returns a fake pin named name (e.g. "GPIO4") on the simulated sensor.
func (s *Sim) Pin(name string) *Pin { return &Pin{sim: s, name: name} }

var _ gpio.PinIO = (*Pin)(nil)

// Simulated tells the dht22 driver the pin is simulated, so it may be read
// faster than a real sensor allows.
func (p *Pin) Simulated() bool { return true }

// String implements conn.Resource.
func (p *Pin) String() string { return p.name + "(sim)" }

// Halt implements conn.Resource.
func (p *Pin) Halt() error { return nil }

// Name implements pin.Pin.
func (p *Pin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *Pin) Number() int { return -1 }

// Function implements pin.Pin.
func (p *Pin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *Pin) Func() pin.Func {
	if p.driving {
		if p.out {
			return gpio.OUT_HIGH
		}
		return gpio.OUT_LOW
	}
	return gpio.IN
}

// In implements gpio.PinIn: it releases the line. If the line was driven low
// for at least 1 ms, the sensor answers from this instant.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	if edge != gpio.NoEdge {
		return errors.New("dht22sim: the fake pin has no edge detection; use EdgeLine")
	}
	now := p.sim.clock()
	p.wave = p.wave[:0]
	if p.driving && p.out == gpio.Low {
		p.wave, _ = p.sim.answer(now-p.lowAt, p.buf[:0])
		for i := range p.wave {
			p.wave[i] += now
		}
	}
	p.driving = false
	return nil
}

// Read implements gpio.PinIn: the level now.
func (p *Pin) Read() gpio.Level {
	switch {
	case p.sim.cfg.StuckLow:
		return gpio.Low
	case p.sim.cfg.StuckHigh:
		return gpio.High
	case p.driving:
		return p.out
	}
	return gpio.Level(levelAt(p.wave, p.sim.clock()))
}

// WaitForEdge implements gpio.PinIn; the fake pin has no edge detection.
func (p *Pin) WaitForEdge(timeout time.Duration) bool { return false }

// Pull implements gpio.PinIn.
func (p *Pin) Pull() gpio.Pull { return gpio.PullUp }

// DefaultPull implements gpio.PinIn.
func (p *Pin) DefaultPull() gpio.Pull { return gpio.PullUp }

// Out implements gpio.PinOut.
func (p *Pin) Out(l gpio.Level) error {
	if !p.driving || p.out != l {
		p.lowAt = p.sim.clock()
	}
	p.driving, p.out = true, l
	p.wave = p.wave[:0]
	return nil
}

// PWM implements gpio.PinOut.
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("dht22sim: no PWM on the fake pin")
}

// EdgeLine is a fake GPIO character-device line wired to the simulated
// sensor, for the driver's edge-timestamp capture: it reports the answer's
// edges with timestamps on the simulation's monotonic clock, and delivers
// each one only once its time has come.
type EdgeLine struct {
	sim  *Sim
	name string

	// Owned by the goroutine driving the line (see the package doc).
	driving bool
	lowAt   time.Duration
	relAt   time.Duration
	wave    []time.Duration // absolute edge times the "kernel" saw
	lost    int             // edges of the answer lost before wave[0]
	hung    bool            // the sensor was hung at the release
	buf     [maxWave]time.Duration
}

// EdgeLine returns a fake character-device line named name.
func (s *Sim) EdgeLine(name string) *EdgeLine { return &EdgeLine{sim: s, name: name} }

var _ dht22.EdgeLine = (*EdgeLine)(nil)

// Simulated tells the dht22 driver the line is simulated.
func (l *EdgeLine) Simulated() bool { return true }

// String implements dht22.EdgeLine.
func (l *EdgeLine) String() string { return l.name + "(sim)" }

// DriveLow implements dht22.EdgeLine.
func (l *EdgeLine) DriveLow() error {
	l.driving, l.lowAt = true, l.sim.clock()
	l.wave = l.wave[:0]
	return nil
}

// Release implements dht22.EdgeLine: the answer starts now, and edges within
// Config.EdgeDelay of now are lost.
func (l *EdgeLine) Release() error {
	l.relAt = l.sim.clock()
	l.wave, l.lost, l.hung = l.wave[:0], 0, false
	if l.driving {
		var wave []time.Duration
		wave, l.hung = l.sim.answer(l.relAt-l.lowAt, l.buf[:0])
		for _, t := range wave {
			if t < l.sim.cfg.EdgeDelay {
				l.lost++
				continue
			}
			l.wave = append(l.wave, l.relAt+t)
		}
	}
	l.driving = false
	return nil
}

// Edges implements dht22.EdgeLine. It waits in real time until the last
// edge that fits dst is due and the line has been quiet for a moment (or
// until timeout), then copies the edges. If the sensor was hung at the
// release it blocks until ctx is done, like a read that never returns.
func (l *EdgeLine) Edges(ctx context.Context, dst []dht22.Edge, timeout time.Duration) (int, error) {
	if l.hung {
		<-ctx.Done()
		return 0, fmt.Errorf("dht22sim: sensor hung: %w", ctx.Err())
	}
	n := min(len(l.wave), len(dst))
	end := l.relAt + timeout
	if n > 0 {
		end = min(end, l.wave[n-1]+quiet)
	}
	if wait := end - l.sim.clock(); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	k := 0
	for _, t := range l.wave[:n] {
		if t > end {
			break
		}
		// The answer's edges alternate, its first one falling.
		dst[k] = dht22.Edge{T: t, Rising: (l.lost+k)%2 == 1}
		k++
	}
	return k, nil
}

var _ dht22.LevelReader = (*EdgeLine)(nil)

// Level implements dht22.LevelReader: the line's level now, as a GPIO
// character device reads it.
func (l *EdgeLine) Level() (bool, error) {
	switch {
	case l.sim.cfg.StuckLow:
		return false, nil
	case l.sim.cfg.StuckHigh:
		return true, nil
	case l.driving:
		return false, nil
	}
	return levelAt(l.wave, l.sim.clock()), nil
}

// Close releases nothing; it is there to look like a real line.
func (l *EdgeLine) Close() error { return nil }

// PowerLine is a fake GPIO output wired to the simulated sensor's supply.
type PowerLine struct {
	sim  *Sim
	name string
}

// PowerLine returns the fake power line named name.
func (s *Sim) PowerLine(name string) *PowerLine { return &PowerLine{sim: s, name: name} }

// Set drives the line: true powers the sensor.
func (p *PowerLine) Set(on bool) error { p.sim.SetPower(on); return nil }

// String names the line.
func (p *PowerLine) String() string { return p.name + "(sim)" }

// Close releases nothing.
func (p *PowerLine) Close() error { return nil }
