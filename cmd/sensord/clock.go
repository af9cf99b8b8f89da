package main

// The wall clock's trust and the readings held for it: with -clock-hold,
// a reading taken before the clock is set goes live to the WebSocket
// paths as it is, but waits in memory for history and MQTT; once the
// clock is set it is stamped from its monotonic time and stored and
// published in order (internal/timesync has the rule).

import (
	"context"
	"fmt"
	"sync"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/timesync"
	"sensord/sensor"
)

// maxHeld bounds the readings held for the clock: a day at the default
// 2 s period, as far back as a resume reaches, in about 2 MiB. A clock set
// later than that loses the oldest, counted in /metrics.
const maxHeld = 43200

// clockFix is what to do about a clock that is not set.
const clockFix = "connect the appliance to a network with a time server (NTP_SERVER in sensord.conf names one on your own network, such as your router), or set the clock from this browser's clock on the dashboard (owner only)"

// clockHold is the clock's state and the held readings.
type clockHold struct {
	clock *timesync.Clock
	// base is the origin of the monotonic times of held readings.
	base time.Time

	mu        sync.Mutex // guards the fields below, and orders the drain before every later reading
	trusted   bool
	held      *timesync.Hold[sensor.Reading]
	trustWall time.Time // the two clocks read when it became trusted
	trustMono time.Duration
}

// newClock builds the clock's watch on the system's signals.
func (d *daemon) newClock() {
	base := time.Now()
	d.clk = &clockHold{base: base, held: timesync.NewHold[sensor.Reading](maxHeld)}
	d.clk.clock = &timesync.Clock{
		Source:    timesync.System{}.Check,
		Now:       time.Now,
		Mono:      func() time.Duration { return time.Since(base) },
		OnTrusted: d.clockTrusted,
	}
}

// mono is the monotonic time now on the clock of held readings and of the
// history's AddAt.
func (d *daemon) mono() time.Duration { return time.Since(d.clk.base) }

// hold reports whether r, taken at monotonic time mono, waits for the
// clock (and keeps it if so). A reading taken before the clock was
// trusted and handed over after gets the trusted stamp too.
func (d *daemon) hold(r *sensor.Reading, mono time.Duration) bool {
	if !d.cfg.ClockHold {
		return false
	}
	c := d.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.trusted {
		c.held.Add(*r, mono)
		return true
	}
	// Both times carry monotonic readings, so Before compares those.
	if r.Time.Before(c.trustWall) {
		r.Time = timesync.Stamp(c.trustWall, c.trustMono, r.Time.Sub(c.base))
	}
	return false
}

// runClock watches the clock until it is trusted, saying once in the
// journal that it is not.
func (d *daemon) runClock(ctx context.Context) {
	if !d.clk.clock.Check() {
		why := d.clk.clock.Status().Why
		if d.cfg.ClockHold {
			d.log.Warn("clock not set: readings are held for history and MQTT until it is", "problem", why, "fix", clockFix)
		} else {
			d.log.Info("clock not confirmed by a time server; readings are stamped with it as it is (-clock-hold holds them instead)", "problem", why)
		}
	}
	_ = d.clk.clock.Run(ctx) // ErrStopped at shutdown: nothing to say
}

// clockTrusted is the Clock's OnTrusted: the held readings, stamped with
// the offset between the two clocks now, go to history and MQTT in order.
func (d *daemon) clockTrusted(wall time.Time, mono time.Duration, by string) {
	c := d.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trusted, c.trustWall, c.trustMono = true, wall, mono
	// How far the clock moved from where the start's clock would be now.
	step := wall.Round(0).Sub(c.base.Round(0).Add(mono)).Round(time.Second)
	n, dropped := c.held.Len(), c.held.Dropped()
	c.held.Drain(wall, mono, func(r sensor.Reading, at time.Time, taken time.Duration) {
		r.Time = at
		if d.store != nil {
			d.store.AddAt(r, taken)
		}
		d.publishMQTT(r)
	})
	if n > 0 || d.cfg.ClockHold {
		d.log.Info("clock set: held readings stored with their correct times", "by", by, "step", step.String(), "readings", n, "dropped", dropped)
		return
	}
	d.log.Info("clock set", "by", by, "step", step.String())
}

// clockDown is the clock's part of /healthz's verdict: while readings are
// held, the daemon is degraded.
func (d *daemon) clockDown() string {
	if !d.cfg.ClockHold {
		return ""
	}
	c := d.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trusted {
		return ""
	}
	return fmt.Sprintf("clock not set: %d readings held, not yet stored or sent to MQTT", c.held.Len())
}

// clockHealth is /healthz's view of the clock.
func (d *daemon) clockHealth() health.Clock {
	st := d.clk.clock.Status()
	c := d.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	h := health.Clock{Trusted: st.Trusted, By: st.By, Hold: d.cfg.ClockHold, Held: c.held.Len(), Dropped: c.held.Dropped()}
	if st.Trusted {
		h.Since = st.Since.UnixMilli()
	} else {
		h.Problem, h.Fix = st.Why, clockFix
	}
	return h
}

// writeClockMetrics adds the clock's state to /metrics.
func (d *daemon) writeClockMetrics(m *promtext.Writer) {
	h := d.clockHealth()
	trusted := 0.0
	if h.Trusted {
		trusted = 1
	}
	m.One("sensord_clock_trusted", "gauge", "1 once the wall clock is set (time server, battery-backed clock, or the owner), else 0.", trusted)
	m.One("sensord_clock_held", "gauge", "Readings held for the clock (-clock-hold), not yet stored or sent to MQTT.", float64(h.Held))
	m.One("sensord_clock_held_dropped_total", "counter", "Held readings dropped, oldest first, beyond the bound of a day's readings.", float64(h.Dropped))
}
