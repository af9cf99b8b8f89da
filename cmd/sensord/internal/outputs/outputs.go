// Package outputs is the one path a reading takes: the poller hands each
// reading, with its derived values computed once, to a list of outputs
// behind one small interface, none of which knows the others (ESPHome's
// sensor and its subscribers). An optional output that is not configured
// is simply not in the list, so the daemon never asks whether it exists.
//
// # Concurrency
//
// Publish is called from the poller's goroutine and, for the readings
// held for the clock, from the clock's; an output's Publish must be safe
// for both and must never wait for a network or a disk. Run is called
// once, from a goroutine of its own. Health and Metrics may be called from
// any goroutine at any time.
package outputs

import (
	"context"
	"sync"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/sensor"
)

// Reading is one reading as every output gets it: calibrated, with its
// derived values, and how far its time can be trusted.
type Reading struct {
	sensor.Derived
	// Held: taken while the wall clock is not yet set (-clock-hold). Its
	// time is not yet true, so it goes live (the WebSocket paths, client
	// mode, the alerts) but not to history or MQTT, which get it Late.
	Held bool
	// Late: a held reading handed over again once the clock is set, with
	// its true time. It went live when it was taken: only the outputs that
	// skipped it then take it now.
	Late bool
	// Mono is when it was taken on the daemon's monotonic clock (the
	// history store's AddAt orders by it).
	Mono time.Duration
}

// Live reports whether r goes to the live outputs: every reading when it
// is taken, never again when it comes Late.
func (r Reading) Live() bool { return !r.Late }

// Timed reports whether r goes to the outputs that keep or forward its
// time (history, MQTT): not while it is held, once it comes Late.
func (r Reading) Timed() bool { return !r.Held }

// Output is one place readings go.
type Output interface {
	// Publish hands over r; it never waits for a network or a disk.
	Publish(r Reading)
	// Run is the output's loop, until ctx ends; it returns at once for an
	// output without one.
	Run(ctx context.Context)
	// Health adds the output's part to /healthz's report and says why the
	// output degrades the daemon ("" while it works). A degraded output
	// never fails the daemon: the watchdog does not look at outputs.
	Health(h *health.Report) (down string)
	// Metrics writes the output's metric families.
	Metrics(w *promtext.Writer)
}

// List is the outputs in the order they get each reading.
type List []Output

// Of lists outs in order, leaving out the nil ones (the outputs that are
// not configured).
func Of(outs ...Output) List {
	l := make(List, 0, len(outs))
	for _, o := range outs {
		if o != nil {
			l = append(l, o)
		}
	}
	return l
}

// Publish hands r to every output in order.
func (l List) Publish(r Reading) {
	for _, o := range l {
		o.Publish(r)
	}
}

// Run runs every output's loop, each in its own goroutine of wg, until
// ctx ends.
func (l List) Run(ctx context.Context, wg *sync.WaitGroup) {
	for _, o := range l {
		wg.Go(func() { o.Run(ctx) })
	}
}

// Health adds every output's part to h and returns the first reason one
// gives for degrading the daemon ("" when none does).
func (l List) Health(h *health.Report) (down string) {
	for _, o := range l {
		if why := o.Health(h); why != "" && down == "" {
			down = why
		}
	}
	return down
}

// Metrics writes every output's metric families.
func (l List) Metrics(w *promtext.Writer) {
	for _, o := range l {
		o.Metrics(w)
	}
}
