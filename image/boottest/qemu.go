package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startQemuArgs starts qemu with args, its serial console on the unix
// socket sock, and connects t.console to it.
//
// The guest's hardware watchdog (systemd's RuntimeWatchdogSec=15s) resets
// the guest when it expires, as bcm2835_wdt resets a Pi; with -no-reboot
// that ends this qemu. qemu's QMP monitor reports each expiry (its
// WATCHDOG event), which watchQMP logs with the time since qemu started
// and sends on t.watchdog, so a reset is told apart from a reboot the
// guest asked for.
func (t *test) startQemuArgs(args []string, sock string) error {
	qmp := filepath.Join(t.dir, "qmp.sock")
	args = append(args, "-action", "watchdog=reset", "-qmp", "unix:"+qmp+",server=on,wait=off")
	if t.watchdog == nil {
		t.watchdog = make(chan time.Duration, 16)
	}
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
	go t.watchQMP(qmp, time.Now())
	go func() {
		err := t.qemu.Wait()
		qlog.Close()
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

// watchQMP reads qemu's QMP events until qemu exits; for each WATCHDOG
// event it logs the time since qemu started and sends it on t.watchdog.
// The guest's monotonic clock runs with the host's under TCG, so the
// guest journal's timestamps (journalctl -o short-monotonic) show what
// PID 1 was doing then.
func (t *test) watchQMP(path string, start time.Time) {
	var conn net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("unix", path)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.logf("qemu: no QMP monitor (%v): hardware watchdog resets are not reported", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return
	}
	if _, err := io.WriteString(conn, `{"execute":"qmp_capabilities"}`+"\n"); err != nil {
		return
	}
	for {
		var m struct {
			Event string `json:"event"`
			Data  struct {
				Action string `json:"action"`
			} `json:"data"`
		}
		if err := dec.Decode(&m); err != nil {
			return // qemu exited
		}
		if m.Event == "WATCHDOG" {
			at := time.Since(start)
			t.logf("qemu: the guest's hardware watchdog expired %.0f s after qemu started (action %s)", at.Seconds(), m.Data.Action)
			select {
			case t.watchdog <- at:
			default:
			}
		}
	}
}
