package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/cmd/sensord/web"
	"sensord/sensor"
	"sensord/sensor/history"
)

// defaultHistorySpan is what /api/history answers without from: the last
// hour, as the dashboard's first view.
const defaultHistorySpan = time.Hour

// maxHistoryParam bounds each parameter's length: any valid value is far
// shorter, and a longer one is not worth parsing.
const maxHistoryParam = 64

// errHistoryParam marks a bad /api/history parameter (answered with 400).
var errHistoryParam = errors.New("bad parameter")

// historyRequest is a parsed /api/history query.
type historyRequest struct {
	Query history.Query
	CSV   bool
}

// parseHistoryQuery reads from, to (RFC 3339 or Unix milliseconds), step
// (raw, or a whole number of minutes as a duration: 1m, 15m, 1h, 24h) and
// format (json or csv). Missing ones default to the last hour, raw, JSON.
func parseHistoryQuery(v url.Values, now time.Time) (historyRequest, error) {
	var req historyRequest
	for k, vs := range v {
		for _, s := range vs {
			if len(s) > maxHistoryParam {
				return req, fmt.Errorf("%w: %s is longer than %d characters", errHistoryParam, k, maxHistoryParam)
			}
		}
	}
	to := now
	if s := v.Get("to"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return req, fmt.Errorf("%w: to=%q: %v", errHistoryParam, s, err)
		}
		to = t
	}
	from := to.Add(-defaultHistorySpan)
	if s := v.Get("from"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return req, fmt.Errorf("%w: from=%q: %v", errHistoryParam, s, err)
		}
		from = t
	}
	var step time.Duration
	switch s := v.Get("step"); s {
	case "", "raw", "0":
	default:
		d, err := time.ParseDuration(s)
		if err != nil {
			return req, fmt.Errorf("%w: step=%q is not raw or a duration such as 1m, 15m, 1h or 24h", errHistoryParam, s)
		}
		step = d
	}
	switch f := v.Get("format"); f {
	case "", "json":
	case "csv":
		req.CSV = true
	default:
		return req, fmt.Errorf("%w: format=%q is not json or csv", errHistoryParam, f)
	}
	req.Query = history.Query{From: from, To: to, Step: step}
	if _, err := req.Query.Rows(); err != nil {
		return req, fmt.Errorf("%w: %v", errHistoryParam, strings.TrimPrefix(err.Error(), "history: "))
	}
	return req, nil
}

// parseTime reads RFC 3339 (2026-03-01T12:00:00Z) or Unix milliseconds.
func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		// Years 0..9999 only: beyond that time.Time cannot print it.
		if ms < -62135596800000 || ms > 253402300799999 {
			return time.Time{}, errors.New("milliseconds out of range")
		}
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("not RFC 3339 (2026-03-01T12:00:00Z) nor Unix milliseconds")
	}
	return t, nil
}

// historyRow is one row of /api/history: a reading, or a step's mean with
// its min, max and count. Dew point and absolute humidity are derived from
// the row's (mean) temperature and humidity.
type historyRow struct {
	Timestamp        int64        `json:"timestamp"`
	Temperature      sensor.Deci  `json:"temperature"`
	Humidity         sensor.Deci  `json:"humidity"`
	DewPoint         *sensor.Deci `json:"dew_point"` // null in dry air
	AbsoluteHumidity sensor.Deci  `json:"absolute_humidity"`
	N                int          `json:"n,omitempty"`
	TemperatureMin   *sensor.Deci `json:"temperature_min,omitempty"`
	TemperatureMax   *sensor.Deci `json:"temperature_max,omitempty"`
	HumidityMin      *sensor.Deci `json:"humidity_min,omitempty"`
	HumidityMax      *sensor.Deci `json:"humidity_max,omitempty"`
}

func newHistoryRow(p history.Point, stepped bool) historyRow {
	r := historyRow{
		Timestamp:        p.Time.UnixMilli(),
		Temperature:      p.Temperature.Mean,
		Humidity:         p.Humidity.Mean,
		AbsoluteHumidity: sensor.AbsoluteHumidity(p.Temperature.Mean, p.Humidity.Mean),
	}
	if dp, ok := sensor.DewPoint(p.Temperature.Mean, p.Humidity.Mean); ok {
		r.DewPoint = &dp
	}
	if stepped {
		r.N = p.N
		r.TemperatureMin, r.TemperatureMax = &p.Temperature.Min, &p.Temperature.Max
		r.HumidityMin, r.HumidityMax = &p.Humidity.Min, &p.Humidity.Max
	}
	return r
}

// handleHistory serves /api/history from the history store.
func (d *daemon) handleHistory(w http.ResponseWriter, r *http.Request) {
	req, err := parseHistoryQuery(r.URL.Query(), d.now())
	if err != nil {
		d.historyRefused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if d.store == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "history is unavailable: "+d.storeErr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), historyQueryTimeout)
	defer cancel()
	pts, err := d.store.Query(ctx, req.Query)
	switch {
	case errors.Is(err, history.ErrTooManyRows) || errors.Is(err, history.ErrQuery):
		d.historyRefused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "history: "))
		return
	case err != nil:
		httpjson.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	stepped := req.Query.Step > 0
	rows := make([]historyRow, len(pts))
	for i, p := range pts {
		rows[i] = newHistoryRow(p, stepped)
	}
	if req.CSV {
		writeHistoryCSV(w, req.Query, rows, stepped)
		return
	}
	httpjson.Write(w, http.StatusOK, rows)
}

// historyQueryTimeout bounds one /api/history query; a year at an hour a
// step takes well under a second on a Pi.
const historyQueryTimeout = 20 * time.Second

func writeHistoryCSV(w http.ResponseWriter, q history.Query, rows []historyRow, stepped bool) {
	name := fmt.Sprintf("sensord-%s-%s.csv", q.From.UTC().Format("20060102T1504Z"), q.To.UTC().Format("20060102T1504Z"))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	head := []string{"time", "timestamp", "temperature_c", "humidity_percent", "dew_point_c", "absolute_humidity_g_m3"}
	if stepped {
		head = append(head, "readings", "temperature_min_c", "temperature_max_c", "humidity_min_percent", "humidity_max_percent")
	}
	cw.Write(head)
	for _, r := range rows {
		dp := ""
		if r.DewPoint != nil {
			dp = r.DewPoint.String()
		}
		rec := []string{time.UnixMilli(r.Timestamp).UTC().Format(time.RFC3339Nano), strconv.FormatInt(r.Timestamp, 10),
			r.Temperature.String(), r.Humidity.String(), dp, r.AbsoluteHumidity.String()}
		if stepped {
			rec = append(rec, strconv.Itoa(r.N), r.TemperatureMin.String(), r.TemperatureMax.String(), r.HumidityMin.String(), r.HumidityMax.String())
		}
		cw.Write(rec)
	}
	cw.Flush()
}

// latestBody is /api/latest: the sensor_update keys plus derived values.
type latestBody struct {
	Type             string       `json:"type"`
	Temperature      sensor.Deci  `json:"temperature"`
	Humidity         sensor.Deci  `json:"humidity"`
	Timestamp        int64        `json:"timestamp"`
	DewPoint         *sensor.Deci `json:"dew_point"`
	AbsoluteHumidity sensor.Deci  `json:"absolute_humidity"`
}

func withDerived(r sensor.Reading) latestBody {
	b := latestBody{Type: sensor.Type, Temperature: r.Temperature, Humidity: r.Humidity, Timestamp: r.Time.UnixMilli(),
		AbsoluteHumidity: sensor.AbsoluteHumidity(r.Temperature, r.Humidity)}
	if dp, ok := sensor.DewPoint(r.Temperature, r.Humidity); ok {
		b.DewPoint = &dp
	}
	return b
}

// historyFile is the database's name inside -history-dir.
const historyFile = "history.db"

// openHistory opens the store. A store that cannot be opened degrades the
// daemon (no history, the reason in /healthz and the log), never stops it.
func (d *daemon) openHistory() {
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
