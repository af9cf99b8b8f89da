package broadcast

import (
	"context"
	"strings"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// The watchdog gate takes time.Since(Progress()). That is real time only if
// Progress carries the monotonic clock reading, as the poller's does: a
// wall-only time would make a wall-clock step (NTP at boot, on a Pi without
// an RTC) look like a broadcaster stuck for years, or alive in the future.
func TestProgressIsMonotonicAndRecent(t *testing.T) {
	s := NewServer(&ServerOpts{PingInterval: 20 * time.Millisecond}) // the loop ticks every 20 ms
	t.Cleanup(func() { s.Close(context.Background()) })
	first := s.Progress()
	if !strings.Contains(first.String(), " m=") {
		t.Errorf("Progress() before the first tick = %v: no monotonic clock reading", first)
	}
	testutil.Until(t, 20*time.Second, func() bool { return s.Progress().After(first) },
		func() string { return "Progress never moved: the loop does not tick" })
	p := s.Progress()
	if !strings.Contains(p.String(), " m=") {
		t.Errorf("Progress() = %v: no monotonic clock reading, so time.Since(Progress()) follows the wall clock", p)
	}
	// The loop ticks every 20 ms: its last tick is recent, and not ahead.
	if d := time.Since(p); d < 0 || d > testutil.Scale(5*time.Second) {
		t.Errorf("time.Since(Progress()) = %v, want between 0 and a few ticks", d)
	}
	later := p
	testutil.Until(t, 20*time.Second, func() bool { later = s.Progress(); return later.Sub(p) >= 100*time.Millisecond },
		func() string { return "Progress stopped moving" })
	if d := time.Since(later); d < 0 || d > testutil.Scale(5*time.Second) {
		t.Errorf("time.Since(Progress()) = %v after more ticks, want between 0 and a few ticks", d)
	}
}

// With an injected clock, Progress is that clock's time of the last tick.
func TestProgressFollowsTheInjectedClock(t *testing.T) {
	start := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	calls := 0
	now := func() time.Time { // called by NewServer, then by the loop only
		calls++
		return start.Add(time.Duration(calls) * time.Hour)
	}
	s := NewServer(&ServerOpts{PingInterval: 20 * time.Millisecond, Now: now})
	t.Cleanup(func() { s.Close(context.Background()) })
	testutil.Until(t, 20*time.Second, func() bool { return s.Progress().Sub(start) >= 3*time.Hour },
		func() string { return "Progress = " + s.Progress().String() + ", want the injected clock's ticks" })
	if p := s.Progress(); p.Sub(start)%time.Hour != 0 {
		t.Errorf("Progress() = %v, want one of the injected clock's times", p)
	}
}
