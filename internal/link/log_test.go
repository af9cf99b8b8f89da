package link

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogWarnsOnceRepeatsAMinuteAndSaysWhenItIsBack(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer // one goroutine: the test's
	l := NewLog("client mode", "check -url", slog.New(slog.NewTextHandler(&out, nil)), func() time.Time { return clock })
	count := func(s string) int { return strings.Count(out.String(), s) }

	l.Up("url", "ws://x")
	for range 5 {
		clock = clock.Add(10 * time.Second)
		l.Failed("connection refused")
	}
	if count(`msg="client mode connected"`) != 1 || count(`level=WARN msg="client mode link down"`) != 1 || count("still down") != 0 {
		t.Fatalf("want one connected and one WARN in the first minute, got:\n%s", out.String())
	}
	clock = clock.Add(20 * time.Second)
	l.Failed("connection refused")
	if count(`msg="client mode link still down"`) != 1 || !strings.Contains(out.String(), "failed_attempts=6") {
		t.Fatalf("want one repeat after a minute, got:\n%s", out.String())
	}
	clock = clock.Add(5 * time.Second)
	l.Up()
	if count(`level=INFO msg="client mode link restored"`) != 1 || !strings.Contains(out.String(), "down_for=1m5s") {
		t.Fatalf("want one INFO with the downtime, got:\n%s", out.String())
	}
}

func TestOutageTellsWhatIsNews(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var o Outage
	type step struct {
		name string
		do   func() News
		want News
	}
	for i, s := range []step{
		{"a failure before any success is news", func() News { return o.Fail(t0, "refused") }, Down},
		{"the same failure soon after is not", func() News { return o.Fail(t0.Add(30*time.Second), "refused") }, Quiet},
		{"another cause is news at once", func() News { return o.Fail(t0.Add(40*time.Second), "timeout") }, Down},
		{"the same cause within a minute of that line is not", func() News { return o.Fail(t0.Add(90*time.Second), "timeout") }, Quiet},
		{"a minute after the last line it is", func() News { return o.Fail(t0.Add(100*time.Second), "timeout") }, StillDown},
		{"success ends the outage", o.Up, Back},
		{"success again is not news", o.Up, Quiet},
	} {
		if got := s.do(); got != s.want {
			t.Fatalf("step %d, %s: got %v, want %v", i, s.name, got, s.want)
		}
	}
	if o.IsDown() || !o.Since().Equal(t0) || o.Failures() != 5 {
		t.Errorf("after the outage: down %v, since %s, failures %d; want up, %s, 5", o.IsDown(), o.Since(), o.Failures(), t0)
	}
	var fresh Outage
	if got := fresh.Up(); got != First {
		t.Errorf("first success: got %v, want First", got)
	}
	fresh.Fail(t0, "")
	fresh.Backdate(t0.Add(-time.Minute))
	if !fresh.Since().Equal(t0.Add(-time.Minute)) {
		t.Errorf("backdated outage began %s, want %s", fresh.Since(), t0.Add(-time.Minute))
	}
}
