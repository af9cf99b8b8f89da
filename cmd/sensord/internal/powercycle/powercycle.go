// Package powercycle cuts a stuck sensor's power and gives it back: a
// DHT22 that stops answering often answers again only after its supply
// was removed (Tasmota and ESPHome users wire its VCC to a GPIO and cycle
// it by hand). Sensor wraps a sensor.Sensor and a power Switch; after
// FailRun failed reads in a row it switches the power off for OffFor, on
// again, waits WarmUp, and reads again at the poller's next turn. When a
// cycle did not help, the next waits longer (link.Backoff from RetryMin
// to RetryMax), so a sensor that is simply not wired is not switched
// every minute for ever.
//
// # Concurrency
//
// Read and Halt are called from one goroutine (the poller's); Stats is
// safe from any goroutine.
package powercycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sensord/internal/link"
	"sensord/sensor"
)

const (
	// FailRun is how many failed reads in a row start a cycle: a DHT22
	// at its usual error rate (one read in several hundred) never fails
	// five times running, a stuck one does every time.
	FailRun = 5
	// OffFor is how long the power stays off: the sensor's supply
	// capacitor (100 nF on most modules) must drain for it to reset;
	// ESPHome and Tasmota recipes use 1-5 s.
	OffFor = 3 * time.Second
	// WarmUp is the wait after power-on before the next read: the
	// datasheet asks for at least 1 s before the first start signal; 2 s
	// is also its minimum read period.
	WarmUp = 2 * time.Second
	// RetryMin and RetryMax bound the wait between cycles that did not
	// help, doubling from RetryMin.
	RetryMin = time.Minute
	RetryMax = time.Hour
)

// Switch is the sensor's power line.
type Switch interface {
	// Set drives the line: true powers the sensor.
	Set(on bool) error
	String() string
	// Close releases the line.
	Close() error
}

// Stats are the cycles' counters, for /metrics.
type Stats struct {
	// Cycles counts power cycles done; Helped those after which a read
	// succeeded before the next FailRun failures; Failed the cycles whose
	// switching itself failed.
	Cycles, Helped, Failed uint64
	// Last is when the last cycle ended (zero before the first).
	Last time.Time
}

// Sensor is a sensor whose power sensord may cycle.
type Sensor struct {
	s   sensor.Sensor
	sw  Switch
	log *slog.Logger
	now func() time.Time
	// wait sleeps for d or until ctx is done; tests shorten it.
	wait func(ctx context.Context, d time.Duration) error

	// Owned by the reading goroutine.
	fails   int  // failed reads in a row
	tried   int  // cycles in a row that did not help yet
	pending bool // a cycle was done and no read has succeeded since

	mu    sync.Mutex // guards stats
	stats Stats
}

var _ sensor.Sensor = (*Sensor)(nil)

// New returns s with its power on sw, switched on now. log gets one line
// per cycle; nil discards them.
func New(s sensor.Sensor, sw Switch, log *slog.Logger) (*Sensor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := sw.Set(true); err != nil {
		return nil, fmt.Errorf("powercycle: powering the sensor through %s: %w", sw, err)
	}
	return &Sensor{s: s, sw: sw, log: log, now: time.Now, wait: sleep}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// String implements sensor.Sensor.
func (p *Sensor) String() string { return p.s.String() }

// Halt implements sensor.Sensor: it halts the sensor and releases the
// power line, leaving the sensor powered (a released line keeps its
// level on most GPIO drivers).
func (p *Sensor) Halt() error { return errors.Join(p.s.Halt(), p.sw.Close()) }

// Stats returns a copy of the counters.
func (p *Sensor) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// counts reports whether err is a failure a power cycle may cure: not a
// read asked too soon, not a line another program holds or a chip that
// went away, not a shutdown.
func counts(err error) bool {
	switch {
	case errors.Is(err, sensor.ErrTooSoon), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	c := sensor.CauseOf(err)
	return c != sensor.CauseLineBusy && c != sensor.CauseLineGone
}

// Read implements sensor.Sensor: it reads, and after FailRun failures in
// a row (and the back-off since a cycle that did not help) cycles the
// power before it returns the read's error.
func (p *Sensor) Read(ctx context.Context) (sensor.Reading, error) {
	r, err := p.s.Read(ctx)
	if err == nil {
		p.fails = 0
		if p.pending {
			p.pending, p.tried = false, 0
			p.mu.Lock()
			p.stats.Helped++
			p.mu.Unlock()
			p.log.Info("sensor answers again after its power cycle", "sensor", p.s.String(), "power", p.sw.String())
		}
		return r, nil
	}
	if !counts(err) {
		return r, err
	}
	p.fails++
	if p.fails < FailRun {
		return r, err
	}
	p.mu.Lock()
	last := p.stats.Last
	p.mu.Unlock()
	if p.tried > 0 {
		if gap := (link.Backoff{Min: RetryMin, Max: RetryMax, Floor: RetryMin}).Delay(p.tried, 0.5); p.now().Sub(last) < gap {
			return r, err
		}
	}
	p.fails = 0
	if cerr := p.cycle(ctx, err); cerr != nil {
		return r, errors.Join(err, cerr)
	}
	return r, err
}

// cycle switches the power off for OffFor and on again, then waits WarmUp.
func (p *Sensor) cycle(ctx context.Context, why error) error {
	p.tried++
	p.log.Warn("sensor power cycle: switching the sensor off and on again", "sensor", p.s.String(), "power", p.sw.String(),
		"failed_reads", FailRun, "off_for", OffFor, "warm_up", WarmUp, "attempt", p.tried, "err", why)
	err := p.sw.Set(false)
	if err == nil {
		err = p.wait(ctx, OffFor)
		// Power comes back whatever happened meanwhile: a shutdown must
		// not leave the sensor off.
		err = errors.Join(err, p.sw.Set(true))
	}
	if err == nil {
		err = p.wait(ctx, WarmUp)
	}
	p.mu.Lock()
	p.stats.Cycles++
	p.stats.Last = p.now()
	if err != nil && ctx.Err() == nil {
		p.stats.Failed++
	}
	p.mu.Unlock()
	p.pending = true
	if err != nil && ctx.Err() == nil {
		p.log.Error("sensor power cycle failed", "power", p.sw.String(), "err", err)
		return fmt.Errorf("powercycle: %s: %w", p.sw, err)
	}
	return nil
}
