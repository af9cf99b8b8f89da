package systemd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestListenersWithoutSocketsIsNil(t *testing.T) {
	tests := []struct {
		name     string
		pid, fds string
	}{
		{"no LISTEN_* at all", "", ""},
		{"LISTEN_PID names another process", "1", "1"},
		{"LISTEN_FDS zero", "self", "0"},
		{"LISTEN_FDS not a number", "self", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := tt.pid
			if pid == "self" {
				pid = strconv.Itoa(os.Getpid())
			}
			t.Setenv("LISTEN_PID", pid)
			t.Setenv("LISTEN_FDS", tt.fds)
			t.Setenv("LISTEN_FDNAMES", "")
			ls, err := Listeners()
			if ls != nil || err != nil {
				t.Fatalf("got %v, %v; want nil, nil", ls, err)
			}
			for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
				if _, ok := os.LookupEnv(k); ok {
					t.Errorf("%s still set; children would see it", k)
				}
			}
		})
	}
}

// helperResult is what the helper process reports on its stdout.
type helperResult struct {
	PID   int      `json:"pid"`
	Addrs []string `json:"addrs"`
	Err   string   `json:"err"`
	Env   []string `json:"env"` // LISTEN_* still set after Listeners
}

const helperEnv = "SENSORD_SYSTEMD_TEST_HELPER"

// TestListenersHelperProcess is not a test: it is the child that
// TestListenersInherited starts the way systemd starts sensord. It calls
// Listeners, reports, then answers one connection per listener with its pid.
func TestListenersHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "listeners" {
		return // run as part of the normal suite: nothing to do
	}
	ls, err := Listeners()
	r := helperResult{PID: os.Getpid()}
	if err != nil {
		r.Err = err.Error()
	}
	for _, l := range ls {
		r.Addrs = append(r.Addrs, l.Addr().String())
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(k); ok {
			r.Env = append(r.Env, k)
		}
	}
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
	for _, l := range ls {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "pid %d", os.Getpid())
		c.Close()
		l.Close()
	}
	os.Exit(0) // keep the test framework's PASS lines out of the protocol
}

// startActivated starts this test binary as the helper with files as fds 3,
// 4, ... and LISTEN_FDS, like systemd. LISTEN_PID must be the pid of the
// process that calls Listeners, which is known only after fork: a shell
// exports its own pid ($$) and execs the helper, which keeps that pid, the
// same order of steps systemd takes (fork, set the environment, exec).
func startActivated(t *testing.T, files []*os.File, names string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0" "$@"`,
		self, "-test.run=^TestListenersHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		helperEnv+"=listeners",
		"LISTEN_FDS="+strconv.Itoa(len(files)),
		"LISTEN_FDNAMES="+names,
	)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The child has its copies; ours must not keep the sockets alive.
	for _, f := range files {
		f.Close()
	}
	return cmd, bufio.NewReader(out)
}

func readResult(t *testing.T, out *bufio.Reader) helperResult {
	t.Helper()
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper gave no result: %v", err)
		}
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var r helperResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
}

func tcpListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // the dup in f keeps the socket listening
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return f, l.Addr().String()
}

func TestListenersInherited(t *testing.T) {
	f1, addr1 := tcpListenerFile(t)
	f2, addr2 := tcpListenerFile(t)
	cmd, out := startActivated(t, []*os.File{f1, f2}, "http:metrics")
	r := readResult(t, out)

	if r.Err != "" {
		t.Fatalf("Listeners: %s", r.Err)
	}
	if r.PID != cmd.Process.Pid {
		t.Errorf("helper pid %d, started pid %d: the shell did not exec", r.PID, cmd.Process.Pid)
	}
	if got, want := strings.Join(r.Addrs, " "), addr1+" "+addr2; got != want {
		t.Errorf("listeners on %s, want %s (fd order)", got, want)
	}
	if len(r.Env) > 0 {
		t.Errorf("%v still set after Listeners; children would take the sockets", r.Env)
	}
	// The listeners really are the inherited sockets: only the child holds
	// them now, and it answers on each.
	for _, addr := range []string{addr1, addr2} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), fmt.Sprintf("pid %d", cmd.Process.Pid); got != want {
			t.Errorf("%s answered %q, want %q", addr, got, want)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
}

func TestListenersRejectsWhatIsNotAListeningSocket(t *testing.T) {
	pipe := func(t *testing.T) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return r
	}
	udp := func(t *testing.T) *os.File {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f, err := c.(*net.UDPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name    string
		file    func(*testing.T) *os.File
		wantErr string
	}{
		{"a pipe", pipe, "systemd: socket activation: fd 4 (LISTEN_FD_4) is not a listening stream socket: "},
		{"a datagram socket", udp, "systemd: socket activation: fd 4 (LISTEN_FD_4) is not a listening stream socket: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good, _ := tcpListenerFile(t)
			// The good listener first: the error must close it, not leak it.
			cmd, out := startActivated(t, []*os.File{good, tt.file(t)}, "http")
			r := readResult(t, out)
			t.Logf("Listeners: %s", r.Err)
			if !strings.HasPrefix(r.Err, tt.wantErr) {
				t.Errorf("error %q, want it to start %q", r.Err, tt.wantErr)
			}
			if len(r.Addrs) != 0 {
				t.Errorf("got listeners %v with the error, want none", r.Addrs)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("helper: %v", err)
			}
		})
	}
}
