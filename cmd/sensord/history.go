package main

// The history store's wiring: opening it from the flags, its writer
// loop, /api/history over it and its state on /healthz. The store is
// sensor/history, the HTTP side internal/readings.

import (
	"context"
	"os"
	"path/filepath"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/readings"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/cmd/sensord/web"
	"sensord/sensor/history"
)

// historyFile is the database's name inside -history-dir.
const historyFile = "history.db"

// openHistory opens the store and serves /api/history from it. A store
// that cannot be opened degrades the daemon (no history, the reason in
// /healthz, /api/history and the log), never stops it.
func (d *daemon) openHistory() {
	d.history = &readings.History{Now: d.now}
	defer func() { d.history.Unavailable = d.storeErr }()
	path := ""
	if dir := d.cfg.HistoryDir; dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			d.storeErr = err.Error()
			d.log.Error("history unavailable", "err", err, "fix", "check that -history-dir exists and sensord may write to it")
			return
		}
		path = filepath.Join(dir, historyFile)
	}
	o := d.cfg.historyOpts()
	s, err := history.Open(path, &o)
	if err != nil {
		d.storeErr = err.Error()
		d.log.Error("history unavailable", "path", path, "err", err, "fix", "check the disk; move the file aside to start a new history")
		return
	}
	d.store = s
	d.history.Store = s
	if path == "" {
		d.log.Info("history in memory only (-history-dir is empty): it is lost at restart")
	} else {
		d.log.Info("history", "path", path, "raw_retention", o.RawRetention, "retention", o.RollupRetention, "commit_interval", o.CommitInterval)
	}
}

// runHistory is the store's writer; once ctx ends it has written what was
// queued and closes the database.
func (d *daemon) runHistory(ctx context.Context) {
	if err := d.store.Run(ctx); err != nil {
		d.log.Error("history: last write failed", "err", err)
	}
	if err := d.store.Close(); err != nil {
		d.log.Error("history", "err", err)
	}
}

// healthExtra is what /healthz adds for the dashboard.
func (d *daemon) healthExtra() health.Extra {
	o := d.cfg.offsets()
	e := health.Extra{
		Name:        d.name(),
		Calibration: health.Calibration{TemperatureOffset: o.Temperature.Float(), HumidityOffset: o.Humidity.Float()},
		Device:      sysstat.ReadDevice(),
	}
	if d.store == nil {
		e.History.Error = d.storeErr
		return e
	}
	st := d.store.Stats()
	e.History = health.History{Enabled: true, Path: d.store.Path(), Error: st.LastError, Queued: st.Queued, Written: st.Written, Dropped: st.Dropped}
	if !st.LastCommit.IsZero() {
		e.History.LastWrite = st.LastCommit.UnixMilli()
	}
	return e
}

// name is the device's name: -name, which the configuration check fills
// from the hostname when it is not given.
func (d *daemon) name() string { return d.cfg.Name }

// webOptions are the dashboard's options.
func (d *daemon) webOptions() web.Options {
	return web.Options{Name: d.name(), FrameAncestors: d.cfg.FrameAncestors}
}
