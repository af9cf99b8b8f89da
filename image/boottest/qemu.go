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

// startQemuArgs starts qemu with args, its serial console on the unix
// socket sock, and connects t.console to it.
func (t *test) startQemuArgs(args []string, sock string) error {
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
	go func() { t.qemuErr <- t.qemu.Wait(); qlog.Close() }()

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
