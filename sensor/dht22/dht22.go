package dht22

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"sensord/sensor"
)

// Timing limits of the driver; see the table in the package doc.
const (
	// DefaultStartPulse is how long the host holds the line low to wake the
	// sensor: the datasheet asks for at least 1 ms.
	DefaultStartPulse = 1100 * time.Microsecond
	// MinStartPulse and MaxStartPulse bound Opts.StartPulse; some parts
	// want a longer pulse than the datasheet says.
	MinStartPulse = time.Millisecond
	MaxStartPulse = 20 * time.Millisecond
	// DefaultMinPeriod is the datasheet's minimum time between two reads.
	DefaultMinPeriod = 2 * time.Second
	// SimMinPeriod is the floor for a simulated line, for load tests.
	SimMinPeriod = 10 * time.Millisecond

	// responseTimeout: release to the sensor's first edge (datasheet Tgo
	// 20-200 µs).
	responseTimeout = 500 * time.Microsecond
	// edgeTimeout: the longest level inside a frame is the ~80 µs preamble;
	// after this long without an edge the frame is over (line high) or the
	// sensor is stuck (line low).
	edgeTimeout = 300 * time.Microsecond
	// frameTimeout: release to the end of the longest frame (all ones, a
	// slow clock): 200+80+80+40×(55+75)+55 µs is under 5.7 ms.
	frameTimeout = 8 * time.Millisecond
	// captureEdges is the capture buffer: 84 edges for a clean frame, plus
	// the release and a few glitches.
	captureEdges = 128
	// minEdges: fewer edges than this is no answer at all.
	minEdges = 4
)

// Opts are the driver's options; nil or the zero value gives the defaults.
type Opts struct {
	// StartPulse is how long the line is held low; 0 means
	// DefaultStartPulse. Must be within MinStartPulse..MaxStartPulse.
	StartPulse time.Duration
	// MinPeriod is the minimum time between the starts of two reads; a read
	// sooner fails with sensor.ErrTooSoon. 0 means DefaultMinPeriod. Only a
	// simulated line (package dht22sim) may go below it, down to
	// SimMinPeriod.
	MinPeriod time.Duration
	// Clock is the monotonic clock the capture times edges and the
	// MinPeriod check with; nil means time elapsed since New.
	Clock func() time.Duration
	// Now stamps readings; nil means time.Now.
	Now func() time.Time
	// NoRealtime keeps the busy-loop capture at normal priority. By default
	// it raises its thread to SCHED_FIFO for each frame when the process
	// may (root, CAP_SYS_NICE, or systemd's LimitRTPRIO=), so no other
	// thread preempts it mid-frame. The edge capture does not need it.
	NoRealtime bool
}

// simulator is implemented by dht22sim's fake pin and edge line: only a
// simulated line may be read faster than DefaultMinPeriod, so no option can
// make the driver wear out real hardware.
type simulator interface{ Simulated() bool }

// capturer turns one start pulse into the edges of the answer.
type capturer interface {
	// capture fills lv with what it saw of the line's level, for
	// Diagnose.
	capture(ctx context.Context, pulse time.Duration, dst []Edge, lv *Levels) (int, error)
	// name is the strategy's name for logs: "busy-loop" or "edge-timestamps".
	name() string
	String() string
}

// Dev is one DHT22 (AM2302) on one GPIO line.
//
// # Concurrency
//
// All methods are safe from any goroutine; reads are serialised, and a
// read sooner than MinPeriod after the previous one fails with
// sensor.ErrTooSoon instead of waiting.
type Dev struct {
	c      capturer
	pulse  time.Duration
	period time.Duration
	clock  func() time.Duration
	now    func() time.Time

	mu       sync.Mutex // serialises reads; guards the fields below
	lastRead time.Duration
	hasRead  bool
	buf      [captureEdges]Edge

	cmu    sync.Mutex // guards stop
	stop   context.CancelFunc
	sensed chan struct{} // closed when the SenseContinuous goroutine ended
}

var _ physic.SenseEnv = (*Dev)(nil)
var _ sensor.Sensor = (*Dev)(nil)

// New returns a Dev that captures through pin by polling its level in a
// busy loop: the strategy for periph's memory-mapped bcm283x pins
// (/dev/gpiomem), where a read costs well under a microsecond. The caller
// resolves the pin (host.Init, gpioreg) and owns it.
func New(pin gpio.PinIO, o *Opts) (*Dev, error) {
	if pin == nil {
		return nil, errors.New("dht22: nil pin")
	}
	return newDev(&pinCapture{pin: pin}, isSim(pin), o)
}

// NewEdge returns a Dev that captures through line, whose edges carry
// timestamps taken when they happened: the GPIO character device (the
// kernel stamps each edge in its interrupt handler) or dht22sim's fake.
func NewEdge(line EdgeLine, o *Opts) (*Dev, error) {
	if line == nil {
		return nil, errors.New("dht22: nil edge line")
	}
	return newDev(&edgeCapture{line: line}, isSim(line), o)
}

func isSim(v any) bool {
	s, ok := v.(simulator)
	return ok && s.Simulated()
}

func newDev(c capturer, sim bool, o *Opts) (*Dev, error) {
	var opts Opts
	if o != nil {
		opts = *o
	}
	d := &Dev{c: c, pulse: opts.StartPulse, period: opts.MinPeriod, clock: opts.Clock, now: opts.Now}
	if d.pulse == 0 {
		d.pulse = DefaultStartPulse
	}
	if d.pulse < MinStartPulse || d.pulse > MaxStartPulse {
		return nil, fmt.Errorf("dht22: start pulse %v outside %v..%v", d.pulse, MinStartPulse, MaxStartPulse)
	}
	if d.period == 0 {
		d.period = DefaultMinPeriod
	}
	switch {
	case d.period < SimMinPeriod:
		return nil, fmt.Errorf("dht22: minimum period %v below %v", d.period, SimMinPeriod)
	case d.period < DefaultMinPeriod && !sim:
		return nil, fmt.Errorf("dht22: minimum period %v below the sensor's %v (only a simulated line may go faster)", d.period, DefaultMinPeriod)
	}
	if d.clock == nil {
		start := time.Now()
		// time.Since reads only the monotonic clock: one vDSO call, cheap
		// enough for the busy loop.
		d.clock = func() time.Duration { return time.Since(start) }
	}
	if d.now == nil {
		d.now = time.Now
	}
	if pc, ok := c.(*pinCapture); ok {
		pc.clock = d.clock
		pc.rt = !opts.NoRealtime && probeRealtime()
	}
	return d, nil
}

// Realtime reports whether busy-loop captures run at real-time priority
// (see Opts.NoRealtime); always false for the edge capture.
func (d *Dev) Realtime() bool {
	pc, ok := d.c.(*pinCapture)
	return ok && pc.rt
}

// Capture names the capture strategy: "busy-loop" (New) or
// "edge-timestamps" (NewEdge).
func (d *Dev) Capture() string { return d.c.name() }

// String implements conn.Resource.
func (d *Dev) String() string { return "DHT22{" + d.c.String() + ", " + d.c.name() + "}" }

// Read wakes the sensor, captures its answer and decodes it. It fails with
// an error wrapping sensor.ErrTooSoon when called sooner than MinPeriod after
// the previous read started, sensor.ErrTimeout when the sensor does not
// answer, sensor.ErrShortFrame, sensor.ErrChecksum or sensor.ErrOutOfRange;
// sensor.CauseOf the error gives its likely cause (see Diagnose).
// A capture takes under 10 ms; on the edge path a hung line makes it block
// until ctx is done.
func (d *Dev) Read(ctx context.Context) (sensor.Reading, error) {
	if err := ctx.Err(); err != nil {
		return sensor.Reading{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock()
	if d.hasRead && now-d.lastRead < d.period {
		return sensor.Reading{}, errorf(sensor.ErrTooSoon, "read %v after the previous one, minimum %v", now-d.lastRead, d.period)
	}
	d.lastRead, d.hasRead = now, true
	var lv Levels
	n, err := d.c.capture(ctx, d.pulse, d.buf[:], &lv)
	if err == nil {
		var t, h sensor.Deci
		if t, h, err = Decode(d.buf[:n]); err == nil {
			return sensor.Reading{Temperature: t, Humidity: h, Time: d.now()}, nil
		}
	}
	return sensor.Reading{}, sensor.WithCause(err, Diagnose(d.buf[:n], err, lv))
}

// Sense implements physic.SenseEnv: it reads once and fills the temperature
// and humidity of e (pressure is left alone). Temperature is in periph's
// Kelvin-based unit, so 0 °C is physic.ZeroCelsius, not 0.
func (d *Dev) Sense(e *physic.Env) error {
	r, err := d.Read(context.Background())
	if err != nil {
		return err
	}
	toEnv(r, e)
	return nil
}

func toEnv(r sensor.Reading, e *physic.Env) {
	e.Temperature = physic.ZeroCelsius + physic.Temperature(r.Temperature)*100*physic.MilliCelsius
	e.Humidity = physic.RelativeHumidity(r.Humidity) * physic.MilliRH // MilliRH is 0.1 %RH
}

// SenseContinuous implements physic.SenseEnv: it reads every interval (at
// least MinPeriod) until Halt and sends every valid reading; failed reads are
// skipped. The channel is closed after Halt.
func (d *Dev) SenseContinuous(interval time.Duration) (<-chan physic.Env, error) {
	if interval < d.period {
		return nil, fmt.Errorf("dht22: interval %v below the minimum period %v", interval, d.period)
	}
	d.cmu.Lock()
	defer d.cmu.Unlock()
	if d.stop != nil {
		return nil, errors.New("dht22: already sensing continuously; call Halt first")
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	d.sensed = make(chan struct{})
	ch := make(chan physic.Env)
	go func() {
		defer close(d.sensed)
		defer close(ch)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if r, err := d.Read(ctx); err == nil {
				var e physic.Env
				toEnv(r, &e)
				select {
				case ch <- e:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// Precision implements physic.SenseEnv: the DHT22 reports tenths.
func (d *Dev) Precision(e *physic.Env) {
	e.Temperature = 100 * physic.MilliKelvin
	e.Humidity = physic.MilliRH
	e.Pressure = 0
}

// Halt implements conn.Resource: it stops SenseContinuous and waits for its
// goroutine. It does not release the pin or line; their owner does.
func (d *Dev) Halt() error {
	d.cmu.Lock()
	stop, done := d.stop, d.sensed
	d.stop, d.sensed = nil, nil
	d.cmu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return nil
}
