package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sensord/internal/testutil"
)

func TestWatchdogReturnsAtOnceWithoutAWatchdog(t *testing.T) {
	tests := []struct {
		name          string
		socket        bool
		usec, pid     string
		wantErrPrefix string // "" = nil
	}{
		{name: "no NOTIFY_SOCKET", socket: false, usec: "200000"},
		{name: "no WATCHDOG_USEC", socket: true, usec: ""},
		{name: "WATCHDOG_PID names another process", socket: true, usec: "200000", pid: "1"},
		{name: "WATCHDOG_USEC not a number is an error", socket: true, usec: "30s", wantErrPrefix: "systemd: watchdog: "},
		{name: "WATCHDOG_USEC zero is an error", socket: true, usec: "0", wantErrPrefix: "systemd: watchdog: "},
		{name: "WATCHDOG_PID not a number is an error", socket: true, usec: "200000", pid: "me", wantErrPrefix: "systemd: watchdog: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.socket {
				fakeSystemd(t)
			} else {
				t.Setenv("NOTIFY_SOCKET", "")
			}
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err := Watchdog(ctx, func() error { return nil }, nil)
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v, want at once", took)
			}
			switch {
			case tt.wantErrPrefix == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.wantErrPrefix != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErrPrefix)):
				t.Errorf("got %v, want an error starting %q", err, tt.wantErrPrefix)
			}
		})
	}
}

// setWatchdog sets the environment systemd gives a service with WatchdogSec=.
func setWatchdog(t *testing.T, timeout time.Duration) {
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(timeout.Microseconds(), 10))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
}

func TestWatchdogPingsAtHalfTheInterval(t *testing.T) {
	conn := fakeSystemd(t)
	// Scaled: on a loaded machine every tick is late by the scheduling
	// delay, which must stay small next to timeout/2 for the mean to tell
	// timeout/2 from timeout.
	timeout := testutil.Scale(300 * time.Millisecond)
	setWatchdog(t, timeout)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, func() error { return nil }, nil) }()

	// The first ping goes out at once; then one every timeout/2.
	const intervals = 8
	var arrivals []time.Time
	for range intervals + 1 {
		if got := recv(t, conn, testutil.Scale(5*time.Second)); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
		arrivals = append(arrivals, time.Now())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watchdog returned %v after cancel, want nil", err)
	}

	mean := arrivals[intervals].Sub(arrivals[1]) / (intervals - 1)
	want := timeout / 2
	t.Logf("mean ping interval %v (want about %v)", mean, want)
	// Bounds loose enough for -race on a busy 2-core machine, tight enough to
	// tell timeout/2 from timeout or from a free-running loop.
	if mean < want*3/4 || mean > want*3/2 {
		t.Errorf("mean ping interval %v, want about %v", mean, want)
	}
	if first := arrivals[1].Sub(arrivals[0]); first > timeout {
		t.Errorf("second ping %v after the first, want about %v", first, want)
	}
}

func TestWatchdogStopsWhileUnhealthyAndResumes(t *testing.T) {
	conn := fakeSystemd(t)
	timeout := testutil.Scale(200 * time.Millisecond) // a ping every 100 ms (scaled: see above)
	setWatchdog(t, timeout)
	var sick atomic.Bool
	healthy := func() error {
		if sick.Load() {
			return errors.New("sensor loop: no progress for 6s")
		}
		return nil
	}
	var logs testutil.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, healthy, log) }()

	for range 3 {
		recv(t, conn, 5*time.Second)
	}
	sick.Store(true)
	// A check already past healthy() may still ping once; after that, none.
	// 8 periods of silence is 4 times what systemd needs to kill the service.
	late := 0
	deadline := time.Now().Add(8 * timeout / 2)
	for {
		if _, ok := tryRecv(conn, time.Until(deadline)); !ok {
			break
		}
		late++
	}
	if late > 1 {
		t.Errorf("%d pings while unhealthy, want at most 1 already in flight", late)
	}
	sick.Store(false)
	start := time.Now()
	if got := recv(t, conn, 5*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", got)
	}
	if took := time.Since(start); took > timeout {
		t.Errorf("pings resumed %v after recovery, want within one period (%v)", took, timeout/2)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	t.Logf("log:\n%s", out)
	if n := strings.Count(out, "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want exactly 1", n)
	}
	if !strings.Contains(out, `level=WARN msg="systemd watchdog pings stopped" reason="sensor loop: no progress for 6s"`) {
		t.Errorf("no warning naming the reason")
	}
	if n := strings.Count(out, `msg="systemd watchdog pings resumed"`); n != 1 {
		t.Errorf("%d resume lines, want exactly 1", n)
	}
}

// record is one log record, kept as a line for easy comparison.
type recordHandler struct {
	mu    sync.Mutex
	lines []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.Key + "=" + a.Value.String()
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, line)
	h.mu.Unlock()
	return nil
}

func TestWatchdogTickByTick(t *testing.T) {
	stuck := errors.New("sensor loop: no progress for 6s")
	alsoStuck := errors.New("broadcaster: no progress for 9s")
	refused := errors.New("connection refused")
	tests := []struct {
		name      string
		health    []error // healthy()'s answer at start and at each tick
		send      []error // notify's result for each ping attempted
		wantPings int
		wantLog   []string
	}{
		{
			name:      "a healthy daemon pings at start and at every tick, logging nothing more",
			health:    []error{nil, nil, nil},
			wantPings: 3,
			wantLog:   []string{"INFO systemd watchdog enabled timeout=30s ping_every=15s"},
		},
		{
			name:      "an unhealthy spell withholds pings, warns once with the first reason, and says when they resume",
			health:    []error{nil, stuck, alsoStuck, stuck, nil, nil},
			wantPings: 3,
			wantLog: []string{
				"INFO systemd watchdog enabled timeout=30s ping_every=15s",
				"WARN systemd watchdog pings stopped reason=sensor loop: no progress for 6s restart_within=30s",
				"INFO systemd watchdog pings resumed after=45s was=sensor loop: no progress for 6s",
			},
		},
		{
			name:      "a daemon unhealthy from the start never pings",
			health:    []error{stuck, stuck},
			wantPings: 0,
			wantLog: []string{
				"INFO systemd watchdog enabled timeout=30s ping_every=15s",
				"WARN systemd watchdog pings stopped reason=sensor loop: no progress for 6s restart_within=30s",
			},
		},
		{
			name:      "failed sends count like an unhealthy check",
			health:    []error{nil, nil, nil, nil},
			send:      []error{nil, refused, refused, nil},
			wantPings: 2,
			wantLog: []string{
				"INFO systemd watchdog enabled timeout=30s ping_every=15s",
				"WARN systemd watchdog pings stopped reason=connection refused restart_within=30s",
				"INFO systemd watchdog pings resumed after=30s was=connection refused",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fake time: the first check at now, every tick one period later.
			now := time.Date(2025, 11, 23, 12, 0, 0, 0, time.UTC)
			ticks := make(chan time.Time) // unbuffered: a send returns once run took the tick
			var checks, attempts int
			var pings []string
			logs := &recordHandler{}
			w := &watchdog{
				timeout: 30 * time.Second,
				healthy: func() error { checks++; return tt.health[checks-1] },
				notify: func(state string) error {
					attempts++
					if attempts <= len(tt.send) && tt.send[attempts-1] != nil {
						return tt.send[attempts-1]
					}
					pings = append(pings, state)
					return nil
				},
				log: slog.New(logs),
				ticker: func(d time.Duration) (<-chan time.Time, func()) {
					if d != 15*time.Second {
						t.Errorf("ticker period %v, want 15s", d)
					}
					return ticks, func() {}
				},
				now: func() time.Time { return now },
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.run(ctx) }()
			for i := range len(tt.health) - 1 {
				ticks <- now.Add(time.Duration(i+1) * 15 * time.Second)
			}
			// One more tick handshake would need one more health answer;
			// cancelling and waiting makes the last check's effects visible.
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if checks != len(tt.health) {
				t.Errorf("healthy called %d times, want %d", checks, len(tt.health))
			}
			if len(pings) != tt.wantPings {
				t.Errorf("%d pings, want %d", len(pings), tt.wantPings)
			}
			for _, p := range pings {
				if p != "WATCHDOG=1" {
					t.Errorf("sent %q, want WATCHDOG=1", p)
				}
			}
			if got, want := strings.Join(logs.lines, "\n"), strings.Join(tt.wantLog, "\n"); got != want {
				t.Errorf("log:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// ExampleWatchdog shows the health gate sensord uses: ping only while both
// loops have made progress recently.
func ExampleWatchdog() {
	ctx := context.Background()
	var pollerProgress, serverProgress func() time.Time // e.g. poller.Progress, server.Progress
	pollerProgress = time.Now
	serverProgress = time.Now
	const stale = 10 * time.Second
	healthy := func() error {
		if d := time.Since(pollerProgress()); d > stale {
			return fmt.Errorf("sensor loop: no progress for %v", d.Round(time.Second))
		}
		if d := time.Since(serverProgress()); d > stale {
			return fmt.Errorf("broadcaster: no progress for %v", d.Round(time.Second))
		}
		return nil
	}
	go func() {
		// Returns nil at once when the unit has no WatchdogSec=.
		if err := Watchdog(ctx, healthy, slog.Default()); err != nil {
			slog.Error("watchdog", "err", err)
		}
	}()
}
