package testutil

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBufferTakesConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
			}
		}()
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Fatalf("%d bytes, want 800", got)
	}
}

func TestGoCancelsAndReturnsTheError(t *testing.T) {
	sentinel := errors.New("stopped")
	started := make(chan struct{})
	stop := Go(t, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return sentinel
	})
	<-started
	if err := stop(); !errors.Is(err, sentinel) {
		t.Fatalf("stop = %v, want the function's own error", err)
	}
	if err := stop(); !errors.Is(err, sentinel) {
		t.Fatalf("second stop = %v, want the same error", err)
	}
}

func TestGoFailsTheTestWhenTheFunctionErrs(t *testing.T) {
	ft := &recordT{TB: t}
	func() {
		stop := Go(ft, func(ctx context.Context) error { <-ctx.Done(); return errors.New("broken") })
		_ = stop
		ft.runCleanups()
	}()
	if !strings.Contains(ft.errs, "broken") {
		t.Fatalf("errors %q, want the function's error reported at cleanup", ft.errs)
	}
}

func TestGoReportsAFunctionThatIgnoresCancel(t *testing.T) {
	t.Setenv(ScaleEnv, "")
	release := make(chan struct{})
	defer close(release)
	ft := &recordT{TB: t}
	// stopWait is 10 s; this test waits for it once.
	stop := Go(ft, func(ctx context.Context) error { <-release; return nil })
	if err := stop(); err == nil || !strings.Contains(ft.errs, "still running") {
		t.Fatalf("stop = %v, errors %q; want a hang reported", err, ft.errs)
	}
}

func TestNotifySocketDeliversEachDatagramWhole(t *testing.T) {
	path, notes := NotifySocket(t)
	conn, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range []string{"READY=1", "STATUS=a\nb", "WATCHDOG=1"} {
		if _, err := conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		if n := Next(t, notes, 5*time.Second); n.Text != d || n.At.Before(before.Add(-time.Second)) {
			t.Fatalf("got %q at %v, want %q", n.Text, n.At, d)
		}
	}
}

// recordT records errors and cleanups instead of acting on them.
type recordT struct {
	testing.TB
	mu       sync.Mutex
	errs     string
	cleanups []func()
}

func (r *recordT) Helper() {}
func (r *recordT) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range args {
		if e, ok := a.(error); ok {
			r.errs += e.Error() + "\n"
		}
	}
}
func (r *recordT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs += format + "\n"
	for _, a := range args {
		if e, ok := a.(error); ok {
			r.errs += e.Error() + "\n"
		}
	}
}
func (r *recordT) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordT) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
