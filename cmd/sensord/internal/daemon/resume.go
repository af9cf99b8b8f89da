package daemon

// /ws/sensors?since=<ms>: a client that reconnects gets the readings it
// missed from the history store, then the live stream, each reading once.

import (
	"context"
	"time"

	"sensord/broadcast"
	"sensord/sensor"
	"sensord/sensor/history"
)

const (
	// resumeMax is how far back ?since= reaches: a day, which a laptop
	// that slept overnight needs; an older since starts a day back.
	resumeMax = 24 * time.Hour
	// maxResumeReadings bounds one resume: a day at the default 2 s
	// period (about 4 MB of frames until written). At a faster period
	// the newest this many of the day are sent.
	maxResumeReadings = 43200
)

// resumeSensors is /ws/sensors' Resumer. The seam: publish adds a reading
// to the store and publishes it on /ws/sensors under seamMu, so at take
// every reading published is in the store, none newer than lastPublished;
// everything published after take comes live and is newer. Readings are
// keyed by their timestamp.
func (d *daemon) resumeSensors(ctx context.Context, since time.Time, take func()) ([]broadcast.Message, error) {
	d.seamMu.Lock()
	take()
	until := d.lastPublished
	d.seamMu.Unlock()
	if until.IsZero() {
		// Nothing published by this run yet: what the store holds is from
		// earlier runs, stamped before this one started.
		until = d.started.Add(-time.Millisecond)
	}
	from := since.Add(time.Millisecond) // after since
	if oldest := d.now().Add(-resumeMax); from.Before(oldest) {
		from = oldest
	}
	to := until.Add(time.Millisecond) // up to until, inclusive
	if !from.Before(to) {
		return nil, nil
	}
	// The newest maxResumeReadings, in a circle: next is the oldest's
	// place once it is full.
	var rs []sensor.Reading
	next := 0
	err := d.store.Export(ctx, from, to, func(bool) error { return nil }, func(p history.Point) error {
		if p.N != 1 {
			return nil // a rollup: those readings are past raw retention
		}
		r := sensor.Reading{Temperature: p.Temperature.Mean, Humidity: p.Humidity.Mean, Time: p.Time}
		if len(rs) < maxResumeReadings {
			rs = append(rs, r)
			return nil
		}
		rs[next] = r
		next = (next + 1) % maxResumeReadings
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]broadcast.Message, 0, len(rs))
	for i := range rs {
		out = append(out, broadcast.Message{Topic: d.cfg.Topic, Payload: rs[(next+i)%len(rs)]})
	}
	return out, nil
}
