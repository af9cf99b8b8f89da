// Package readings serves sensord's readings to scripts over plain HTTP:
// /api/latest, the newest reading with the values derived from it, and
// /api/history, the stored readings of a span, raw or a step at a time,
// as JSON or CSV. It knows the store only by its Query, and HTTP not at
// all beyond these two handlers.
//
// # Concurrency
//
// The handlers are read-only once built (History's counter is atomic) and
// safe for concurrent use, as long as their funcs and Store are.
package readings

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"sensord/cmd/sensord/internal/httpjson"
	"sensord/sensor"
	"sensord/sensor/history"
)

// defaultSpan is what /api/history answers without from: the last
// hour, as the dashboard's first view.
const defaultSpan = time.Hour

// maxParam bounds each parameter's length: any valid value is far
// shorter, and a longer one is not worth parsing.
const maxParam = 64

// ErrParam marks a bad /api/history parameter (answered with 400).
var ErrParam = errors.New("bad parameter")

// Store is what History needs of the history store.
type Store interface {
	Query(ctx context.Context, q history.Query) ([]history.Point, error)
	// Export streams a raw range without a row limit (format=csv).
	Export(ctx context.Context, from, to time.Time, start func(minutes bool) error, fn func(history.Point) error) error
	// Start is the oldest reading held, for the History-Start header.
	Start(ctx context.Context) (time.Time, bool, error)
}

// retryAfter is what a 429 asks a client to wait: a heavy query takes
// about a second on a Pi, so one has usually ended by then.
const retryAfter = 2 * time.Second

// HeaderStart carries the time of the oldest reading held, in Unix ms, on
// every /api/history answer that has one: where the history begins.
const HeaderStart = "History-Start"

// secondsBelow: a number in from= or to= below it is Unix seconds
// (until the year 5138), at or above it Unix milliseconds (from March
// 1973 on). No reading is older than 1973, so a number in milliseconds
// is never read as seconds, nor a number in seconds as 1970.
const secondsBelow = 100_000_000_000

// params are the parameters /api/history reads and checks; access_token
// is the guard's (-token). Others are left alone.
var params = map[string]bool{"from": true, "to": true, "step": true, "format": true, "access_token": true}

// Latest serves /api/latest from the newest good reading with its derived
// values (false before the first, answered 404).
type Latest func() (sensor.Derived, bool)

// ServeHTTP implements http.Handler.
func (l Latest) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if rd, ok := l(); ok {
		httpjson.Write(w, http.StatusOK, FrameOf(rd))
		return
	}
	httpjson.WriteError(w, http.StatusNotFound, "no reading yet")
}

// History serves /api/history.
type History struct {
	// Now is the clock that "the last hour" and a missing to= count from.
	Now func() time.Time
	// Store answers the queries; nil when the store could not be opened,
	// for the reason in Unavailable (answered 503).
	Store       Store
	Unavailable string

	refused atomic.Uint64 // requests answered 400
	busy    atomic.Uint64 // requests answered 429
}

// Refused counts the requests answered 400 (bad parameters, too many rows).
func (h *History) Refused() uint64 { return h.refused.Load() }

// Busy counts the requests answered 429 (too many long queries at once).
func (h *History) Busy() uint64 { return h.busy.Load() }

// ServeHTTP implements http.Handler.
func (h *History) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.refused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, fmt.Sprintf("%v: the query string does not parse: %v", ErrParam, err))
		return
	}
	req, err := parseQuery(v, h.Now())
	if err != nil {
		h.refused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if h.Store == nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "history is unavailable: "+h.Unavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	if start, ok, err := h.Store.Start(ctx); err == nil && ok {
		w.Header().Set(HeaderStart, strconv.FormatInt(start.UnixMilli(), 10))
	}
	if req.CSV && req.Query.Step == 0 {
		h.export(w, r, req.Query)
		return
	}
	pts, err := h.Store.Query(ctx, req.Query)
	if err != nil {
		h.fail(w, err)
		return
	}
	stepped := req.Query.Step > 0
	rows := make([]row, len(pts))
	for i, p := range pts {
		rows[i] = newRow(p, stepped)
	}
	if req.CSV {
		writeCSV(w, req.Query, rows, stepped)
		return
	}
	httpjson.Write(w, http.StatusOK, rows)
}

// fail answers a query the store could not answer, in words: 400 for a
// query it refuses, 429 with Retry-After while too many long queries
// run, 503 when it is shutting down or the query ran out of time, 507
// for a full disk, 500 for the rest.
func (h *History) fail(w http.ResponseWriter, err error) {
	msg := strings.TrimPrefix(err.Error(), "history: ")
	switch {
	case errors.Is(err, history.ErrTooManyRows) || errors.Is(err, history.ErrQuery):
		h.refused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, msg)
	case errors.Is(err, history.ErrBusy):
		h.busy.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		httpjson.WriteError(w, http.StatusTooManyRequests, msg+"; try again in a few seconds")
	case errors.Is(err, history.ErrClosed):
		httpjson.WriteError(w, http.StatusServiceUnavailable, "sensord is shutting down; try again once it is back")
	case errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		httpjson.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("the query took longer than %s; ask for a shorter range or a coarser step", queryTimeout))
	case errors.Is(err, history.ErrDiskFull):
		httpjson.WriteError(w, http.StatusInsufficientStorage, msg)
	default:
		httpjson.WriteError(w, http.StatusInternalServerError, msg)
	}
}

// export streams a raw range as CSV without a row limit: rollup rows
// where the raw readings have been purged, every reading after.
func (h *History) export(w http.ResponseWriter, r *http.Request, q history.Query) {
	ctx, cancel := context.WithTimeout(r.Context(), exportTimeout)
	defer cancel()
	rc := http.NewResponseController(w)
	var cw *csv.Writer
	stepped, rows := false, 0
	err := h.Store.Export(ctx, q.From, q.To, func(minutes bool) error {
		stepped = minutes
		csvHead(w, q)
		cw = csv.NewWriter(w)
		return cw.Write(csvHeader(stepped))
	}, func(p history.Point) error {
		rows++
		if rows%exportChunk == 0 {
			// The server's write timeout is for one answer of ordinary size;
			// an export gets it afresh for each chunk it sends.
			rc.SetWriteDeadline(time.Now().Add(exportChunkWait)) //nolint:errcheck // a recorder in tests has none
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
		}
		return cw.Write(csvRecord(newRow(p, stepped), stepped))
	})
	switch {
	case err == nil:
		cw.Flush()
	case cw == nil:
		h.fail(w, err) // nothing sent yet: an answer in words
	default:
		// Part of the file is out: a trailing line a reader cannot miss,
		// and the connection is cut so no client takes it as whole.
		cw.Flush()
		fmt.Fprintf(w, "# export stopped: %s\n", strings.TrimPrefix(err.Error(), "history: "))
		panic(http.ErrAbortHandler)
	}
}

// queryTimeout bounds one /api/history query; a year at an hour a
// step takes well under a second on a Pi.
const queryTimeout = 20 * time.Second

// exportTimeout bounds one CSV export: a week of readings every 2 s is
// 300,000 rows, ~25 MB, a minute or two over slow Wi-Fi.
const exportTimeout = 10 * time.Minute

// exportChunk rows (~80 KiB) go out between two write deadlines, each
// exportChunkWait away: a client that takes longer for one is gone.
const (
	exportChunk     = 1000
	exportChunkWait = 30 * time.Second
)

// request is a parsed /api/history query.
type request struct {
	Query history.Query
	CSV   bool
}

// parseQuery reads from, to (RFC 3339, Unix seconds or milliseconds), step
// (raw, or a whole number of minutes as a duration: 1m, 15m, 1h, 24h) and
// format (json or csv). Missing ones default to the last hour, raw, JSON.
func parseQuery(v url.Values, now time.Time) (request, error) {
	var req request
	for k, vs := range v {
		if !params[k] {
			continue // another part's (a cache buster, a proxy's): not ours to refuse
		}
		if len(vs) > 1 {
			return req, fmt.Errorf("%w: %s is given %d times", ErrParam, k, len(vs))
		}
		for _, s := range vs {
			if len(s) > maxParam {
				return req, fmt.Errorf("%w: %s is longer than %d characters", ErrParam, k, maxParam)
			}
		}
	}
	to := now
	if s := v.Get("to"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return req, fmt.Errorf("%w: to=%q: %v", ErrParam, s, err)
		}
		to = t
	}
	from := to.Add(-defaultSpan)
	if s := v.Get("from"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return req, fmt.Errorf("%w: from=%q: %v", ErrParam, s, err)
		}
		from = t
	}
	var step time.Duration
	switch s := v.Get("step"); s {
	case "", "raw", "0":
	default:
		d, err := time.ParseDuration(s)
		if err != nil {
			return req, fmt.Errorf("%w: step=%q is not raw or a duration such as 1m, 15m, 1h or 24h", ErrParam, s)
		}
		step = d
	}
	switch f := v.Get("format"); f {
	case "", "json":
	case "csv":
		req.CSV = true
	default:
		return req, fmt.Errorf("%w: format=%q is not json or csv", ErrParam, f)
	}
	req.Query = history.Query{From: from, To: to, Step: step}
	if _, err := req.Query.Rows(); err != nil {
		return req, fmt.Errorf("%w: %v", ErrParam, strings.TrimPrefix(err.Error(), "history: "))
	}
	return req, nil
}

// parseTime reads RFC 3339 (2026-03-01T12:00:00Z), Unix milliseconds
// or Unix seconds (told apart by size: secondsBelow).
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 0:
			return time.Time{}, errors.New("is before 1970: give Unix seconds or milliseconds since 1970, or RFC 3339")
		case n < secondsBelow:
			return time.Unix(n, 0), nil
		case n > 253402300799999: // beyond the year 9999 time.Time cannot print it
			return time.Time{}, errors.New("is after the year 9999")
		}
		return time.UnixMilli(n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("not RFC 3339 (2026-03-01T12:00:00Z), Unix seconds nor Unix milliseconds")
	}
	return t, nil
}

// row is one row of /api/history: a reading, or a step's mean with
// its min, max and count. Dew point and absolute humidity are derived from
// the row's (mean) temperature and humidity.
type row struct {
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

func newRow(p history.Point, stepped bool) row {
	d := sensor.Derive(sensor.Reading{Temperature: p.Temperature.Mean, Humidity: p.Humidity.Mean, Time: p.Time})
	r := row{
		Timestamp:        p.Time.UnixMilli(),
		Temperature:      d.Temperature,
		Humidity:         d.Humidity,
		DewPoint:         dewPoint(d),
		AbsoluteHumidity: d.AbsoluteHumidity,
	}
	if stepped {
		r.N = p.N
		r.TemperatureMin, r.TemperatureMax = &p.Temperature.Min, &p.Temperature.Max
		r.HumidityMin, r.HumidityMax = &p.Humidity.Min, &p.Humidity.Max
	}
	return r
}

func writeCSV(w http.ResponseWriter, q history.Query, rows []row, stepped bool) {
	csvHead(w, q)
	cw := csv.NewWriter(w)
	cw.Write(csvHeader(stepped))
	for _, r := range rows {
		cw.Write(csvRecord(r, stepped))
	}
	cw.Flush()
}

// csvHead sets the headers of a CSV answer: a file to save, named after
// its range.
func csvHead(w http.ResponseWriter, q history.Query) {
	name := fmt.Sprintf("sensord-%s-%s.csv", q.From.UTC().Format("20060102T1504Z"), q.To.UTC().Format("20060102T1504Z"))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
}

func csvHeader(stepped bool) []string {
	head := []string{"time", "timestamp", "temperature_c", "humidity_percent", "dew_point_c", "absolute_humidity_g_m3"}
	if stepped {
		head = append(head, "readings", "temperature_min_c", "temperature_max_c", "humidity_min_percent", "humidity_max_percent")
	}
	return head
}

// csvRecord is r as a CSV record; a row without its step fields (a raw
// reading in a stepped file) counts one reading.
func csvRecord(r row, stepped bool) []string {
	dp := ""
	if r.DewPoint != nil {
		dp = r.DewPoint.String()
	}
	rec := []string{time.UnixMilli(r.Timestamp).UTC().Format(time.RFC3339Nano), strconv.FormatInt(r.Timestamp, 10),
		r.Temperature.String(), r.Humidity.String(), dp, r.AbsoluteHumidity.String()}
	if stepped {
		rec = append(rec, strconv.Itoa(r.N), r.TemperatureMin.String(), r.TemperatureMax.String(), r.HumidityMin.String(), r.HumidityMax.String())
	}
	return rec
}

// Frame is a reading with the values derived from it: the
// sensor_update keys, then dew_point (null in dry air) and
// absolute_humidity. /api/latest answers with it and the dashboard hub
// (/ws/dashboard) carries readings in it, so no client computes them;
// /ws/sensors keeps Node-RED's four keys.
type Frame struct {
	Type             string       `json:"type"`
	Temperature      sensor.Deci  `json:"temperature"`
	Humidity         sensor.Deci  `json:"humidity"`
	Timestamp        int64        `json:"timestamp"`
	DewPoint         *sensor.Deci `json:"dew_point"`
	AbsoluteHumidity sensor.Deci  `json:"absolute_humidity"`
}

// FrameOf is r as a Frame.
func FrameOf(r sensor.Derived) Frame {
	return Frame{Type: sensor.Type, Temperature: r.Temperature, Humidity: r.Humidity, Timestamp: r.Time.UnixMilli(),
		DewPoint: dewPoint(r), AbsoluteHumidity: r.AbsoluteHumidity}
}

// dewPoint is r's dew point for JSON: null in dry air.
func dewPoint(r sensor.Derived) *sensor.Deci {
	if !r.HasDewPoint {
		return nil
	}
	return &r.DewPoint
}
