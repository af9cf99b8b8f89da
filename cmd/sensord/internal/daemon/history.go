package daemon

// The history store's wiring: opening it from the flags, its writer
// loop, /api/history over it and its state on /healthz. The store is
// sensor/history, the HTTP side internal/readings.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/readings"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/cmd/sensord/web"
	"sensord/image/paths"
	"sensord/internal/link"
	"sensord/sensor/history"
)

// historyFile is the database's name inside -history-dir.
const historyFile = paths.HistoryFile

// startTimeout bounds looking up where the history starts for /healthz:
// three indexed reads, milliseconds; /healthz answers without it rather
// than wait.
const startTimeout = time.Second

// openHistory opens the store and serves /api/history from it. A store
// that cannot be opened degrades the daemon (no history, the reason in
// /healthz, /api/history and the log), never stops it.
func (d *daemon) openHistory() {
	d.history = &readings.History{Now: d.now}
	d.backup = &readings.Backup{Now: d.now, Name: d.name(), History: d.history}
	d.restore = &readings.Restore{History: d.history}
	defer func() {
		d.history.Unavailable, d.backup.Unavailable, d.restore.Unavailable = d.storeErr, d.storeErr, d.storeErr
	}()
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
	// One monotonic clock for the held readings and the store's steps.
	o.Mono = d.mono
	d.writes = link.NewLogWords(link.Words{Down: "history cannot be written", StillDown: "history still cannot be written", Back: "history writes resumed"},
		"", d.log, time.Now)
	o.OnError = func(err error) { d.writes.Failed(err.Error(), "fix", writeFix(err)) }
	o.OnCommit = func(history.Commit) { d.writes.Up() }
	s, err := history.Open(path, &o)
	if err != nil {
		d.storeErr = err.Error()
		d.log.Error("history unavailable", "path", path, "err", err, "fix", openFix(err))
		return
	}
	d.store = s
	d.history.Store = s
	d.backup.Store = s
	d.restore.Store = s
	if path == "" {
		d.log.Info("history in memory only (-history-dir is empty): it is lost at restart")
	} else {
		d.log.Info("history", "path", path, "raw_retention", o.RawRetention, "retention", o.RollupRetention, "commit_interval", o.CommitInterval)
	}
}

// openFix is what to do about a store that cannot be opened: never
// anything that loses the history.
func openFix(err error) string {
	switch {
	case errors.Is(err, history.ErrInUse):
		return "another sensord uses this -history-dir: stop it (systemctl stop sensord), or give this one its own -history-dir"
	case errors.Is(err, history.ErrNewerSchema):
		return "a newer sensord wrote this history: run that version, or give this one its own -history-dir"
	case errors.Is(err, history.ErrDamaged):
		return "the file is damaged: keep it, copy it off the card and restore a backup (README: Backup and restore) into a new -history-dir"
	}
	return "check that the disk is mounted, has free space and that sensord may write to -history-dir; sensord leaves the file as it is"
}

// writeFix is what to do about commits that fail.
func writeFix(err error) string {
	switch {
	case errors.Is(err, history.ErrDiskFull):
		return "free space on the disk that holds -history-dir (or shorten -history-retention); writes resume by themselves"
	case errors.Is(err, history.ErrReadOnly):
		return "the disk or the file became read-only: check the card (dmesg) and the file's permissions"
	case errors.Is(err, history.ErrDamaged):
		return "the database file is damaged: download a backup, then restore it or start sensord with a new -history-dir"
	}
	return "check the disk that holds -history-dir (dmesg); writes are retried every commit interval"
}

// historyDown is the history's part of /healthz's verdict: "" while
// commits succeed; while they fail, why and since when. It degrades the
// daemon, never fails it: the watchdog does not look at it.
func (d *daemon) historyDown() string {
	st := d.store.Stats()
	if st.Err == nil {
		return ""
	}
	msg := fmt.Sprintf("history cannot be written since %s: %s", st.FailingSince.UTC().Format(time.RFC3339), st.LastError)
	if st.Dropped > 0 {
		msg += fmt.Sprintf("; %d readings lost", st.Dropped)
	}
	return msg + "; " + writeFix(st.Err)
}

// historyRoutes mounts the history's HTTP surface. A restore changes the
// history: like every POST it passes the owner's gate in front of the mux
// (routes).
func (d *daemon) historyRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/history", d.history)
	mux.Handle("GET /api/history/backup", d.backup)
	mux.Handle("POST /api/history/restore", d.restore)
}

// historyOutput is the store as an output; nil when it could not be
// opened.
func (d *daemon) historyOutput() outputs.Output {
	if d.store == nil {
		return nil
	}
	return historyReadings{d: d}
}

// historyReadings adds every reading whose time is true to the store's
// queue, which never waits for the disk.
type historyReadings struct{ d *daemon }

func (o historyReadings) Publish(r outputs.Reading) {
	if r.Timed() {
		o.d.store.AddAt(r.Reading, r.Mono)
	}
}

func (o historyReadings) Run(ctx context.Context) { o.d.runHistory(ctx) }

// Health fills /healthz's history part, and a failing write is one of
// its warnings too.
func (o historyReadings) Health(h *health.Report) string {
	d := o.d
	st := d.store.Stats()
	e := &h.Extra.History
	*e = health.History{Enabled: true, Path: d.store.Path(), Error: st.LastError, Queued: st.Queued, Written: st.Written, Dropped: st.Dropped}
	if !st.LastCommit.IsZero() {
		e.LastWrite = st.LastCommit.UnixMilli()
	}
	if !st.FailingSince.IsZero() {
		e.FailingSince = st.FailingSince.UnixMilli()
		e.Fix = writeFix(st.Err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if t, ok, err := d.store.Start(ctx); err == nil && ok {
		e.Start = t.UnixMilli()
	}
	why := d.historyDown()
	if why != "" {
		h.Warnings = append(slices.Clone(h.Warnings), why)
	}
	return why
}

func (o historyReadings) Metrics(m *promtext.Writer) {
	hs := o.d.store.Stats()
	m.One("sensord_history_written_total", promtext.Counter, "Readings committed to the history database.", float64(hs.Written))
	m.One("sensord_history_dropped_total", promtext.Counter, "Readings the history lost (queue full while the disk failed).", float64(hs.Dropped))
	m.One("sensord_history_commit_failures_total", promtext.Counter, "History commits that failed (retried).", float64(hs.Failed))
	m.One("sensord_history_queued", promtext.Gauge, "Readings waiting for the next history commit.", float64(hs.Queued))
	failing := 0.0
	if hs.Err != nil {
		failing = 1
	}
	m.One("sensord_history_write_failing", promtext.Gauge, "1 while history commits fail (a full disk, a damaged file), else 0.", failing)
}

// writeHistoryRequestMetrics adds /api/history's refusals to /metrics,
// with or without a store.
func (d *daemon) writeHistoryRequestMetrics(m *promtext.Writer) {
	m.One("sensord_history_requests_refused_total", promtext.Counter, "/api/history requests answered 400 (bad parameters, too many rows) and restores refused for their file.", float64(d.history.Refused()))
	m.One("sensord_history_requests_busy_total", promtext.Counter, "History queries answered 429: more long queries at once than the store runs.", float64(d.history.Busy()))
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

// healthExtra is what /healthz adds for the dashboard; the history
// output fills in its part when there is a store.
func (d *daemon) healthExtra() health.Extra {
	o := d.cfg.offsets()
	e := health.Extra{
		Calibration: health.Calibration{TemperatureOffset: o.Temperature.Float(), HumidityOffset: o.Humidity.Float()},
		Device:      sysstat.ReadDevice(),
	}
	e.History.Error = d.storeErr
	return e
}

// name is the device's name: -name, which the configuration check fills
// from the hostname when it is not given.
func (d *daemon) name() string { return d.cfg.Name }

// webOptions are the dashboard's options.
func (d *daemon) webOptions() web.Options {
	return web.Options{Name: d.name(), FrameAncestors: d.cfg.FrameAncestors}
}
