package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
	"sensord/sensor"
	"sensord/sensor/history"
)

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

func TestASecondSensordOnTheSameHistorySaysAnotherHoldsItAndRunsOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start(t, nil, "-history-dir", dir)
	began := time.Now()
	p2 := start(t, nil, "-history-dir", dir)
	if took := time.Since(began); took > testutil.Scale(5*time.Second) {
		t.Errorf("the second sensord took %s to answer; it must not wait for the lock", took)
	}
	var h health.Report
	getJSON(t, "http://"+p2.addr+"/healthz", &h)
	logs := p2.logs()
	if !strings.Contains(h.Extra.History.Error, "in use by another sensord") || !strings.Contains(logs, "another sensord") ||
		strings.Contains(logs, "aside") || strings.Contains(logs, "new history") {
		t.Fatalf("healthz history error %q, log:\n%s\nwant the other sensord named and no advice that loses the history", h.Extra.History.Error, logs)
	}
}

func TestTheBackupIsAWholeDatabaseAndARestoreIsRefusedWithoutTheOwner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, nil, "-history-dir", dir, "-history-commit-interval", "1s", "-owner-token", historyOwner)
	began := time.Now().Add(-time.Second)
	testutil.Until(t, 30*time.Second, func() bool {
		var h health.Report
		getJSON(t, "http://"+p.addr+"/healthz", &h)
		return h.Extra.History.Written >= 20
	}, func() string { return "no 20 readings committed" })
	resp, err := http.Get("http://" + p.addr + "/api/history/backup")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="sensord-history-`) ||
		resp.ContentLength != int64(len(body)) {
		t.Fatalf("backup: %d %v %v, %d of %d bytes", resp.StatusCode, err, resp.Header, len(body), resp.ContentLength)
	}
	// The file opens on its own, while sensord runs on, with the readings.
	file := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := history.Open(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(context.Background(), history.Query{From: began, To: time.Now(), Step: 24 * time.Hour})
	s.Close()
	if err != nil || len(got) == 0 || got[0].N < 20 {
		t.Fatalf("the backup holds %+v (%v); want the 20 readings committed", got, err)
	}

	// A restore is the owner's: refused without the owner token, in
	// words; taken with it.
	restore := func(header string) (int, string) {
		req, err := http.NewRequest("POST", "http://"+p.addr+"/api/history/restore", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/vnd.sqlite3")
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(msg)
	}
	if code, msg := restore(""); code != http.StatusUnauthorized || !strings.Contains(msg, "owner") {
		t.Fatalf("restore without the owner token: %d %s; want 401 in words", code, msg)
	}
	if code, msg := restore("Bearer " + historyOwner); code != http.StatusOK || !strings.Contains(msg, `"restored":true`) {
		t.Fatalf("restore with the owner token: %d %s; want 200 restored", code, msg)
	}
}

// historyOwner is the owner token of the backup and restore test.
const historyOwner = "history-owner-0123"

func TestAFullDiskWarnsDegradesHealthCountsDropsAndRecovers(t *testing.T) {
	t.Parallel()
	dir := testutil.SmallDisk(t, "size=2m")
	p := start(t, nil, "-history-dir", dir, "-history-commit-interval", "1s")
	health := func() (int, health.Report) {
		var h health.Report
		code := getJSON(t, "http://"+p.addr+"/healthz", &h)
		return code, h
	}
	testutil.Until(t, 30*time.Second, func() bool { _, h := health(); return h.Extra.History.Written > 0 },
		func() string { return "nothing committed" })
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for range 1 << 12 {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	testutil.Until(t, 30*time.Second, func() bool { return strings.Contains(p.logs(), "history cannot be written") },
		func() string { return "no WARN line for a full disk:\n" + p.logs() })
	code, h := health()
	if code != 200 || h.Status != "degraded" || !strings.Contains(h.Reason, "disk is full") || !strings.Contains(h.Reason, "free space") ||
		h.Extra.History.FailingSince == 0 || len(h.Warnings) == 0 {
		t.Fatalf("healthz %d %+v; want 200 degraded naming the full disk and the fix", code, h)
	}
	metrics := getText(t, "http://"+p.addr+"/metrics")
	if !strings.Contains(metrics, "sensord_history_write_failing 1") || !strings.Contains(metrics, "sensord_history_commit_failures_total") {
		t.Fatalf("metrics do not show the failing writes:\n%s", metrics)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.Until(t, 30*time.Second, func() bool { return strings.Contains(p.logs(), "history writes resumed") },
		func() string { return "no INFO line once space was freed:\n" + p.logs() })
	testutil.Until(t, 10*time.Second, func() bool { code, h := health(); return code == 200 && h.Status == "ok" },
		func() string { _, h := health(); return "healthz still " + h.Status + ": " + h.Reason })
	if n := strings.Count(p.logs(), "history cannot be written"); n != 1 {
		t.Errorf("%d WARN lines for one outage shorter than a minute, want 1", n)
	}
}

func TestUnderTwentyYearQueriesSensordAnswers429NeverA500AndStopsInSeconds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	end := time.Now().Truncate(time.Hour)
	{
		s, err := history.Open(filepath.Join(dir, "history.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		var mins []history.Point
		// A minute row every ten minutes: every hour row of the year, at a
		// tenth of the import's time.
		for ts := end.Add(-365 * 24 * time.Hour); ts.Before(end); ts = ts.Add(10 * time.Minute) {
			v := sensor.Deci(200 + ts.Unix()/60%50)
			mins = append(mins, history.Point{Time: ts, N: 30, Temperature: history.Summary{Min: v - 3, Mean: v, Max: v + 3}, Humidity: history.Summary{Min: 400, Mean: 450, Max: 500}})
		}
		if err := s.Import(context.Background(), nil, mins); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	p := start(t, nil, "-history-dir", dir, "-history-commit-interval", "1s")
	year := fmt.Sprintf("http://%s/api/history?from=%d&step=1h", p.addr, end.Add(-365*24*time.Hour+time.Minute).UnixMilli())
	var mu sync.Mutex
	seen := map[int]int{}
	count := func(code int) int { mu.Lock(); defer mu.Unlock(); return seen[code] }
	load, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for load.Err() == nil {
				req, _ := http.NewRequestWithContext(load, "GET", year, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the daemon has stopped
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("429 without Retry-After")
					}
					// A client that polls again soon, sooner than asked.
					select {
					case <-load.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
				mu.Lock()
				seen[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	// A script's one-hour query is answered beside the load.
	testutil.Until(t, 60*time.Second, func() bool { return count(200) >= 4 && count(429) >= 4 },
		func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprintf("answers so far: %v", seen) })
	var rows []map[string]any
	if code := getJSON(t, "http://"+p.addr+"/api/history", &rows); code != 200 {
		t.Errorf("a one-hour query under load: %d", code)
	}
	began := time.Now()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM under load", code)
	}
	took := time.Since(began)
	t.Logf("SIGTERM under load: stopped in %s", took)
	if took > testutil.Scale(5*time.Second) {
		t.Errorf("SIGTERM under twenty year-long queries took %s, want a few seconds", took)
	}
	stopLoad()
	wg.Wait()
	t.Logf("answers under load: %v", seen)
	if seen[200] == 0 || seen[http.StatusTooManyRequests] == 0 || seen[http.StatusInternalServerError] > 0 {
		t.Errorf("answers %v: want 200s, 429s beyond the bound and never a 500", seen)
	}
}
