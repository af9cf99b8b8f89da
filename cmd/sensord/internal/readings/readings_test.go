package readings

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"sensord/sensor"
	"sensord/sensor/history"
)

func TestQueryParametersParseOrSayWhy(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, query string
		wantErr     string // "" for success
		want        history.Query
		csv         bool
	}{
		{"nothing means the last hour, raw", "", "", history.Query{From: now.Add(-time.Hour), To: now}, false},
		{"RFC 3339 bounds", "from=2026-03-01T00:00:00Z&to=2026-03-01T06:00:00Z&step=15m", "",
			history.Query{From: now.Add(-12 * time.Hour), To: now.Add(-6 * time.Hour), Step: 15 * time.Minute}, false},
		{"millisecond bounds and csv", "from=1772323200000&to=1772326800000&step=raw&format=csv", "",
			history.Query{From: time.UnixMilli(1772323200000), To: time.UnixMilli(1772326800000)}, true},
		{"a bad from", "from=yesterday", "from=\"yesterday\": not RFC 3339", history.Query{}, false},
		{"a bad step", "step=5x", "step=\"5x\" is not raw or a duration", history.Query{}, false},
		{"a step of seconds", "step=30s", "not a whole number of minutes", history.Query{}, false},
		{"from after to", "from=2026-03-02T00:00:00Z", "is not before", history.Query{}, false},
		{"too many steps", "from=2025-01-01T00:00:00Z&step=1m", "too many rows", history.Query{}, false},
		{"a bad format", "format=xml", "format=\"xml\" is not json or csv", history.Query{}, false},
		{"an absurd length", "from=" + strings.Repeat("9", 100), "longer than", history.Query{}, false},
		{"Unix seconds are read as seconds, not as 1970", "from=1772323200&to=1772326800", "",
			history.Query{From: time.Unix(1772323200, 0), To: time.Unix(1772326800, 0)}, false},
		{"a time before 1970", "from=-5", "before 1970", history.Query{}, false},
		{"another part's parameter is left alone", "x=1", "", history.Query{From: now.Add(-time.Hour), To: now}, false},
		{"a parameter given twice", "step=1m&step=1h", "given 2 times", history.Query{}, false},
		{"the guard's token passes", "access_token=x", "", history.Query{From: now.Add(-time.Hour), To: now}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseQuery(v, now)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrParam) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Query.From.Equal(tc.want.From) || !got.Query.To.Equal(tc.want.To) || got.Query.Step != tc.want.Step || got.CSV != tc.csv {
				t.Fatalf("got %+v, want %+v csv=%v", got, tc.want, tc.csv)
			}
		})
	}
}

// FuzzQuery: any query string either parses into a query the store
// accepts, within MaxRows, or fails with ErrParam; never a panic.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"", "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&step=15m", "from=0&to=1&step=raw",
		"step=1h&format=csv", "from=-9999999999999999", "step=-1m", "to=2026-03-01T00:00:00.123+02:00", "from=1e3"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := parseQuery(v, now)
		if err != nil {
			if !errors.Is(err, ErrParam) {
				t.Fatalf("error without ErrParam: %v", err)
			}
			return
		}
		n, err := req.Query.Rows()
		if err != nil || n > history.MaxRows || !req.Query.From.Before(req.Query.To) {
			t.Fatalf("accepted %q as %+v (%d rows, %v)", raw, req.Query, n, err)
		}
	})
}

// store answers every query with pts, or err.
type store struct {
	pts   []history.Point
	err   error
	got   history.Query
	start time.Time
}

func (s *store) Query(_ context.Context, q history.Query) ([]history.Point, error) {
	s.got = q
	return s.pts, s.err
}

func (s *store) Export(_ context.Context, from, to time.Time, start func(bool) error, fn func(history.Point) error) error {
	s.got = history.Query{From: from, To: to}
	if s.err != nil {
		return s.err
	}
	if err := start(false); err != nil {
		return err
	}
	for _, p := range s.pts {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) Start(context.Context) (time.Time, bool, error) {
	return s.start, !s.start.IsZero(), nil
}

func serve(h http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	return rec
}

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func stat(v sensor.Deci) history.Summary { return history.Summary{Mean: v, Min: v - 5, Max: v + 5} }

func TestHistoryAnswersJSONAndCSVFromTheStore(t *testing.T) {
	s := &store{pts: []history.Point{{Time: at.Add(-time.Minute), N: 30, Temperature: stat(214), Humidity: stat(482)}}}
	h := &History{Now: func() time.Time { return at }, Store: s}

	rec := serve(h, "/api/history")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !s.got.To.Equal(at) || !s.got.From.Equal(at.Add(-time.Hour)) {
		t.Errorf("queried %+v, want the hour before the injected now", s.got)
	}
	var rows []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["temperature"] != 21.4 || rows[0]["dew_point"] == nil || rows[0]["n"] != nil {
		t.Errorf("raw rows %v: want the reading with its dew point, no step fields", rows)
	}

	rec = serve(h, "/api/history?step=1m&format=csv")
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), `attachment; filename="sensord-`) ||
		len(lines) != 2 || !strings.HasSuffix(lines[0], ",readings,temperature_min_c,temperature_max_c,humidity_min_percent,humidity_max_percent") ||
		!strings.Contains(lines[1], ",21.4,48.2,") || !strings.HasSuffix(lines[1], ",30,20.9,21.9,47.7,48.7") {
		t.Errorf("CSV %s %q", rec.Header().Get("Content-Type"), lines)
	}
}

func TestARawCSVIsStreamedFromTheExportAndEveryAnswerSaysWhereHistoryStarts(t *testing.T) {
	var pts []history.Point
	for i := range history.MaxRows + 10 {
		pts = append(pts, history.Point{Time: at.Add(-time.Duration(i+1) * time.Second), N: 1, Temperature: stat(214), Humidity: stat(482)})
	}
	s := &store{pts: pts, start: at.Add(-48 * time.Hour)}
	h := &History{Now: func() time.Time { return at }, Store: s}
	rec := serve(h, "/api/history?format=csv&from=2026-02-01T00:00:00Z")
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != 200 || len(lines) != history.MaxRows+11 || !strings.HasSuffix(lines[0], "absolute_humidity_g_m3") {
		t.Fatalf("%d, %d lines (%q...); want the header and every one of %d rows", rec.Code, len(lines), lines[0], len(pts))
	}
	if got := rec.Header().Get(HeaderStart); got != "1772193600000" {
		t.Errorf("%s = %q, want the store's start", HeaderStart, got)
	}
}

func TestHistoryRefusesWhatItCannotAnswer(t *testing.T) {
	h := &History{Now: func() time.Time { return at }, Store: &store{err: history.ErrTooManyRows}}
	for _, tc := range []struct {
		name, target string
		h            *History
		want         int
		refused      uint64
	}{
		{"a bad parameter is a 400, counted", "/api/history?format=xml", h, 400, 1},
		{"a query the store refuses is a 400, counted", "/api/history", h, 400, 2},
		{"a store that fails is a 500", "/api/history", &History{Now: h.Now, Store: &store{err: errors.New("disk I/O error")}}, 500, 0},
		{"a query string that does not parse is a 400, counted", "/api/history?from=%zz", h, 400, 3},
		{"too many long queries is a 429", "/api/history", &History{Now: h.Now, Store: &store{err: history.ErrBusy}}, 429, 0},
		{"a query out of time is a 503", "/api/history", &History{Now: h.Now, Store: &store{err: context.DeadlineExceeded}}, 503, 0},
		{"a shutdown is a 503", "/api/history", &History{Now: h.Now, Store: &store{err: history.ErrClosed}}, 503, 0},
		{"no store is a 503 with the reason", "/api/history", &History{Now: h.Now, Unavailable: "read-only file system"}, 503, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(tc.h, tc.target)
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != tc.want || e["error"] == "" {
				t.Errorf("%d %q, want %d with an error", rec.Code, rec.Body.String(), tc.want)
			}
			if tc.h == h && h.Refused() != tc.refused {
				t.Errorf("Refused = %d, want %d", h.Refused(), tc.refused)
			}
		})
	}
	if rec := serve(&History{Now: h.Now, Store: &store{err: history.ErrBusy}}, "/api/history"); rec.Header().Get("Retry-After") != "2" {
		t.Errorf("429 without Retry-After: %v", rec.Header())
	}
	rec := serve(&History{Now: h.Now, Unavailable: "read-only file system"}, "/api/history")
	if !strings.Contains(rec.Body.String(), "history is unavailable: read-only file system") {
		t.Errorf("503 body %q", rec.Body.String())
	}
}

func TestLatestAnswersTheReadingWithDerivedValuesOr404(t *testing.T) {
	none := Latest(func() (sensor.Derived, bool) { return sensor.Derived{}, false })
	if rec := serve(none, "/api/latest"); rec.Code != 404 || rec.Body.String() != "{\"error\":\"no reading yet\"}\n" {
		t.Errorf("no reading: %d %q", rec.Code, rec.Body.String())
	}
	one := Latest(func() (sensor.Derived, bool) {
		return sensor.Derive(sensor.Reading{Temperature: 214, Humidity: 482, Time: time.UnixMilli(1763856000123)}), true
	})
	rec := serve(one, "/api/latest")
	if want := `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123,"dew_point":10,"absolute_humidity":9`; rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), want) {
		t.Errorf("%d %q, want %s...", rec.Code, rec.Body.String(), want)
	}
}
