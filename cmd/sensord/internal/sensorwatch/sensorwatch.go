// Package sensorwatch turns the poller's counters into the sensor's health
// in words: one WARN when the sensor starts failing, with the problem and
// the likely fix in plain language, at most one repeat a minute while it
// stays down, one INFO when it recovers, and the state the dashboard's
// banner, /healthz and get_status show.
//
// # Concurrency
//
// Run is called once, from one goroutine; Check and Current are safe from
// any goroutine.
package sensorwatch

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/sensor"
)

const (
	// watchEvery is how often the sensor's health is looked at.
	watchEvery = time.Second
	// repeatEvery bounds the "still failing" lines while the sensor stays
	// down: one a minute keeps the journal readable.
	repeatEvery = time.Minute
)

// Wiring says where the sensor is, for the fixes the watch suggests.
type Wiring struct {
	Sensor string // the -sensor kind: "dht22", "sim" or an I2C chip
	Pin    string // the DHT22's GPIO pin
	Bus    string // the I2C bus ("": the first)
}

// Watch watches one sensor. Every field is required; set them before Run.
type Watch struct {
	// Stats returns the poller's counters.
	Stats func() sensor.Stats
	// Window is /healthz's: the sensor fails once no good reading came
	// for its length.
	Window health.Window
	// Started is when the daemon started, the window's start until the
	// first good reading.
	Started time.Time
	Now     func() time.Time
	Log     *slog.Logger
	Name    string // the sensor as the log names it
	Wiring  Wiring

	mu         sync.Mutex // guards the fields below
	failing    bool
	since      time.Time
	readsAt    uint64 // failed reads when the failure began
	lastRepeat time.Time
	state      health.SensorState // "" before the first check
	prevErrs   map[string]uint64  // the poller's error counts at the last check
	kind       string             // kind of the latest failed reads (sensor.Kind)
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

// Current returns the state as of the last check: "waiting" before the
// first.
func (w *Watch) Current() health.SensorState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state.State == "" {
		return health.SensorState{State: "waiting"}
	}
	return w.state
}

// Check compares the poller's counters with the health window: a sensor
// is failing once no good reading came for the window /healthz uses.
func (w *Watch) Check() {
	st := w.Stats()
	now := w.Now()
	last := st.LastSuccess
	ref := last
	if ref.IsZero() {
		ref = w.Started
	}
	failed := st.Reads - st.Successes
	_, overdue := w.Window.Overdue(now, last, w.Started)
	down := overdue && st.Reads > st.Successes
	w.mu.Lock()
	defer w.mu.Unlock()
	// The kind that grew most since the last check is what fails now.
	grew := uint64(0)
	for k, n := range st.Errors {
		if d := n - w.prevErrs[k]; d > grew {
			grew, w.kind = d, k
		}
	}
	w.prevErrs = maps.Clone(st.Errors)
	problem, fix := Explain(w.kind, st.LastError, w.Wiring)

	log := w.Log
	switch {
	case down && !w.failing:
		w.failing, w.since, w.readsAt, w.lastRepeat = true, ref, failed, now
		log.Warn("sensor failing", "sensor", w.Name, "problem", problem, "fix", fix, "err", st.LastError)
	case down && now.Sub(w.lastRepeat) >= repeatEvery:
		w.lastRepeat = now
		log.Warn("sensor still failing", "sensor", w.Name, "down_for", now.Sub(w.since).Round(time.Second),
			"failed_reads", failed-w.readsAt, "problem", problem, "fix", fix, "err", st.LastError)
	case !down && w.failing && !last.IsZero() && last.After(w.since):
		w.failing = false
		log.Info("sensor recovered", "sensor", w.Name, "down_for", last.Sub(w.since).Round(time.Second), "failed_reads", failed-w.readsAt)
	}
	switch {
	case w.failing:
		w.state = health.SensorState{State: "failing", Problem: problem, Fix: fix, Since: w.since.UnixMilli(), FailedReads: failed - w.readsAt}
	case last.IsZero():
		w.state = health.SensorState{State: "waiting"}
	default:
		w.state = health.SensorState{State: "ok"}
	}
}

// Explain says in plain words what an error of kind (as sensor.Kind
// names it; lastErr is the error itself) means for the sensor wired as
// wr, and what usually fixes it.
func Explain(kind, lastErr string, wr Wiring) (problem, fix string) {
	where := "on " + wr.Pin
	wiring := "check the wiring, the pull-up resistor (4.7-10 kΩ from data to 3.3 V) and that -pin matches"
	if wr.Sensor != "dht22" && wr.Sensor != "sim" {
		bus := wr.Bus
		if bus == "" {
			bus = "the first I2C bus"
		}
		where = "on " + bus
		wiring = "check the wiring (SDA, SCL, 3.3 V, GND), that I2C is enabled and that -sensor and -i2c-bus match"
	}
	switch kind {
	case "timeout":
		return "no answer from the sensor " + where, wiring
	case "short_frame":
		return "the sensor's answer " + where + " is cut short", "check for a loose wire or a long cable; " + wiring
	case "checksum":
		return "the sensor's answers " + where + " arrive garbled (checksum errors)", "check for a loose wire, a long or unshielded cable, or a missing pull-up resistor"
	case "out_of_range":
		return "the sensor " + where + " reports impossible values", "check that -sensor names the chip that is wired; a damaged sensor does this too"
	case "implausible":
		return "the readings jump too far to be believed", "check for a loose wire; readings resume once they settle"
	case "":
		if lastErr == "" {
			return "no good reading from the sensor " + where + " yet", wiring
		}
	}
	return fmt.Sprintf("the sensor %s fails: %s", where, lastErr), wiring
}

// Failing reports whether the last check found the sensor failing: the
// built-in sensor_failing alert follows it.
func (w *Watch) Failing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failing
}
