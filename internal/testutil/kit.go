package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stopWait is how long Go's stop waits for the function to return after
// its context is cancelled: every runner in the tree returns within
// milliseconds of that, so this only bounds a hang (and stretches with
// Scale on a loaded machine).
const stopWait = 10 * time.Second

// Buffer is output that other goroutines (a daemon's logger, a child
// process's copiers) write while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Go runs fn in its own goroutine until the returned stop is called or the
// test ends, whichever is first. stop cancels fn's context, waits for fn
// to return and gives its error; a fn that does not return within
// Scale(stopWait) fails the test. If the test never called stop, cleanup
// does, and an error other than nil or the context's own fails the test.
func Go(t testing.TB, fn func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var (
		once sync.Once
		err  error
	)
	halt := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(Scale(stopWait)):
				err = fmt.Errorf("testutil: still running %s after its context was cancelled", Scale(stopWait))
				t.Error(err)
			}
		})
		return err
	}
	var byTest atomic.Bool
	t.Cleanup(func() {
		if byTest.Load() {
			return // the test saw the error itself
		}
		if err := halt(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run ended with %v", err)
		}
	})
	return func() error { byTest.Store(true); return halt() }
}

// Build compiles the main package pkg (an import path or a directory) into
// dir and returns the binary's path; with race set, with the race
// detector, so that a test of the real process also checks its data races.
// It is meant for TestMain, which runs once for all the package's tests.
func Build(dir, pkg, name string, race bool) (string, error) {
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, pkg)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Notice is one datagram a service sent to the notify socket (systemd
// reads each datagram as one state change, so tests compare it whole), and
// when it arrived.
type Notice struct {
	At   time.Time
	Text string
}

// NotifySocket listens on a real unixgram socket in the test's temporary
// directory, as systemd does for a Type=notify service, and returns its
// path (for NOTIFY_SOCKET) and every datagram that arrives, in order. The
// channel is closed when the test ends.
func NotifySocket(t testing.TB) (path string, notes <-chan Notice) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// notifyBuffer holds notices the test has not read yet: a service
	// pings the watchdog a few times a second, and a test reads them all
	// within a few seconds.
	const notifyBuffer = 4096
	ch := make(chan Notice, notifyBuffer)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ch <- Notice{At: time.Now(), Text: string(buf[:n])}
		}
	}()
	return path, ch
}

// Next returns the next notice, or fails the test if none arrives within
// Scale(within).
func Next(t testing.TB, notes <-chan Notice, within time.Duration) Notice {
	t.Helper()
	select {
	case n, ok := <-notes:
		if !ok {
			t.Fatal("the notify socket closed")
		}
		return n
	case <-time.After(Scale(within)):
		t.Fatalf("no notice within %s", Scale(within))
		return Notice{}
	}
}
