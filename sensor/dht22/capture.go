package dht22

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"sensord/sensor"
)

// EdgeLine is the data line as the edge-timestamp capture needs it. The
// GPIO character device implements it in package sensors (kernel timestamps
// from the interrupt handler, so neither the Go scheduler nor the garbage
// collector can blur them); dht22sim implements it from the simulated
// waveform.
type EdgeLine interface {
	// DriveLow makes the line an output at low level: the start pulse.
	DriveLow() error
	// Release makes the line an input with the pull-up and edge detection
	// on both edges. Edges from then on are queued with their timestamps;
	// edges from before are discarded. Switching direction takes time, so
	// the first edges of the answer may be missed (DecodeFrame copes).
	Release() error
	// Edges waits until dst is full, timeout has passed since Release or
	// the frame is evidently over, or ctx is done, and returns the number
	// of edges stored in dst, oldest first.
	Edges(ctx context.Context, dst []Edge, timeout time.Duration) (int, error)
	// String names the line, e.g. "gpiochip0:4".
	String() string
}

// edgeCapture is the character-device strategy.
type edgeCapture struct{ line EdgeLine }

func (c *edgeCapture) name() string   { return "edge-timestamps" }
func (c *edgeCapture) String() string { return c.line.String() }

func (c *edgeCapture) capture(ctx context.Context, pulse time.Duration, dst []Edge, lv *Levels) (int, error) {
	if err := c.line.DriveLow(); err != nil {
		return 0, fmt.Errorf("dht22: start pulse on %s: %w", c.line, err)
	}
	lr, canRead := c.line.(LevelReader)
	if canRead {
		// Driven low, the line reads high only when something stronger
		// holds it there; the pulse has time for the look.
		if high, err := lr.Level(); err == nil && high {
			lv.HeldHigh = true
		}
	}
	// The pulse only has to be long enough; a late wake-up makes it longer,
	// which the sensor accepts (MaxStartPulse leaves the room).
	time.Sleep(pulse)
	if err := c.line.Release(); err != nil {
		return 0, fmt.Errorf("dht22: releasing %s: %w", c.line, err)
	}
	n, err := c.line.Edges(ctx, dst, frameTimeout)
	if err != nil {
		return n, fmt.Errorf("dht22: reading edges of %s: %w", c.line, err)
	}
	if n < minEdges {
		if canRead {
			if high, err := lr.Level(); err == nil {
				lv.EndKnown, lv.EndLow = true, !high
			}
		}
		return n, errorf(sensor.ErrTimeout, "no response on %s (%d edges within %v of the release)", c.line, n, frameTimeout)
	}
	return n, nil
}

// pinCapture is the busy-loop strategy over a fast gpio.PinIO.
type pinCapture struct {
	pin   gpio.PinIO
	clock func() time.Duration
	// rt is whether captures raise their thread to SCHED_FIFO; set by
	// newDev from Opts and a probe, read-only after.
	rt bool
}

func (c *pinCapture) name() string   { return "busy-loop" }
func (c *pinCapture) String() string { return c.pin.String() }

// probeRealtime reports whether this process may raise a thread to
// SCHED_FIFO, by doing it once on a locked thread and restoring it.
func probeRealtime() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	restore, ok := realtime()
	if !ok {
		return false
	}
	if err := restore(); err != nil {
		// The thread keeps the policy; never hand it back to the runtime.
		runtime.LockOSThread()
		return false
	}
	return true
}

// gcHold serialises the garbage-collector hold of concurrent captures: the
// GC percentage is process-wide, and two captures restoring each other's
// "off" would leave the collector disabled for good. It is the package's
// only global, because the resource it guards is global too.
var gcHold sync.Mutex

func (c *pinCapture) capture(ctx context.Context, pulse time.Duration, dst []Edge, lv *Levels) (int, error) {
	// The frame is timed by this goroutine's own reads of the clock, so it
	// must not move between threads, be stopped for a collection, or lose
	// its CPU while the frame lasts (~6 ms). SetGCPercent(-1) also waits
	// for a running mark phase to end, so it happens before the start pulse.
	runtime.LockOSThread()
	unlock := true
	defer func() {
		if unlock {
			runtime.UnlockOSThread()
		}
	}()
	gcHold.Lock()
	old := debug.SetGCPercent(-1)
	defer func() {
		debug.SetGCPercent(old)
		gcHold.Unlock()
	}()
	if c.rt {
		if restore, ok := realtime(); ok {
			defer func() {
				if restore() != nil {
					// Never hand a real-time thread back to the runtime:
					// the goroutine keeps it (and exits it if it ends).
					unlock = false
				}
			}()
		}
	}
	// Start with a fresh scheduler time slice, so the runtime's 10 ms
	// preemption of long-running goroutines does not fall inside the frame.
	runtime.Gosched()

	if err := c.pin.Out(gpio.Low); err != nil {
		return 0, fmt.Errorf("dht22: start pulse on %s: %w", c.pin.Name(), err)
	}
	start := c.clock()
	// Driven low, the pin reads high only when something stronger holds it
	// there (the level register reads the pad, not the output latch).
	lv.HeldHigh = c.pin.Read() == gpio.High
	if pulse > 2*time.Millisecond {
		// Sleep through most of a long pulse; spin the last millisecond so
		// the release is punctual whatever the scheduler does.
		time.Sleep(pulse - time.Millisecond)
	}
	for c.clock()-start < pulse {
	}
	if err := c.pin.In(gpio.PullUp, gpio.NoEdge); err != nil {
		return 0, fmt.Errorf("dht22: releasing %s: %w", c.pin.Name(), err)
	}
	release := c.clock()
	n, err := sample(c.pin, c.clock, dst)
	if err != nil && n < minEdges {
		// Look once every answer would be over: a line still low then is
		// held low, not in the middle of a frame.
		if rest := frameTimeout - (c.clock() - release); rest > 0 {
			time.Sleep(rest)
		}
		lv.EndKnown, lv.EndLow = true, c.pin.Read() == gpio.Low
	}
	return n, err
}

// sample records level changes of pin until the frame is over. Every phase
// has a hard timeout, so it returns within frameTimeout whatever the line
// does.
//
// Each sample reads the level, then the clock: the level was taken some
// time after the previous clock reading and before this one. An edge between
// two samples therefore happened after the clock reading before the previous
// sample and at most at this one; Slack is that window, normally two loop
// turns (well under a microsecond), longer when the thread lost the CPU. The
// decoder refuses to guess a bit that its edges' slack makes ambiguous.
func sample(pin gpio.PinIn, clock func() time.Duration, dst []Edge) (int, error) {
	level := pin.Read()
	release := clock()
	last, t1, t2 := release, release, release // t1, t2: the last two clock readings
	n := 0
	for {
		l := pin.Read()
		t := clock()
		if l != level {
			if n == len(dst) {
				return n, nil
			}
			dst[n] = Edge{T: t, Slack: t - t2, Rising: l == gpio.High}
			n++
			level, last = l, t
		}
		t1, t2 = t, t1
		switch idle := t - last; {
		case n == 0 && idle > responseTimeout:
			return 0, errorf(sensor.ErrTimeout, "no response on %s within %v of the release", pin.Name(), responseTimeout)
		case n > 0 && idle > edgeTimeout && level == gpio.Low:
			return n, errorf(sensor.ErrTimeout, "%s held low for %v after edge %d", pin.Name(), idle, n)
		case n > 0 && idle > edgeTimeout:
			if n < minEdges {
				return n, errorf(sensor.ErrTimeout, "no response on %s (%d edges)", pin.Name(), n)
			}
			return n, nil // line back high: the frame is over
		case t-release > frameTimeout:
			return n, errorf(sensor.ErrTimeout, "frame on %s longer than %v (%d edges)", pin.Name(), frameTimeout, n)
		}
	}
}
