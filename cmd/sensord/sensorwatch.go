package main

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"sensord/cmd/sensord/internal/health"
)

const (
	// watchEvery is how often the sensor's health is looked at.
	watchEvery = time.Second
	// repeatEvery bounds the "still failing" lines while the sensor stays
	// down: one a minute keeps the journal readable.
	repeatEvery = time.Minute
)

// sensorWatch turns the poller's counters into one WARN when the sensor
// starts failing, one INFO when it recovers, and at most one repeat a
// minute in between.
type sensorWatch struct {
	d   *daemon
	now func() time.Time

	mu         sync.Mutex // guards the fields below
	failing    bool
	since      time.Time
	readsAt    uint64 // failed reads when the failure began
	lastRepeat time.Time
	state      health.SensorState
	prevErrs   map[string]uint64 // the poller's error counts at the last check
	kind       string            // kind of the latest failed reads (sensor.Kind)
}

func newSensorWatch(d *daemon, now func() time.Time) *sensorWatch {
	return &sensorWatch{d: d, now: now, state: health.SensorState{State: "waiting"}}
}

func (w *sensorWatch) run(ctx context.Context) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check()
		}
	}
}

// current returns the state as of the last check.
func (w *sensorWatch) current() health.SensorState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// check compares the poller's counters with the health window: a sensor
// is failing once no good reading came for the window /healthz uses.
func (w *sensorWatch) check() {
	st := w.d.poller.Stats()
	now := w.now()
	last := st.LastSuccess
	ref := last
	if ref.IsZero() {
		ref = w.d.started
	}
	failed := st.Reads - st.Successes
	_, overdue := health.Window{Period: w.d.cfg.Period}.Overdue(now, last, w.d.started)
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
	problem, fix := explainSensorError(w.kind, st.LastError, w.d.cfg)

	log := w.d.log
	switch {
	case down && !w.failing:
		w.failing, w.since, w.readsAt, w.lastRepeat = true, ref, failed, now
		log.Warn("sensor failing", "sensor", w.d.dev.String(), "problem", problem, "fix", fix, "err", st.LastError)
	case down && now.Sub(w.lastRepeat) >= repeatEvery:
		w.lastRepeat = now
		log.Warn("sensor still failing", "sensor", w.d.dev.String(), "down_for", now.Sub(w.since).Round(time.Second),
			"failed_reads", failed-w.readsAt, "problem", problem, "fix", fix, "err", st.LastError)
	case !down && w.failing && !last.IsZero() && last.After(w.since):
		w.failing = false
		log.Info("sensor recovered", "sensor", w.d.dev.String(), "down_for", last.Sub(w.since).Round(time.Second), "failed_reads", failed-w.readsAt)
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

// explainSensorError says in plain words what an error of kind (as
// sensor.Kind names it) means and what usually fixes it.
func explainSensorError(kind, lastErr string, cfg *config) (problem, fix string) {
	where := "on " + cfg.Pin
	wiring := "check the wiring, the pull-up resistor (4.7-10 kΩ from data to 3.3 V) and that -pin matches"
	if cfg.Sensor != "dht22" && cfg.Sensor != "sim" {
		bus := cfg.Bus
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
