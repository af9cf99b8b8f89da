package systemd

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sensord/internal/testutil"
)

// fakeSystemd points NOTIFY_SOCKET at a real unixgram socket, as PID 1
// does for a Type=notify service, and returns what arrives on it.
func fakeSystemd(t *testing.T) <-chan testutil.Notice {
	t.Helper()
	path, notes := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	return notes
}

// recv returns the next datagram, failing the test after timeout.
func recv(t *testing.T, notes <-chan testutil.Notice, timeout time.Duration) string {
	t.Helper()
	return testutil.Next(t, notes, timeout).Text
}

// tryRecv returns the next datagram, or false once timeout has passed.
func tryRecv(notes <-chan testutil.Notice, timeout time.Duration) (string, bool) {
	select {
	case n, ok := <-notes:
		return n.Text, ok
	case <-time.After(timeout):
		return "", false
	}
}

func TestNotifySendsExactDatagrams(t *testing.T) {
	conn := fakeSystemd(t)
	steps := []struct {
		name string
		send func() error
		want string
	}{
		{"Ready sends READY=1", Ready, "READY=1"},
		{"Status sends the text as is", func() error { return Status("21.4 C 48.2 %RH, 3 clients") }, "STATUS=21.4 C 48.2 %RH, 3 clients"},
		{"Status turns newlines into spaces", func() error { return Status("line one\nREADY=1") }, "STATUS=line one READY=1"},
		{"Status may be empty", func() error { return Status("") }, "STATUS="},
		{"Stopping sends STOPPING=1", Stopping, "STOPPING=1"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.send(); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, conn, 5*time.Second); got != s.want {
				t.Errorf("got %q, want %q", got, s.want)
			}
		})
	}
}

func TestNotifyIsANoOpOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for name, f := range map[string]func() error{
		"Ready":    Ready,
		"Status":   func() error { return Status("x") },
		"Stopping": Stopping,
	} {
		if err := f(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET: got %v, want nil", name, err)
		}
	}
}

func TestNotifyReportsAGoneSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	err := Ready()
	if err == nil {
		t.Fatal("got nil, want an error")
	}
	if !strings.HasPrefix(err.Error(), "systemd: notify READY: ") {
		t.Errorf("error %q does not name the package and the message", err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error %q does not wrap ENOENT", err)
	}
}
