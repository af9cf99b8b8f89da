package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// watchdogFired is what qemu prints for -action watchdog=debug when the
// guest's hardware watchdog expires.
const watchdogFired = "watchdog: timer fired"

// startQemuArgs starts qemu with args, its serial console on the unix
// socket sock, and connects t.console to it.
//
// The guest's hardware watchdog (systemd's RuntimeWatchdogSec=15s) only
// logs when it expires (-action watchdog=debug) instead of resetting the
// guest: on a host under load (load average 13-16 on 2 cores) the emulated
// PID 1 was seen to miss 15 s during boot, and the reset ended the test
// before a shell. On a Pi it resets; here each expiry is reported.
func (t *test) startQemuArgs(args []string, sock string) error {
	args = append(args, "-action", "watchdog=debug")
	t.qemu = exec.Command(t.opts.qemu, args...)
	qlog, err := os.Create(filepath.Join(t.dir, "qemu.log"))
	if err != nil {
		return err
	}
	t.qemu.Stdout, t.qemu.Stderr = qlog, qlog
	t.logf("%s %s", t.opts.qemu, strings.Join(args, " "))
	if err := t.qemu.Start(); err != nil {
		return err
	}
	if t.port != 0 {
		t.logf("qemu pid %d, guest port 80 on 127.0.0.1:%d, port 22 on 127.0.0.1:%d", t.qemu.Process.Pid, t.port, t.sshPort)
	} else {
		t.logf("qemu pid %d", t.qemu.Process.Pid)
	}
	t.qemuErr = make(chan error, 1)
	done := make(chan struct{})
	go t.watchWatchdog(qlog.Name(), time.Now(), done)
	go func() {
		err := t.qemu.Wait()
		close(done)
		qlog.Close()
		if b, rerr := os.ReadFile(qlog.Name()); rerr == nil {
			if n := strings.Count(string(b), watchdogFired); n > 0 {
				t.logf("qemu: the guest's hardware watchdog expired %d times (logged, not reset: emulation under host load)", n)
			}
		}
		t.qemuErr <- err
	}()

	var conn net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err = net.Dial("unix", sock)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("qemu console socket: %w", err)
		}
		select {
		case err := <-t.qemuErr:
			t.qemuErr <- err
			b, _ := os.ReadFile(filepath.Join(t.dir, "qemu.log"))
			return fmt.Errorf("qemu exited: %v: %s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, err := os.Create(filepath.Join(t.dir, "console.log"))
	if err != nil {
		return err
	}
	t.console = NewConsole(conn, conn, log)
	return nil
}

// watchWatchdog logs, while qemu runs, each expiry of the guest's hardware
// watchdog with the time since qemu started: the guest's monotonic clock
// runs with the host's under TCG, so the guest journal's timestamps
// (journalctl -o short-monotonic) show what PID 1 was doing then.
func (t *test) watchWatchdog(qlog string, start time.Time, done <-chan struct{}) {
	seen := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		b, err := os.ReadFile(qlog)
		if err != nil {
			continue
		}
		if n := strings.Count(string(b), watchdogFired); n > seen {
			t.logf("qemu: the guest's hardware watchdog expired (%d so far) %.0f s after qemu started", n, time.Since(start).Seconds())
			seen = n
		}
	}
}
