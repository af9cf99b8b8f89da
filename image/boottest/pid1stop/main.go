// Command pid1stop stands in, in make update-test, for a board that hangs:
// it stops PID 1 (systemd) with ptrace and keeps it stopped, so nothing
// pings the hardware watchdog and it resets the board, as a hung kernel
// or PID 1 would on a Pi. A stopped signal cannot do it: the kernel
// ignores SIGSTOP sent to init. PTRACE_SEIZE then PTRACE_INTERRUPT stops
// the tracee without a signal; it stays stopped while this tracer lives.
//
// Linux only; built for the guest (GOARCH=arm64) by the update test.
package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

// ptrace requests from <linux/ptrace.h> that package syscall lacks.
const (
	ptraceSeize     = 0x4206
	ptraceInterrupt = 0x4207
)

func ptrace(req, pid uintptr) error {
	if _, _, e := syscall.Syscall6(syscall.SYS_PTRACE, req, pid, 0, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

func main() {
	// Every ptrace request must come from the tracing thread.
	runtime.LockOSThread()
	if err := ptrace(ptraceSeize, 1); err != nil {
		fmt.Fprintln(os.Stderr, "pid1stop: PTRACE_SEIZE 1:", err)
		os.Exit(1)
	}
	if err := ptrace(ptraceInterrupt, 1); err != nil {
		fmt.Fprintln(os.Stderr, "pid1stop: PTRACE_INTERRUPT 1:", err)
		os.Exit(1)
	}
	fmt.Println("pid1stop: PID 1 stopped")
	for {
		time.Sleep(time.Hour)
	}
}
