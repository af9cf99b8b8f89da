package main

import (
	"errors"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
	"sensord/sensor/history"
)

func TestHistoryParametersParseOrSayWhy(t *testing.T) {
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseHistoryQuery(v, now)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errHistoryParam) || !strings.Contains(err.Error(), tc.wantErr) {
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

// FuzzHistoryQuery: any query string either parses into a query the store
// accepts, within MaxRows, or fails with errHistoryParam; never a panic.
func FuzzHistoryQuery(f *testing.F) {
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
		req, err := parseHistoryQuery(v, now)
		if err != nil {
			if !errors.Is(err, errHistoryParam) {
				t.Fatalf("error without errHistoryParam: %v", err)
			}
			return
		}
		n, err := req.Query.Rows()
		if err != nil || n > history.MaxRows || !req.Query.From.Before(req.Query.To) {
			t.Fatalf("accepted %q as %+v (%d rows, %v)", raw, req.Query, n, err)
		}
	})
}

// historyCount asks the daemon how many readings it holds in [from, now].
func historyCount(t *testing.T, p *proc, from time.Time) int {
	t.Helper()
	var rows []struct{ N int }
	u := "http://" + p.addr + "/api/history?step=24h&from=" + url.QueryEscape(from.Format(time.RFC3339Nano))
	if code := getJSON(t, u, &rows); code != 200 {
		t.Fatalf("%s: %d", u, code)
	}
	n := 0
	for _, r := range rows {
		n += r.N
	}
	return n
}

func TestHistorySurvivesSIGTERMAndSIGKILL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"-history-dir", dir, "-history-commit-interval", "1s"}
	began := time.Now().Add(-time.Second)

	// SIGTERM flushes what is queued: everything counted before is there after.
	p := start(t, nil, args...)
	testutil.Until(t, 30*time.Second, func() bool { return historyCount(t, p, began) >= 20 },
		func() string { return "no 20 readings in the history" })
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	var before int
	{
		p2 := start(t, nil, args...)
		before = historyCount(t, p2, began)
		if before < 20 {
			t.Fatalf("after a restart %d readings, want at least the 20 seen before", before)
		}
		// SIGKILL loses at most the commit interval's readings: wait for
		// a commit past the restart's, then kill.
		testutil.Until(t, 30*time.Second, func() bool { return historyCount(t, p2, began) >= before+30 },
			func() string { return "no new readings after the restart" })
		// Kill once a commit has happened after those were counted.
		seen := time.Now().UnixMilli()
		testutil.Until(t, 30*time.Second, func() bool {
			var h health.Report
			getJSON(t, "http://"+p2.addr+"/healthz", &h)
			return h.Extra.History.LastWrite > seen
		}, func() string { return "no commit after the restart" })
		p2.stop(t, syscall.SIGKILL)
	}
	p3 := start(t, nil, args...)
	if after := historyCount(t, p3, began); after < before+30 {
		t.Fatalf("after SIGKILL %d readings, want the %d before it and those committed since", after, before)
	}
}
