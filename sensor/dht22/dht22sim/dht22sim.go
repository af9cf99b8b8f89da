// Package dht22sim simulates a DHT22 on its data line, in real time, for
// both of the dht22 driver's capture strategies: a fake gpio.PinIO whose
// level the busy loop polls (Pin) and a fake GPIO character device that
// reports timestamped edges (EdgeLine).
//
// When the host releases the line after holding it low for at least 1 ms,
// the simulation plays the DHT22's answer from that instant: ~30 µs high,
// 80 µs low, 80 µs high, then 40 bits of 50 µs low and 26 µs (0) or 70 µs (1)
// high, then the final release. The level at any moment is computed from the
// elapsed monotonic time since the release, so the driver's real capture and
// decode code runs against it; nothing hands decoded values over.
//
// Faults, all optional: per-edge timing jitter, a bit error rate (caught by
// the checksum), short glitch spikes, no response at all, a sensor clock that
// runs slow or fast, edges missed while the character device switches the
// line to input, and a hang (the sensor stops answering and a read blocks
// until its context is done) after a duration or a number of reads. The
// wiring faults a person meets have their own knobs: slow rising edges (a
// weak or missing pull-up), a DHT11 on the line, a line shorted low or
// high.
//
// # Concurrency
//
// A Pin or EdgeLine is driven by one capture at a time, like a real line
// (the dht22 driver serialises its reads). The Sim's methods are safe from
// any goroutine.
package dht22sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"sensord/sensor"
	"sensord/sensor/dht22"
)

// Nominal sensor-side timing, from the DHT22/AM2302 datasheet.
const (
	tGo       = 30 * time.Microsecond // release to the sensor's answer (20-200 µs)
	tRespLow  = 80 * time.Microsecond
	tRespHigh = 80 * time.Microsecond
	tBitLow   = 50 * time.Microsecond
	tZero     = 26 * time.Microsecond
	tOne      = 70 * time.Microsecond
	tEnd      = 50 * time.Microsecond // last bit's falling edge to the release
	tGlitch   = 2 * time.Microsecond  // width of a simulated spike
	// minHold is the shortest start pulse the simulated sensor answers.
	minHold = time.Millisecond
	// quiet is how long after a frame's last edge the fake edge line
	// decides the frame is over (the real one waits for its timeout).
	quiet = 300 * time.Microsecond
	// tZero11 is a DHT11's 0 bit high.
	tZero11 = 24 * time.Microsecond
	// minPowerOff is how long the power must be off for a stopped sensor
	// to answer again.
	minPowerOff = time.Second
	// maxSlowRise bounds Config.SlowRise: past the 80 µs preamble nothing
	// of the answer would be left to look at.
	maxSlowRise = 60 * time.Microsecond
)

// Config sets up a simulated sensor. The zero value is a healthy sensor
// whose values walk slowly around 21 °C and 45 %RH.
type Config struct {
	// Temperature and Humidity fix the values (tenths); nil means a slow
	// random walk around 21.0 °C / 45.0 %RH that moves every few reads.
	Temperature, Humidity *sensor.Deci
	// Jitter moves every edge by a uniform random amount within ±Jitter.
	Jitter time.Duration
	// ErrorRate is the probability (0..1) that a frame carries one flipped
	// bit, which the checksum catches.
	ErrorRate float64
	// GlitchRate is the probability (0..1) that a frame carries a 2 µs spike
	// inside one bit's low, which the decoder must filter out.
	GlitchRate float64
	// NoResponse makes the sensor never answer.
	NoResponse bool
	// HangAfter (since New) or HangAfterReads (answered frames) make the
	// sensor stop answering for good; 0 means never. Once hung, WaitIfHung
	// and EdgeLine.Edges block until their context is done.
	HangAfter      time.Duration
	HangAfterReads int
	// ClockScale stretches every sensor-side duration: 1.2 is a sensor
	// whose clock runs 20 % slow. 0 means 1.
	ClockScale float64
	// EdgeDelay is how long after the release the fake edge line starts
	// reporting edges, like a kernel that arms edge detection late; edges
	// before that are lost. The fake pin is not affected.
	EdgeDelay time.Duration
	// SlowRise delays every rising edge of the answer by this much, as a
	// weak or missing pull-up does: the line takes that long to reach a
	// high level. A high shorter than the delay vanishes. At most 60 µs.
	SlowRise time.Duration
	// DHT11 makes the sensor answer in a DHT11's format: whole values in
	// the high bytes, zero fractions, 24 µs for a 0 bit.
	DHT11 bool
	// StuckLow holds the line low (a short to GND): the line never rises
	// after the release and the fake pin always reads low.
	StuckLow bool
	// StuckHigh holds the line high (a short to 3.3 V): it reads high even
	// while the host drives it low, and nothing answers.
	StuckHigh bool
	// StopAfterReads makes the sensor stop answering (reads time out as
	// for NoResponse) after this many frames, until its power was off for
	// at least a second (PowerLine): the stuck DHT22 a power cycle cures.
	// 0 means never.
	StopAfterReads int
	// Seed seeds the random source; 0 picks a seed from the clock.
	Seed uint64
}

// Sim is one simulated DHT22.
type Sim struct {
	cfg    Config
	origin time.Time
	scale  float64

	mu     sync.Mutex // guards the fields below
	rng    *rand.Rand
	t, h   sensor.Deci // random walk state
	frames int         // frames answered
	last   dht22.Frame // the last frame played, as sent (after a flip)
	lastOK bool        // whether last was sent without an injected error
	// off is whether the power is off, offAt since when; sinceOn counts
	// the frames answered since the last power-on.
	off     bool
	offAt   time.Duration
	sinceOn int
}

// New returns a simulated sensor.
func New(c Config) (*Sim, error) {
	switch {
	case c.Jitter < 0 || c.Jitter > 20*time.Microsecond:
		return nil, fmt.Errorf("dht22sim: jitter %v outside 0..20µs", c.Jitter)
	case c.ErrorRate < 0 || c.ErrorRate > 1:
		return nil, fmt.Errorf("dht22sim: error rate %v outside 0..1", c.ErrorRate)
	case c.GlitchRate < 0 || c.GlitchRate > 1:
		return nil, fmt.Errorf("dht22sim: glitch rate %v outside 0..1", c.GlitchRate)
	case c.HangAfter < 0 || c.HangAfterReads < 0 || c.EdgeDelay < 0:
		return nil, errors.New("dht22sim: negative hang-after or edge delay")
	case c.ClockScale != 0 && (c.ClockScale < 0.5 || c.ClockScale > 1.5):
		return nil, fmt.Errorf("dht22sim: clock scale %v outside 0.5..1.5", c.ClockScale)
	case c.SlowRise < 0 || c.SlowRise > maxSlowRise:
		return nil, fmt.Errorf("dht22sim: slow rise %v outside 0..%v", c.SlowRise, maxSlowRise)
	case c.StuckLow && c.StuckHigh:
		return nil, errors.New("dht22sim: a line cannot be stuck low and high at once")
	}
	seed := c.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &Sim{
		cfg:    c,
		origin: time.Now(),
		scale:  c.ClockScale,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		t:      210,
		h:      450,
	}
	if s.scale == 0 {
		s.scale = 1
	}
	return s, nil
}

// clock is the simulation's monotonic clock: time.Since reads only the
// monotonic reading, like the driver's.
func (s *Sim) clock() time.Duration { return time.Since(s.origin) }

// Hung reports whether the sensor has stopped answering for good.
func (s *Sim) Hung() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hungLocked()
}

func (s *Sim) hungLocked() bool {
	return (s.cfg.HangAfter > 0 && s.clock() >= s.cfg.HangAfter) ||
		(s.cfg.HangAfterReads > 0 && s.frames >= s.cfg.HangAfterReads)
}

// WaitIfHung blocks until ctx is done when the sensor is hung and returns
// ctx's error; otherwise it returns nil at once. A sensor.Sensor over the
// fake Pin calls it first, because the busy loop itself cannot hang.
func (s *Sim) WaitIfHung(ctx context.Context) error {
	if !s.Hung() {
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("dht22sim: sensor hung: %w", ctx.Err())
}

// SetPower switches the sensor's supply: off, it answers nothing; on again
// after at least a second off, a stopped sensor (StopAfterReads) answers
// again.
func (s *Sim) SetPower(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !on && !s.off:
		s.off, s.offAt = true, s.clock()
	case on && s.off:
		s.off = false
		if s.clock()-s.offAt >= minPowerOff {
			s.sinceOn = 0
		}
	}
}

// Frames returns how many start pulses the sensor has answered.
func (s *Sim) Frames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// Last returns the values of the last frame played and whether it was sent
// intact (no injected bit error).
func (s *Sim) Last() (t, h sensor.Deci, intact bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.Temperature(), s.last.Humidity(), s.lastOK
}

// walk moves the random walk one step: about two reads in three change the
// temperature by 0.1 °C, and most change the humidity; both drift back
// towards 21 °C and 45 %RH.
func (s *Sim) walk() {
	step := func(v, centre, span sensor.Deci, n int) sensor.Deci {
		d := sensor.Deci(s.rng.IntN(2*n+1) - n)
		switch {
		case v > centre+span:
			d = -sensor.Deci(s.rng.IntN(n + 1))
		case v < centre-span:
			d = sensor.Deci(s.rng.IntN(n + 1))
		}
		return v + d
	}
	s.t = step(s.t, 210, 30, 1)
	s.h = step(s.h, 450, 80, 3)
}

// answer is called when the host releases the line after holding it low for
// held. It appends to dst the answer's edge times relative to the release
// (the first edge falls, then they alternate) and returns it, empty when the
// sensor does not answer; hung says the sensor was hung at the release.
func (s *Sim) answer(held time.Duration, dst []time.Duration) (wave []time.Duration, hung bool) {
	dst = dst[:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hungLocked() {
		return dst, true
	}
	if s.cfg.NoResponse || s.cfg.StuckLow || s.cfg.StuckHigh || held < minHold || s.off ||
		(s.cfg.StopAfterReads > 0 && s.sinceOn >= s.cfg.StopAfterReads) {
		return dst, false
	}
	s.frames++
	s.sinceOn++
	if s.cfg.Temperature == nil || s.cfg.Humidity == nil {
		s.walk()
	}
	t, h := s.t, s.h
	if s.cfg.Temperature != nil {
		t = *s.cfg.Temperature
	}
	if s.cfg.Humidity != nil {
		h = *s.cfg.Humidity
	}
	f := dht22.Encode(t, h)
	zero := tZero
	if s.cfg.DHT11 {
		// Whole values in the high bytes, as a DHT11 sends them.
		f = dht22.Frame{byte(max(h, 0) / 10), 0, byte(min(max(t, 0), 0x7f0) / 10), 0}
		f[4] = f[0] + f[1] + f[2] + f[3]
		zero = tZero11
	}
	s.lastOK = true
	if s.cfg.ErrorRate > 0 && s.rng.Float64() < s.cfg.ErrorRate {
		i := s.rng.IntN(40)
		f[i/8] ^= 0x80 >> (i % 8)
		s.lastOK = false
	}
	s.last = f
	glitch := -1
	if s.cfg.GlitchRate > 0 && s.rng.Float64() < s.cfg.GlitchRate {
		glitch = s.rng.IntN(40)
	}

	sc := func(d time.Duration) time.Duration { return time.Duration(float64(d) * s.scale) }
	var at time.Duration // nominal time of the next edge
	add := func(d time.Duration) {
		at += sc(d)
		e := at
		if j := s.cfg.Jitter; j > 0 {
			e += time.Duration(s.rng.Int64N(int64(2*j+1))) - j
		}
		// Jitter never reorders edges: keep at least 1 µs between them.
		if n := len(dst); n > 0 && e < dst[n-1]+time.Microsecond {
			e = dst[n-1] + time.Microsecond
		}
		dst = append(dst, e)
	}
	add(tGo)       // falls: the answer starts
	add(tRespLow)  // rises
	add(tRespHigh) // falls: bit 0's low
	for i := range 40 {
		if i == glitch {
			// A spike in the middle of this bit's low: up, then down.
			mid := at + sc(tBitLow)/2
			dst = append(dst, mid, mid+tGlitch)
		}
		add(tBitLow) // rises
		if f[i/8]&(0x80>>(i%8)) != 0 {
			add(tOne)
		} else {
			add(zero)
		}
	}
	add(tEnd) // the sensor releases the line
	if s.cfg.SlowRise > 0 {
		dst = slowRise(dst, s.cfg.SlowRise)
	}
	return dst, false
}

// slowRise delays each rising edge of wave (every second one, the first
// edge falls) by d, in place; a high that the delay swallows disappears
// with both its edges.
func slowRise(wave []time.Duration, d time.Duration) []time.Duration {
	out := wave[:0]
	for i := 0; i < len(wave); i++ {
		t := wave[i]
		if i%2 == 1 {
			t += d
			if i+1 < len(wave) && t >= wave[i+1] {
				i++ // the line never got high before the next fall
				continue
			}
		}
		out = append(out, t)
	}
	return out
}

// levelAt returns the line's level at t for a waveform whose edges (absolute
// times, first one falling) are wave: high before the first edge and after
// the last.
func levelAt(wave []time.Duration, t time.Duration) bool {
	lo, hi := 0, len(wave)
	for lo < hi { // count edges at or before t
		m := int(uint(lo+hi) >> 1)
		if wave[m] <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo%2 == 0
}

// Waveform returns the edges of the nominal answer carrying f, as a perfect
// capture would timestamp them with the release at 0: no jitter, no faults.
// It is for examples and decoder tests; the Sim plays the same waveform.
func Waveform(f dht22.Frame) []dht22.Edge {
	var at time.Duration
	e := make([]dht22.Edge, 0, 84)
	add := func(d time.Duration) {
		at += d
		e = append(e, dht22.Edge{T: at, Rising: len(e)%2 == 1})
	}
	add(tGo)
	add(tRespLow)
	add(tRespHigh)
	for i := range 40 {
		add(tBitLow)
		if f[i/8]&(0x80>>(i%8)) != 0 {
			add(tOne)
		} else {
			add(tZero)
		}
	}
	add(tEnd)
	return e
}
