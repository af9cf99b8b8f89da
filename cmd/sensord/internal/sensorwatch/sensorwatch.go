// Package sensorwatch turns the poller's counters into one steady verdict
// on the sensor, in words and numbers: the dashboard's banner, /healthz,
// get_status and the journal all show the same one.
//
// The verdict, by what holds at the check (the first row that matches):
//
//	a read has not returned for StuckAfter            stuck
//	no good reading ever, past the health window      failing
//	no good reading for failGap (after there was one) failing
//	no good reading for the health window             degraded
//	no good reading yet, within the start-up grace    waiting
//	>= 20 % of the window's reads failed              degraded
//	(already degraded) >= 10 % of them failed         degraded
//	otherwise                                         ok
//
// The window is the last 10 minutes of reads (shorter after start-up or a
// recovery): a sensor failing half its reads gives the same figure minute
// after minute, and the gap between 20 and 10 % keeps a rate near one
// threshold from flapping. One WARN when the verdict turns bad or changes,
// at most one repeat a minute while it stays bad, one INFO when it is ok
// again (link.Outage's timing, as for the daemon's links).
//
// # Concurrency
//
// Run is called once, from one goroutine; Check, GoodReading, Current and
// Failing are safe from any goroutine.
package sensorwatch

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/link"
	"sensord/sensor"
)

const (
	// watchEvery is how often the sensor's health is looked at.
	watchEvery = time.Second
	// window is the span the failure rate is counted over: long enough
	// that a sensor failing half its reads (a few hundred reads at 2 s)
	// shows the same percentage from one minute to the next.
	window = 10 * time.Minute
	// windowBuckets holds one bucket per check over the window (600 at
	// watchEvery) and some to spare for checks called in between; older
	// buckets are overwritten, so memory stays fixed whatever the period.
	windowBuckets = 640
	// degradedEnter and degradedLeave are the failed share of the
	// window's reads, in percent, that makes the sensor degraded and that
	// it must fall below to be ok again.
	degradedEnter = 20
	degradedLeave = 10
	// minWindowReads: a rate of fewer reads says nothing (1 of 2 is not
	// 50 %).
	minWindowReads = 5
	// failGap is how long without a good reading (after there was one)
	// makes a sensor failing rather than degraded. At a 50 % error rate
	// and the poller's back-off (2, 4, 8 s at a 2 s period) a gap this
	// long needs about 16 failures in a row, once in some 65,000 runs, so
	// a degraded sensor does not flip to failing and back.
	failGap = 2 * time.Minute
)

// Wiring says where the sensor is, for the fixes the watch suggests.
type Wiring struct {
	Sensor string // the -sensor kind: "dht22", "sim" or an I2C chip
	Pin    string // the DHT22's GPIO pin
	Bus    string // the I2C bus ("": the first)
}

// Watch watches one sensor. Every field but Progress and StuckAfter is
// required; set them before Run.
type Watch struct {
	// Stats returns the poller's counters.
	Stats func() sensor.Stats
	// Progress is the poller's Progress: when the last read returned.
	// With StuckAfter > 0, a read that has not returned for that long is
	// a hung read.
	Progress   func() time.Time
	StuckAfter time.Duration
	// Window is /healthz's: a sensor without a good reading for its
	// length is at least degraded.
	Window health.Window
	// Started is when the daemon started, the window's start until the
	// first good reading.
	Started time.Time
	Now     func() time.Time
	Log     *slog.Logger
	Name    string // the sensor as the log names it
	Wiring  Wiring

	mu   sync.Mutex // guards the fields below
	cond health.SensorCondition
	// outage times the journal's lines about a bad verdict: its cause is
	// the verdict, its start when the sensor last read well.
	outage     link.Outage
	readsAt    uint64             // failed reads when the bad verdict began
	state      health.SensorState // zero before the first check
	prevErrs   map[string]uint64  // the poller's error counts at the last check
	prevCauses map[sensor.Cause]uint64
	prevReads  uint64
	prevFailed uint64
	kind       string // kind of the latest failed reads (sensor.ErrorKind)
	// buckets is a ring of the reads each check saw; next is the slot
	// the next check writes, filled how many hold a check.
	buckets [windowBuckets]bucket
	next    int
	filled  int
	// windowFrom is where the window starts: the daemon's start, or the
	// recovery that cleared it.
	windowFrom time.Time
}

// bucket is the reads that ended between two checks.
type bucket struct {
	at           time.Time
	reads, fails uint64
	causes       [sensor.NumCauses]uint64
}

// Run checks every watchEvery until ctx is cancelled.
func (w *Watch) Run(ctx context.Context) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Current returns the verdict as of the last check: waiting before the
// first.
func (w *Watch) Current() health.SensorState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state.State == "" {
		return health.SensorState{State: health.SensorWaiting}
	}
	return w.state
}

// GoodReading judges the sensor again at once when the last verdict was
// waiting, failing or stuck: a good reading ends each of those, and
// /healthz, the banner and the journal should say so with that reading,
// not up to watchEvery later. Under the other verdicts it does nothing,
// so the window's buckets keep their pace of one a check.
func (w *Watch) GoodReading() {
	w.mu.Lock()
	c := w.state.State
	w.mu.Unlock()
	switch c {
	case "", health.SensorWaiting, health.SensorFailing, health.SensorStuck:
		w.Check()
	}
}

// Failing reports whether the last check found the sensor failing: the
// built-in sensor_failing alert follows it. A hung read is not failing
// reads; the no_reading alert covers it.
func (w *Watch) Failing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cond == health.SensorFailing
}

// windowSum is the window's totals.
type windowSum struct {
	reads, fails uint64
	causes       [sensor.NumCauses]uint64
	span         time.Duration
}

// cause is the likely cause of most failed reads the driver told one for.
func (s windowSum) cause() sensor.Cause {
	best, most := sensor.CauseUnknown, uint64(0)
	for c, n := range s.causes {
		if sensor.Cause(c) != sensor.CauseUnknown && n > most {
			best, most = sensor.Cause(c), n
		}
	}
	if most < s.causes[sensor.CauseUnknown] {
		// Most failures the driver could not tell: the kind says more.
		return sensor.CauseUnknown
	}
	return best
}

func (s windowSum) percent() uint64 {
	if s.reads == 0 {
		return 0
	}
	return (s.fails*100 + s.reads/2) / s.reads
}

// Check updates the verdict from the poller's counters.
func (w *Watch) Check() {
	st := w.Stats()
	now := w.Now()
	var progress time.Time
	if w.Progress != nil {
		progress = w.Progress()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.windowFrom.IsZero() {
		w.windowFrom = w.Started
	}
	failed := st.Reads - st.Successes

	// The kind that grew most since the last check is what fails now.
	grew := uint64(0)
	for k, n := range st.Errors {
		if d := n - w.prevErrs[k]; d > grew {
			grew, w.kind = d, k
		}
	}
	w.prevErrs = maps.Clone(st.Errors)
	b := bucket{at: now, reads: st.Reads - w.prevReads, fails: failed - w.prevFailed}
	for c, n := range st.Causes {
		if int(c) < len(b.causes) {
			b.causes[c] = n - w.prevCauses[c]
		}
	}
	w.prevCauses = maps.Clone(st.Causes)
	w.prevReads, w.prevFailed = st.Reads, failed
	if b.reads > 0 {
		w.buckets[w.next] = b
		w.next = (w.next + 1) % windowBuckets
		w.filled = min(w.filled+1, windowBuckets)
	}
	sum := w.sum(now)

	last := st.LastSuccess
	ref := last
	if ref.IsZero() {
		ref = w.Started
	}
	age, overdue := w.Window.Overdue(now, last, w.Started)
	overdue = overdue && st.Reads > st.Successes
	pct := sum.percent()
	rated := sum.reads >= minWindowReads
	var next health.SensorCondition
	switch {
	case w.StuckAfter > 0 && !progress.IsZero() && now.Sub(progress) > w.StuckAfter:
		next = health.SensorStuck
	case overdue && (last.IsZero() || age > failGap):
		next = health.SensorFailing
	case overdue:
		next = health.SensorDegraded
	case last.IsZero():
		next = health.SensorWaiting
	case rated && pct >= degradedEnter, rated && w.cond == health.SensorDegraded && pct >= degradedLeave:
		next = health.SensorDegraded
	default:
		next = health.SensorOK
	}
	if (w.cond == health.SensorFailing || w.cond == health.SensorStuck) && next != health.SensorFailing && next != health.SensorStuck && last.After(w.outage.Since()) {
		// Good readings again after an outage: what the window held was
		// the outage the verdict already said; count afresh.
		w.filled, w.windowFrom = 0, now
		sum = w.sum(now)
		pct, rated = sum.percent(), false
		if next == health.SensorDegraded && !overdue {
			next = health.SensorOK
		}
	}

	cause := sum.cause()
	if next == health.SensorFailing && cause == sensor.CauseUnknown {
		cause = st.LastCause
	}
	problem, fix := Explain(w.kind, cause, st.LastError, w.Wiring)
	var summary string
	switch next {
	case health.SensorStuck:
		problem = fmt.Sprintf("a read of the sensor %s has not returned for %s", where(w.Wiring), now.Sub(progress).Round(time.Second))
		fix = "the sensor or its driver hangs: systemd's watchdog restarts sensord if the read never returns; if it keeps happening, cut the sensor's power for a few seconds (wire its VCC to a GPIO and set -power-pin)"
		summary = "stuck: " + problem
	case health.SensorFailing:
		summary = fmt.Sprintf("failing: no good reading for %s; %s", age.Round(time.Second), problem)
	case health.SensorDegraded:
		if overdue {
			summary = fmt.Sprintf("degraded: no good reading for %s; %d %% of reads failed in the last %s (%d of %d); %s", age.Round(time.Second), pct, span(sum.span), sum.fails, sum.reads, problem)
		} else {
			summary = fmt.Sprintf("degraded: %d %% of reads failed in the last %s (%d of %d); %s", pct, span(sum.span), sum.fails, sum.reads, problem)
		}
	}

	log := w.Log
	args := func(extra ...any) []any {
		a := []any{"sensor", w.Name, "summary", summary, "problem", problem, "fix", fix}
		if cause != sensor.CauseUnknown {
			a = append(a, "cause", cause.String())
		}
		a = append(a, "window_failed", sum.fails, "window_reads", sum.reads)
		return append(append(a, extra...), "err", st.LastError)
	}
	bad := next == health.SensorDegraded || next == health.SensorFailing || next == health.SensorStuck
	switch {
	case bad:
		wasBad := w.outage.IsDown()
		switch w.outage.Fail(now, string(next)) {
		case link.Down:
			if !wasBad {
				// A change between bad verdicts keeps the start and count.
				w.readsAt = failed
				if next != health.SensorDegraded || overdue {
					w.outage.Backdate(ref)
				}
			}
			log.Warn(message(next, false), args()...)
		case link.StillDown:
			log.Warn(message(next, true), args("down_for", now.Sub(w.outage.Since()).Round(time.Second), "failed_reads", failed-w.readsAt)...)
		}
	case w.outage.Up() == link.Back && !last.IsZero():
		since := w.outage.Since()
		end := last
		if end.Before(since) {
			end = now
		}
		log.Info("sensor recovered", "sensor", w.Name, "down_for", end.Sub(since).Round(time.Second), "failed_reads", failed-w.readsAt,
			"window_failed", sum.fails, "window_reads", sum.reads)
	}
	w.cond = next
	w.state = health.SensorState{State: next, WindowReads: sum.reads, WindowFailed: sum.fails, WindowSeconds: sum.span.Round(time.Second).Seconds()}
	if bad {
		w.state.Summary, w.state.Problem, w.state.Fix = summary, problem, fix
		w.state.Since, w.state.FailedReads = w.outage.Since().UnixMilli(), failed-w.readsAt
		if cause != sensor.CauseUnknown {
			w.state.Cause = cause.String()
		}
	}
}

// sum totals the buckets within the window ending at now.
func (w *Watch) sum(now time.Time) windowSum {
	from := now.Add(-window)
	if w.windowFrom.After(from) {
		from = w.windowFrom
	}
	s := windowSum{span: now.Sub(from)}
	for i := range w.filled {
		b := &w.buckets[(w.next-1-i+2*windowBuckets)%windowBuckets]
		if !b.at.After(from) {
			break // older ones are older still
		}
		s.reads += b.reads
		s.fails += b.fails
		for c := range b.causes {
			s.causes[c] += b.causes[c]
		}
	}
	return s
}

// span says a window's length as a person would: "10 minutes",
// "3 minutes", "40 s".
func span(d time.Duration) string {
	switch m := int(d.Round(time.Minute) / time.Minute); {
	case d < 90*time.Second:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	default:
		return fmt.Sprintf("%d minutes", m)
	}
}

// message is the journal line's message for a bad verdict.
func message(c health.SensorCondition, still bool) string {
	switch {
	case c == health.SensorStuck && still:
		return "sensor read still hung"
	case c == health.SensorStuck:
		return "sensor read hung"
	case still:
		return "sensor still " + string(c)
	}
	return "sensor " + string(c)
}

// where names the sensor's place: "on GPIO4" or "on /dev/i2c-1".
func where(wr Wiring) string {
	if wr.Sensor != "dht22" && wr.Sensor != "sim" {
		bus := wr.Bus
		if bus == "" {
			bus = "the first I2C bus"
		}
		return "on " + bus
	}
	return "on " + wr.Pin
}

// Explain says in plain words what failing reads mean for the sensor
// wired as wr, and what usually fixes it: from their cause when the driver
// told one, else from their kind (as sensor.ErrorKind names it; lastErr is the
// last error itself).
func Explain(kind string, cause sensor.Cause, lastErr string, wr Wiring) (problem, fix string) {
	at := where(wr)
	wiring := "check the wiring, the pull-up resistor (4.7-10 kΩ from data to 3.3 V) and that -pin matches"
	if wr.Sensor != "dht22" && wr.Sensor != "sim" {
		wiring = "check the wiring (SDA, SCL, 3.3 V, GND), that I2C is enabled and that -sensor and -i2c-bus match"
	}
	if cause != sensor.CauseUnknown {
		return cause.Problem(at), cause.Fix(wiring)
	}
	switch kind {
	case "timeout":
		return "no answer from the sensor " + at, wiring
	case "short_frame":
		return "the sensor's answer " + at + " is cut short", "check for a loose wire or a long cable; " + wiring
	case "checksum":
		return "the sensor's answers " + at + " arrive garbled (checksum errors)", "check for a loose wire, a long or unshielded cable, or a missing pull-up resistor"
	case "out_of_range":
		return "the sensor " + at + " reports impossible values", "check that -sensor names the chip that is wired; a damaged sensor does this too"
	case "implausible":
		return "the readings jump too far to be believed", "check for a loose wire; readings resume once they settle"
	case "":
		if lastErr == "" {
			return "no good reading from the sensor " + at + " yet", wiring
		}
	}
	return fmt.Sprintf("the sensor %s fails: %s", at, lastErr), wiring
}
