package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sensord/image/boottest/harness"
)

// Health timing the test sets on the appliance (a drop-in on /etc, which
// lives on the data partition): short enough for a test, long enough for
// an emulated boot.
const (
	testHealthyFor = "20s"
	testWithin     = "300s"
	// The interrupted install is killed once this much of the slot is
	// written: well inside the write, whatever its speed.
	killAfterBytes = 32 << 20
	// maxEarlyReboots bounds the boots again after a panic before the
	// shell (see boot): once is an emulation glitch, every time is a
	// broken image.
	maxEarlyReboots = 2
	// updateBootWait bounds qemu start to the shell (and the dashboard).
	updateBootWait = 10 * time.Minute
	// rebootWait bounds a reboot the test asked for.
	rebootWait = 3 * time.Minute
	// trialGateWait bounds a failing trial's boot to its reboot: the
	// health gate (testWithin) and an emulated boot.
	trialGateWait = 8 * time.Minute
	// settingsFiles lists what sensord-settings writes, with the time it
	// was written.
	settingsFiles = "stat -c '%n %Y' /etc/wpa_supplicant/sensord-wifi.conf /root/.ssh/authorized_keys"
	// sensorOff is a drop-in on /etc (the data partition, so every slot
	// sees it) that makes the simulated sensor fail.
	sensorOff  = "/etc/systemd/system/sensord.service.d/update-test-sensor-off.conf"
	mountStick = "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick"
	// shortGate gives the trial's health gate the test's timing: a drop-in
	// on /etc (the data partition), so every slot's sensorctl boot reads it.
	shortGate = "mkdir -p /etc/systemd/system/sensord-update.service.d && printf '[Service]\\nExecStart=\\nExecStart=/usr/local/sbin/sensorctl boot -healthy-for " + testHealthyFor + " -within " + testWithin + "\\n' > /etc/systemd/system/sensord-update.service.d/test.conf"
)

// updateRun is make update-test's state between its steps.
type updateRun struct {
	*rig
	v         bundles
	boots     int    // qemu starts, for the console logs' names
	fp        string // the data partition's fingerprint at the first boot
	written   string // settingsFiles at the first boot
	fatBefore string // the boot partition's hash before any boot
}

// steps is make update-test: version N boots from slot A; bad, older and
// same-release bundles are refused; an install killed half-way leaves A
// booting; N+1 boots on trial in B and is committed; a bundle whose
// sensord never becomes healthy and one whose boot hangs are rolled back;
// an older release goes in only with --allow-downgrade over SSH; a trial
// on a Pi whose sensor fails before and after commits, and one that
// breaks a reading sensor rolls back; a bundle with boot files of its own
// boots them on trial and commits, and trials whose kernel or initramfs
// cannot boot fall back by themselves (kernelSteps); a card whose firmware
// loads the kernel itself moves to U-Boot by itself (migrateSteps); the
// data partition is the same all along (image/README.md, "make update-test").
func (s *updateRun) steps() []harness.Step {
	t := s.T
	steps := []harness.Step{
		t.PhaseOf("prepare: copy image, settings, kernel",
			append(append([]harness.Step{harness.Do("work directory and two key pairs", s.keys)}, s.prepareSteps(false)...),
				harness.Do("hash the boot partition", s.hashBootPartition))...),
		t.PhaseOf("bundles: N+1, never-healthy, hangs, breaks the sensor, older, same, tampered, foreign key", harness.Do("make the bundles", s.bundles)),
		s.boot("1, version N from slot A", true, harness.Do("slot A committed, the data partition's state", s.firstBoot)),
		t.PhaseOf("refuse: tampered, foreign-key, older and same-release bundles", harness.Checks("refusals", s.refuse)),
		t.PhaseOf("power cut: qemu killed while slot B is written", harness.Checks("the power cut", s.powerCut)),
		s.boot("2, after the power cut", true, harness.Checks("slot A still", s.afterPowerCut)),
		t.PhaseOf("install N+1 (fresh, after the power cut)", harness.Checks("install N+1", s.installNext), s.reboot()),
		s.boot("3, N+1 on trial in slot B", true, harness.Checks("slot B committed", s.commitNext)),
		t.PhaseOf("upload, on the dashboard, a bundle whose sensord never becomes healthy", harness.Do("upload", s.uploadBad)),
		s.boot("4, the bad bundle on trial in slot A", false, harness.Do("the trial reboots by itself", s.badTrialReboots)),
		s.boot("5, rolled back to slot B", true, harness.Checks("rolled back", s.rolledBackBad)),
		t.PhaseOf("install a bundle whose trial boot hangs", harness.Checks("install the hang", s.installHang), s.reboot()),
		s.boot("6, the hanging trial in slot A", false, harness.Do("PID 1 stopped, the watchdog resets", s.hang)),
		s.boot("7, rolled back to slot B after the watchdog reset", true, harness.Checks("rolled back", s.rolledBackHang)),
		t.PhaseOf("sensor failing; downgrade over SSH with --allow-downgrade", harness.Checks("downgrade", s.downgrade), s.reboot()),
		s.boot("8, the older release on trial in slot A, sensor failing", true, harness.Checks("committed by the alive rule", s.commitOlder)),
		t.PhaseOf("sensor reading; install a release that breaks it", harness.Checks("install breaks", s.installBreaks), s.reboot()),
		s.boot("9, the sensor-breaking release on trial in slot B", true, harness.Do("the trial reboots by itself", s.breaksReboots)),
		s.boot("10, rolled back to slot A", true, harness.Checks("rolled back", s.rolledBackBreaks)),
	}
	steps = append(steps, s.kernelSteps()...)
	steps = append(steps, s.migrateSteps()...)
	return append(steps, t.PhaseOf("the boot partition", harness.Do("untouched but for the slots' boot files and state", s.bootPartitionUntouched)))
}

func (s *updateRun) keys(ctx context.Context) error {
	keys, err := s.workDirs(ctx, "sensord-updatetest-", "id_appliance", "id_other")
	if err != nil {
		return err
	}
	s.KeepNote("console-N.log per boot")
	s.key, s.otherKey = keys[0], keys[1]
	return nil
}

func (s *updateRun) hashBootPartition(ctx context.Context) (err error) {
	s.fatBefore, err = s.bootPartitionHash(ctx)
	return err
}

func (s *updateRun) bundles(ctx context.Context) (err error) {
	s.v, err = s.makeBundles(ctx)
	return err
}

// boot is the phase "boot: name": qemu started afresh (as the Pi's
// firmware reads the boot partition afresh) up to a shell, and the
// dashboard if wantHTTP, then steps.
func (s *updateRun) boot(name string, wantHTTP bool, steps ...harness.Step) harness.Step {
	return s.PhaseOf("boot: "+name, append([]harness.Step{harness.Do("qemu to a shell", func(ctx context.Context) error {
		return s.bootOnce(ctx, name, wantHTTP)
	})}, steps...)...)
}

func (s *updateRun) bootOnce(ctx context.Context, name string, wantHTTP bool) error {
	// Keep each boot's console log: vm.Start starts console.log afresh.
	if s.boots++; s.boots > 1 {
		os.Rename(s.consoleLog(), filepath.Join(s.dir, fmt.Sprintf("console-%d.log", s.boots-1)))
	}
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, updateBootWait)
	defer cancel()
	for try := 1; ; try++ {
		if err := s.startQemu(); err != nil {
			return err
		}
		err := s.m.WaitPrompt(bctx)
		if err == nil {
			break
		}
		// The kernel panicked before a shell and panic=10 rebooted it
		// (seen once: the emulated virtio disk failed its probe,
		// "unsupported zone model 255", so the initramfs found no data
		// partition): a Pi would boot again, so boot again.
		con, _ := os.ReadFile(s.consoleLog())
		if try > maxEarlyReboots || !strings.Contains(string(con), "Rebooting automatically due to panic=") || s.m.WaitExit(30*time.Second) != nil {
			return fmt.Errorf("no shell prompt on the serial console: %w", err)
		}
		s.Logf("%s: the guest panicked and rebooted before a shell (console-%d-early-%d.log); booting it again, as the Pi would", name, s.boots, try)
		os.Rename(s.consoleLog(), filepath.Join(s.dir, fmt.Sprintf("console-%d-early-%d.log", s.boots, try)))
	}
	if err := s.m.Shell(bctx, 2*time.Second); err != nil {
		return err
	}
	what := "shell"
	if wantHTTP {
		if err := s.waitHTTP(bctx); err != nil {
			return err
		}
		what = "dashboard"
	}
	s.Number("%s: qemu start to %s: %.0f s", name, what, time.Since(start).Seconds())
	return nil
}

// reboot asks the guest to reboot and waits for its qemu to end.
func (s *updateRun) reboot() harness.Step {
	return harness.Do("reboot", func(ctx context.Context) error {
		s.m.Console.Run(ctx, "(sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 &)")
		return s.m.WaitExit(rebootWait)
	})
}
