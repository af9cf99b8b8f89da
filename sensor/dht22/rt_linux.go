//go:build linux

package dht22

import "golang.org/x/sys/unix"

// rtPriority is the SCHED_FIFO priority of a busy-loop capture: above every
// normal thread, below the kernel's own real-time threads (which use 50 and
// up for interrupt threads on PREEMPT_RT).
const rtPriority = 40

// realtime moves the calling OS thread (the caller has locked its goroutine
// to it) to SCHED_FIFO for the few milliseconds of a frame, so other threads
// cannot preempt the busy loop; the kernel's real-time throttling still
// leaves 5 % of every second to others. It returns the function that
// restores the previous policy, or ok=false when the process may not do it
// (no CAP_SYS_NICE and no RLIMIT_RTPRIO, e.g. systemd's LimitRTPRIO= unset).
func realtime() (restore func() error, ok bool) {
	old, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return nil, false
	}
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: rtPriority}, 0); err != nil {
		return nil, false
	}
	return func() error { return unix.SchedSetAttr(0, old, 0) }, true
}
