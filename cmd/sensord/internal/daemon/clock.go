package daemon

// The wall clock's trust and the readings held for it: with -clock-hold,
// a reading taken before the clock is set goes live to the WebSocket
// paths as it is, but waits in memory for history and MQTT; once the
// clock is set it is stamped from its monotonic time and stored and
// published in order (internal/timesync has the rule).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/timesync"
	"sensord/image/paths"
	"sensord/internal/atomicfile"
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
	// refused counts POST /api/clock requests refused.
	refused atomic.Uint64

	mu        sync.Mutex // guards the fields below, and orders the drain before every later reading
	trusted   bool
	held      *timesync.Hold[sensor.Derived]
	trustWall time.Time // the two clocks read when it became trusted
	trustMono time.Duration
}

// newClock builds the clock's watch on the system's signals.
func (d *daemon) newClock() {
	base := time.Now()
	d.clk = &clockHold{base: base, held: timesync.NewHold[sensor.Derived](maxHeld)}
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
func (d *daemon) hold(r *sensor.Derived, mono time.Duration) bool {
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
	c.held.Drain(wall, mono, func(r sensor.Derived, at time.Time, taken time.Duration) {
		r.Time = at
		d.outs.Publish(outputs.Reading{Derived: r, Late: true, Mono: taken})
	})
	if n > 0 {
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
	m.One("sensord_clock_trusted", promtext.Gauge, "1 once the wall clock is set (time server, battery-backed clock, or the owner), else 0.", trusted)
	m.One("sensord_clock_held", promtext.Gauge, "Readings held for the clock (-clock-hold), not yet stored or sent to MQTT.", float64(h.Held))
	m.One("sensord_clock_held_dropped_total", promtext.Counter, "Held readings dropped, oldest first, beyond the bound of a day's readings.", float64(h.Dropped))
	m.One("sensord_clock_requests_refused_total", promtext.Counter, "Requests to set the clock (POST /api/clock) refused: a bad body, no clock helper, a failed hand-over.", float64(d.clk.refused.Load()))
}

// clockAnswer is POST /api/clock's answer.
type clockAnswer struct {
	Trusted bool   `json:"trusted"`
	By      string `json:"by,omitempty"`
	// Requested: the clock differed and the root helper was asked to set it.
	Requested bool   `json:"requested,omitempty"`
	Message   string `json:"message"`
}

// setClock is POST /api/clock, {"time": <the browser's Date.now()>}, owner
// only (routes' gate). A clock within timesync.Agree of the browser's is
// confirmed as it is; otherwise sensord, which may not set the clock,
// leaves the request for the root helper (sensord-setclock.path) and
// trusts the clock once it reads what the browser said.
func (d *daemon) setClock(w http.ResponseWriter, r *http.Request) {
	c := d.clk.clock
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, timesync.MaxRequestBytes))
	if err != nil {
		d.clk.refused.Add(1)
		httpjson.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(`the body is larger than %d bytes; send {"time": <milliseconds since 1970>}`, timesync.MaxRequestBytes))
		return
	}
	target, err := timesync.ParseRequest(body)
	if err != nil {
		d.clk.refused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), timesync.ErrRequest.Error()+": "))
		return
	}
	if st := c.Status(); st.Trusted {
		httpjson.Write(w, http.StatusOK, clockAnswer{Trusted: true, By: st.By, Message: "the clock is already set (by " + st.By + "); nothing changed"})
		return
	}
	c.Expect(target, d.mono())
	if c.Check() {
		c.Trust()
		d.log.Info("clock confirmed by the owner's browser", "off_by", time.Now().Round(0).Sub(target).Round(time.Millisecond).String())
		httpjson.Write(w, http.StatusOK, clockAnswer{Trusted: true, By: timesync.BySetting, Message: "the clock agrees with this browser's: confirmed"})
		return
	}
	off := time.Now().Round(0).Sub(target).Round(time.Second)
	if d.cfg.RuntimeDir == "" {
		d.clk.refused.Add(1)
		httpjson.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("the clock is %s off this browser's and this sensord cannot set it (it runs without the image's clock helper): set the system clock (timedatectl set-time) and it follows", off))
		return
	}
	req := filepath.Join(d.cfg.RuntimeDir, paths.ClockRequestName)
	if err := atomicfile.WriteFile(req, timesync.Request(target, boottime()), 0o600); err != nil {
		d.clk.refused.Add(1)
		httpjson.WriteError(w, http.StatusInternalServerError, "could not pass the request on: "+err.Error())
		return
	}
	d.log.Info("owner asked to set the clock from the browser", "to", target.UTC().Format(time.RFC3339), "off_by", off.String())
	httpjson.Write(w, http.StatusAccepted, clockAnswer{Requested: true, Message: fmt.Sprintf("the clock is %s off this browser's: asked the system to set it; readings are stored once it is", off)})
}

// boottime is CLOCK_BOOTTIME, the clock sensord-setclock reads as
// /proc/uptime.
func boottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
