package linklog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLinkLogWarnsOnceRepeatsAMinuteAndSaysWhenItIsBack(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer // one goroutine: the test's
	l := New("client mode", "check -url", slog.New(slog.NewTextHandler(&out, nil)), func() time.Time { return clock })
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
