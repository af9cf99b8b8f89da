package daemon

import (
	"context"
	"encoding/json"
	"path/filepath"
	"time"

	"sensord/image/paths"
	"sensord/image/update"
)

// runVerdict writes sensord's verdict on itself (update.Verdict) to
// dir/verdict every update.VerdictInterval until ctx ends, for the A/B
// update's health gate (package update, "What commits a trial"). dir is
// $RUNTIME_DIRECTORY, the unit's RuntimeDirectory= in RAM; without it
// (make run, a laptop) nothing is written.
//
// The loops start after READY=1 is sent and the HTTP listeners serve, and
// sensord exits when a listener fails, so while this runs those hold;
// alive adds the watchdog's test (the sensor loop and the broadcasters
// make progress). The sensor is reading when a good reading came within
// update.SensorFresh.
func (d *daemon) runVerdict(ctx context.Context, dir string) {
	if dir == "" {
		return
	}
	path := filepath.Join(dir, paths.VerdictName)
	t := time.NewTicker(update.VerdictInterval)
	defer t.Stop()
	var seq uint64
	warned := false
	for {
		seq++
		b, err := json.Marshal(d.verdict(seq, time.Now()))
		if err == nil {
			err = update.WriteFileAtomic(path, b)
		}
		switch {
		case err != nil && !warned:
			d.log.Warn("cannot write the verdict for the update's health gate", "path", path, "err", err)
			warned = true
		case err == nil && warned:
			d.log.Info("verdict for the update's health gate written again", "path", path)
			warned = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// verdict is the daemon's state now.
func (d *daemon) verdict(seq uint64, now time.Time) update.Verdict {
	v := update.Verdict{Seq: seq, Version: d.cfg.Build, Alive: true}
	if err := d.healthy(); err != nil {
		v.Alive, v.Problem = false, err.Error()
	}
	st := d.poller.Stats()
	v.SensorReading = st.Successes > 0 && now.Sub(st.LastSuccess) <= update.SensorFresh
	v.SensorWaiting = st.Reads == 0
	if !v.SensorReading {
		v.SensorProblem = "no good reading within " + update.SensorFresh.String()
		if st.LastError != "" {
			v.SensorProblem += "; last error: " + st.LastError
		}
	}
	return v
}
