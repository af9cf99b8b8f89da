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
}

// Latest serves /api/latest from the newest good reading (false before
// the first, answered 404).
type Latest func() (sensor.Reading, bool)

// ServeHTTP implements http.Handler.
func (l Latest) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if rd, ok := l(); ok {
		httpjson.Write(w, http.StatusOK, withDerived(rd))
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
}

// Refused counts the requests answered 400 (bad parameters, too many rows).
func (h *History) Refused() uint64 { return h.refused.Load() }

// ServeHTTP implements http.Handler.
func (h *History) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := parseQuery(r.URL.Query(), h.Now())
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
	pts, err := h.Store.Query(ctx, req.Query)
	switch {
	case errors.Is(err, history.ErrTooManyRows) || errors.Is(err, history.ErrQuery):
		h.refused.Add(1)
		httpjson.WriteError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "history: "))
		return
	case err != nil:
		httpjson.WriteError(w, http.StatusInternalServerError, err.Error())
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

// queryTimeout bounds one /api/history query; a year at an hour a
// step takes well under a second on a Pi.
const queryTimeout = 20 * time.Second

// request is a parsed /api/history query.
type request struct {
	Query history.Query
	CSV   bool
}

// parseQuery reads from, to (RFC 3339 or Unix milliseconds), step
// (raw, or a whole number of minutes as a duration: 1m, 15m, 1h, 24h) and
// format (json or csv). Missing ones default to the last hour, raw, JSON.
func parseQuery(v url.Values, now time.Time) (request, error) {
	var req request
	for k, vs := range v {
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
	r := row{
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

func writeCSV(w http.ResponseWriter, q history.Query, rows []row, stepped bool) {
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
