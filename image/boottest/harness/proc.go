package harness

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process has to end after SIGTERM before it gets
// SIGKILL: qemu and Mosquitto end in well under a second.
const stopGrace = 10 * time.Second

// Proc is a host process a scenario started: qemu, Mosquitto, a helper.
type Proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait has returned
	err  error         // Wait's error; read after done

	stopOnce sync.Once
}

// Start starts cmd and registers its stop as a cleanup, so it ends with
// the run, pass or fail. The kernel also kills it should this program
// die first (PR_SET_PDEATHSIG): no scenario leaves a process behind.
func (t *T) Start(name string, cmd *exec.Cmd) (*Proc, error) {
	p, err := StartProc(name, cmd)
	if err != nil {
		return nil, err
	}
	t.Cleanup(p.Stop)
	return p, nil
}

// StartProc starts cmd as Start does, without a T: the caller stops it.
func StartProc(name string, cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (exec.Cmd.Wait's error); nil while it runs.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Exited says whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// errRunning is WaitExit's error when the process still runs.
var errRunning = errors.New("harness: still running")

// WaitExit waits up to d for the process to end by itself.
func (p *Proc) WaitExit(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return errRunning
	}
}

// Stop ends the process by its PID, SIGTERM then SIGKILL after stopGrace,
// and waits for it; it does nothing for a process that has ended. Safe to
// call more than once.
func (p *Proc) Stop() {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		syscall.Kill(p.Pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			syscall.Kill(p.Pid(), syscall.SIGKILL)
			<-p.done
		}
	})
}

// Kill ends the process at once (SIGKILL, by its PID) and waits for it.
func (p *Proc) Kill() {
	if !p.Exited() {
		syscall.Kill(p.Pid(), syscall.SIGKILL)
	}
	<-p.done
}
