package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sensord/image/boottest/harness"
)

// Serial names what one of qemu's serial ports carries: the test's
// console or nothing.
type Serial int

const (
	SerialNull    Serial = iota // -serial null
	SerialConsole               // the Machine's Console
)

// Options are what Start needs besides the machine's own arguments.
type Options struct {
	Qemu string // the binary
	// Dir holds qemu.log, console.log and the console's and QMP's sockets.
	Dir string
	// Args are the machine, kernel, disks and network; Start adds the
	// serial ports, the watchdog action and the QMP monitor.
	Args []string
	// Serials are qemu's serial ports in order, one of them SerialConsole.
	Serials []Serial
	// Watchdog, if not nil, gets the time since qemu started of each
	// expiry of the guest's hardware watchdog (never blocking).
	Watchdog chan<- time.Duration
}

// Machine is one qemu process and the console on its serial line. A
// reboot of the guest ends it (qemu runs with -no-reboot); the next boot
// is a new Machine, which reads the boot partition again as a Pi's
// firmware does.
type Machine struct {
	Console *Console
	proc    *harness.Proc
	t       *harness.T
	waited  bool // the test saw qemu end (WaitExit, Kill)
}

// consoleWait bounds qemu start to its console socket accepting.
const consoleWait = 30 * time.Second

// Start starts qemu and connects its Console; qemu is stopped with t's
// run, pass or fail.
//
// The guest's hardware watchdog resets the guest when it expires, as
// bcm2835_wdt resets a Pi; with -no-reboot that ends this qemu. qemu's QMP
// monitor reports each expiry (its WATCHDOG event), which Start's watcher
// logs with the time since qemu started and sends on o.Watchdog, so a
// reset is told apart from a reboot the guest asked for.
func Start(t *harness.T, o Options) (*Machine, error) {
	sock := filepath.Join(o.Dir, "console.sock")
	qmp := filepath.Join(o.Dir, "qmp.sock")
	args := append([]string(nil), o.Args...)
	args = append(args, "-chardev", "socket,id=console,path="+sock+",server=on,wait=off")
	for _, s := range o.Serials {
		if s == SerialConsole {
			args = append(args, "-serial", "chardev:console")
		} else {
			args = append(args, "-serial", "null")
		}
	}
	args = append(args, "-action", "watchdog=reset", "-qmp", "unix:"+qmp+",server=on,wait=off")
	qlog, err := os.Create(filepath.Join(o.Dir, "qemu.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Qemu, args...)
	cmd.Stdout, cmd.Stderr = qlog, qlog
	t.Logf("%s %s", o.Qemu, strings.Join(args, " "))
	p, err := t.Start("qemu", cmd)
	if err != nil {
		qlog.Close()
		return nil, err
	}
	go func() { <-p.Done(); qlog.Close() }()
	m := &Machine{proc: p, t: t}
	t.Cleanup(m.Stop) // before the process's own stop: it says how qemu ended
	go m.watchQMP(qmp, time.Now(), o.Watchdog)

	var conn net.Conn
	for deadline := time.Now().Add(consoleWait); ; {
		conn, err = net.Dial("unix", sock)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("qemu console socket: %w", err)
		}
		select {
		case <-p.Done():
			b, _ := os.ReadFile(filepath.Join(o.Dir, "qemu.log"))
			return m, fmt.Errorf("qemu exited: %v: %s", p.Err(), b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, err := os.Create(filepath.Join(o.Dir, "console.log"))
	if err != nil {
		return m, err
	}
	go func() { <-p.Done(); conn.Close() }()
	m.Console = NewConsole(conn, conn, log)
	return m, nil
}

// Pid is qemu's process ID.
func (m *Machine) Pid() int { return m.proc.Pid() }

// Exited is closed once qemu has ended.
func (m *Machine) Exited() <-chan struct{} { return m.proc.Done() }

// Err is how qemu ended; nil while it runs.
func (m *Machine) Err() error { return m.proc.Err() }

// Poke returns a channel closed after d, or at once if qemu has exited.
func (m *Machine) Poke(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-time.After(d):
		case <-m.proc.Done():
		}
		close(c)
	}()
	return c
}

// WaitPrompt waits for the shell's prompt on the console. It types
// nothing: bytes sent while the guest's UART is not yet being read were
// seen to stall the line for good.
func (m *Machine) WaitPrompt(ctx context.Context) error {
	_, err := m.Console.WaitFor(ctx, 0, "root@")
	return err
}

// Shell pokes the console every poke until the shell answers, then sets
// it up for the checks: no echo, no pager, no colours.
func (m *Machine) Shell(ctx context.Context, poke time.Duration) error {
	if err := m.Console.Ready(ctx, func() <-chan struct{} { return m.Poke(poke) }); err != nil {
		return err
	}
	_, err := m.Console.Run(ctx, "stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb")
	return err
}

// Stop ends qemu by its PID (SIGTERM, then SIGKILL) and says so; it only
// logs how a qemu that had exited ended. Safe to call more than once.
func (m *Machine) Stop() {
	if m.proc.Exited() {
		if !m.waited {
			m.t.Logf("qemu (pid %d) had exited: %v", m.Pid(), m.proc.Err())
			m.waited = true
		}
		return
	}
	m.proc.Stop()
	m.waited = true
	m.t.Logf("qemu (pid %d) stopped", m.Pid())
}

// Kill is a power cut: SIGKILL to qemu, by its PID.
func (m *Machine) Kill() {
	m.proc.Kill()
	m.waited = true
}

// WaitExit waits up to d for the guest to end qemu by itself (a reboot:
// qemu runs with -no-reboot).
func (m *Machine) WaitExit(d time.Duration) error {
	if err := m.proc.WaitExit(d); err != nil {
		return fmt.Errorf("guest did not reboot within %s", d)
	}
	m.waited = true
	m.t.Logf("qemu exited (guest rebooted): %v", m.proc.Err())
	return nil
}

// watchQMP reads qemu's QMP events until qemu exits; for each WATCHDOG
// event it logs the time since qemu started and sends it on c. The
// guest's monotonic clock runs with the host's under TCG, so the guest
// journal's timestamps (journalctl -o short-monotonic) show what PID 1
// was doing then.
func (m *Machine) watchQMP(path string, start time.Time, c chan<- time.Duration) {
	var conn net.Conn
	for deadline := time.Now().Add(consoleWait); ; {
		cn, err := net.Dial("unix", path)
		if err == nil {
			conn = cn
			break
		}
		if time.Now().After(deadline) || m.proc.Exited() {
			m.t.Logf("qemu: no QMP monitor (%v): hardware watchdog resets are not reported", err)
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
		var msg struct {
			Event string `json:"event"`
			Data  struct {
				Action string `json:"action"`
			} `json:"data"`
		}
		if err := dec.Decode(&msg); err != nil {
			return // qemu exited
		}
		if msg.Event == "WATCHDOG" {
			at := time.Since(start)
			m.t.Logf("qemu: the guest's hardware watchdog expired %.0f s after qemu started (action %s)", at.Seconds(), msg.Data.Action)
			select {
			case c <- at:
			default:
			}
		}
	}
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1 for qemu to
// forward. All n listeners stay open until every port is chosen, so the
// kernel cannot hand out the same port twice.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
