package main

import (
	"net/url"
	"syscall"
	"testing"
	"time"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
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
