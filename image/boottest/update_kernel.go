package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/paths"
	"sensord/image/update"
)

// brokenTrialNames are the brokenBundles, in the order they are tried.
var brokenTrialNames = []string{"zeros", "x86", "panics", "stuck", "truncated"}

// kernelSteps: a bundle with boot files of its own boots them on trial
// and commits; then each broken trial falls back to the committed slot
// by itself (image/README.md, "make update-test").
func (s *updateRun) kernelSteps() []harness.Step {
	steps := []harness.Step{
		s.PhaseOf("install N+kernel: boot files of its own", harness.Checks("install the kernel bundle", s.installKernel), s.reboot()),
		s.boot("11, N+kernel's boot files on trial in slot B", true, harness.Checks("its initramfs booted, slot B committed", s.commitKernel)),
	}
	for i, name := range brokenTrialNames {
		steps = append(steps,
			s.PhaseOf("install "+name+": boot files that cannot boot", harness.Checks("install "+name, func(ctx context.Context) { s.installBroken(ctx, i) }), s.reboot()),
			s.PhaseOf(fmt.Sprintf("boot: %d, the %s trial in slot A", 12+2*i, name), harness.Do("U-Boot takes the trial, it fails, the board resets", func(ctx context.Context) error {
				return s.brokenTrialBoot(ctx, i)
			})),
			s.boot(fmt.Sprintf("%d, rolled back to slot B after %s", 13+2*i, name), true, harness.Checks("rolled back", func(ctx context.Context) { s.rolledBackBroken(ctx, i) })),
		)
	}
	return steps
}

func (s *updateRun) installKernel(ctx context.Context) {
	s.guest(ctx, mountStick)
	start := time.Now()
	r, _ := s.guestLong(ctx, "sensorctl update /run/stick/kernel.update 2>&1")
	s.Check(r.Status == 0 && strings.Contains(r.Out, "boots on trial") && strings.Contains(r.Out, "initramfs and device trees copied to /boot/firmware/slot-b"),
		"sensorctl update kernel.update copies its boot files to slot B's directory: %q", strings.Join(r.Lines(), " | "))
	s.Number("install of the kernel bundle (write, read back, boot files): %.0f s", time.Since(start).Seconds())
}

func (s *updateRun) commitKernel(ctx context.Context) {
	v := s.v
	s.expectConsole(ctx, "sensord-boot: slot B on trial, boot 1 of 1", "sensord-boot: booting slot B (trial): /slot-b/vmlinuz")
	s.expectBoot(ctx, "B", update.ModeTrial)
	s.expectTrialArgs(ctx, true)
	r, _ := s.guest(ctx, "cat /run/sensord-boot")
	s.Check(r.Has("initramfs="+v.kernel), "the initramfs that booted is the bundle's (%s), not the committed slot's: %q", v.kernel, strings.Join(r.Lines(), " "))
	if err := s.waitGuest(ctx, 5*time.Minute, "sensorctl status | grep -x committed=B", "committed=B"); err != nil {
		s.Fail("the trial of the kernel bundle never committed: %v", err)
		s.explain(ctx, "journalctl -b -u sensord-update --no-pager | tail -n 20")
	}
	r, _ = s.guest(ctx, "sensorctl status")
	s.Check(r.Has("version="+v.kernel) && r.Has("initramfs="+v.kernel) && r.Has("last_outcome=committed") && r.Has("last_rule="+update.RuleAliveAndSensor),
		"sensorctl status after the kernel bundle's commit: %q", strings.Join(r.Lines(), " | "))
	r, _ = s.guest(ctx, "cat /boot/firmware/sensord/state")
	s.Check(r.Has("committed=B") && !strings.Contains(r.Out, "trial="), "the boot partition's slot state commits slot B: %q", strings.Join(r.Lines(), " "))
	// The gate committed the trial: its hang detectors no longer panic.
	s.expectHangPanicsOff(ctx)
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition unchanged by the kernel update")
}

func (s *updateRun) installBroken(ctx context.Context, i int) {
	b := s.v.broken[i]
	s.guest(ctx, mountStick)
	r, _ := s.guestLong(ctx, "sensorctl update /run/stick/"+b.file()+" 2>&1")
	s.Check(r.Status == 0 && strings.Contains(r.Out, "boots on trial"), "sensorctl update %s: %q", b.file(), strings.Join(r.Lines(), " | "))
	if b.onCard != "" {
		r, _ := s.guest(ctx, b.onCard+" && echo done")
		s.Check(r.Has("done"), "%s on the card: %q", b.name, strings.Join(r.Lines(), " | "))
	}
}

// brokenTrialBoot: U-Boot counts the trial's one boot on the console,
// the boot fails as the kind of breakage does, and the board resets by
// itself.
func (s *updateRun) brokenTrialBoot(ctx context.Context, i int) error {
	b := s.v.broken[i]
	if s.boots++; s.boots > 1 {
		os.Rename(s.consoleLog(), filepath.Join(s.dir, fmt.Sprintf("console-%d.log", s.boots-1)))
	}
	start := time.Now()
	if err := s.startQemu(); err != nil {
		return err
	}
	s.expectConsole(ctx, "sensord-boot: slot A on trial, boot 1 of 1", b.console)
	if err := s.m.WaitExit(rebootWait); err != nil {
		s.Fail("the %s trial never reset the board: %v", b.name, err)
		return err
	}
	s.Pass("the %s trial reset the board by itself", b.name)
	s.Number("%s trial: qemu start to the reset: %.0f s", b.name, time.Since(start).Seconds())
	return nil
}

func (s *updateRun) rolledBackBroken(ctx context.Context, i int) {
	b, v := s.v.broken[i], s.v
	s.expectConsole(ctx, "sensord-boot: trial of slot A used 1 of 1 boots: rolling back to slot B", "sensord-boot: booting slot B (rolled-back): /slot-b/vmlinuz")
	s.expectBoot(ctx, "B", update.ModeRolledBack)
	// The kernel bundle's root is good's: its sensord says N+next.
	s.expectVersion(ctx, v.next)
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("committed=B") && r.Has("last_outcome=rolled-back") && r.Has("last_version="+b.version) && r.Has("last_rule="+update.RuleBootEnded),
		"sensorctl status after the %s trial: %q", b.name, strings.Join(r.Lines(), " | "))
	s.expectRolledBack(ctx, b.version, update.RuleBootEnded, "the journal says the update was rolled back: %q")
	s.expectTrialArgs(ctx, false)
	s.expectHangPanicsOff(ctx)
	s.expectPanel(ctx, "after the "+b.name+" trial", func(in updatePanel) bool {
		return in.Slot == "B" && in.Mode == update.ModeRolledBack && in.Last.Outcome == "rolled-back" && in.Last.Version == b.version
	})
}

// oldLayout turns the running card (slot B committed) into one made
// before U-Boot chose the slot: the firmware loads slot B's kernel and
// initramfs from the boot partition's root (config.txt kernel= and
// initramfs lines, as Debian's raspi-firmware writes them), the slot
// state is on the data partition, and U-Boot, boot.scr, the slots'
// directories and the state on the boot partition are gone. slot-a/ goes
// first: the partition has no room for three kernels.
const oldLayout = "(set -e; fw=/boot/firmware; k=$(uname -r); " +
	"mkdir -p /data/update && cp $fw/sensord/state /data/update/state; " +
	"rm -rf $fw/slot-a; " +
	"cp $fw/slot-b/vmlinuz $fw/vmlinuz-$k && cp $fw/slot-b/initrd.img $fw/initrd.img-$k; " +
	`sed -i "s|^kernel=u-boot.bin\$|kernel=vmlinuz-$k\n# For details on the initramfs directive, see\n# https://www.raspberrypi.org/forums/viewtopic.php?f=63\&t=10532\ninitramfs initrd.img-$k|" $fw/config.txt; ` +
	"rm -rf $fw/boot.scr $fw/u-boot.bin $fw/sensord $fw/slot-b; " +
	"sync; echo old layout)"

// migrateSteps: a card whose firmware loads the kernel itself moves to
// U-Boot's slot chooser at the first boot of a committed slot of this
// version, and boots through it from then on.
func (s *updateRun) migrateSteps() []harness.Step {
	return []harness.Step{
		s.PhaseOf("the card made as one whose firmware loads the kernel itself", harness.Checks("the old layout", s.makeOldCard), s.reboot()),
		s.boot("22, the firmware loads the kernel, the initramfs chooses slot B", true, harness.Checks("the card moves itself to U-Boot", s.migrated), s.reboot()),
		s.boot("23, through U-Boot after the move", true, harness.Checks("U-Boot chooses slot B", s.afterMigration)),
	}
}

func (s *updateRun) makeOldCard(ctx context.Context) {
	r, _ := s.guestLong(ctx, oldLayout+" 2>&1")
	s.Check(r.Has("old layout"), "the card now has the old layout: %q", strings.Join(r.Lines(), " | "))
	r, _ = s.guest(ctx, "grep -E '^(kernel|initramfs)' /boot/firmware/config.txt; ls /boot/firmware | grep -cE '^(slot-|sensord$|boot.scr|u-boot.bin)'")
	s.Check(len(r.Lines()) == 3 && strings.HasPrefix(r.Lines()[0], "kernel=vmlinuz-") && strings.HasPrefix(r.Lines()[1], "initramfs initrd.img-") && r.Lines()[2] == "0",
		"config.txt loads the kernel and initramfs, and nothing of U-Boot is on the card: %q", strings.Join(r.Lines(), " | "))
}

func (s *updateRun) migrated(ctx context.Context) {
	r, _ := s.guest(ctx, "grep -c sensord.slot= /proc/cmdline")
	s.Check(strings.TrimSpace(r.Out) == "0", "the firmware's boot names no slot on the command line (the initramfs chose): %q", r.Out)
	s.expectBoot(ctx, "B", update.ModeCommitted)
	s.movedToUBoot(ctx)
}

// movedToUBoot checks that sensorctl boot, on the committed slot B,
// moved the card to U-Boot's slot chooser, and the boot partition after.
func (s *updateRun) movedToUBoot(ctx context.Context) {
	if err := s.waitGuest(ctx, 5*time.Minute, "journalctl -b -u sensord-update -o cat --no-pager | grep -c 'boots through U-Boot from the next boot on'", "1"); err != nil {
		s.Fail("sensorctl boot never moved the card to U-Boot: %v", err)
		s.explain(ctx, "journalctl -b -u sensord-update -o cat --no-pager | tail -n 20")
		return
	}
	r, _ := s.guest(ctx, "journalctl -b -u sensord-update -o cat --no-pager | grep 'boot partition'")
	s.Logf("sensorctl boot: %s", strings.Join(r.Lines(), " | "))
	r, _ = s.guest(ctx, "grep -E '^(kernel|initramfs)' /boot/firmware/config.txt; ls /boot/firmware | grep -cE '^(vmlinuz|initrd.img)-'; test -e /data/update/state && echo data-state; cat /boot/firmware/sensord/state | grep committed; ls -1 /boot/firmware/slot-b")
	s.Check(r.Has("kernel=u-boot.bin") && !strings.Contains(r.Out, "initramfs") && r.Has("0") && !r.Has("data-state") && r.Has("committed=B") && r.Has("vmlinuz") && r.Has("initrd.img") && r.Has("sizes"),
		"config.txt loads U-Boot, the shared kernel and the data partition's state are gone, slot B's files and state are on the boot partition: %q", strings.Join(r.Lines(), " | "))
	r, _ = s.guest(ctx, "df -B1 --output=avail /boot/firmware | tail -n 1")
	s.Logf("boot partition after the move: %s bytes free", strings.TrimSpace(r.Out))
}

func (s *updateRun) afterMigration(ctx context.Context) {
	s.expectConsole(ctx, "Found U-Boot script /boot.scr", "sensord-boot: booting slot B (committed): /slot-b/vmlinuz", "sensord-slot: booting slot B (committed)")
	s.expectBoot(ctx, "B", update.ModeCommitted)
	s.expectVersion(ctx, s.v.next)
	r, _ := s.guest(ctx, "grep -o 'sensord\\.[a-z]*=[^ ]*' /proc/cmdline")
	s.Check(strings.Join(r.Lines(), " ") == "sensord.slot=B sensord.mode=committed", "U-Boot's boot script named the slot: %q", strings.Join(r.Lines(), " "))
	r, _ = s.guest(ctx, "sensorctl status")
	s.Check(r.Has("committed=B") && r.Has("version="+s.v.kernel), "sensorctl status reads the state on the boot partition: %q", strings.Join(r.Lines(), " | "))
}

// expectTrialArgs checks that the boot script's trial arguments, which
// turn the kernel's hang detectors into panics, are on the command line
// of a trial boot (want) and of no other.
func (s *updateRun) expectTrialArgs(ctx context.Context, want bool) {
	r, _ := s.guest(ctx, "cat /proc/cmdline")
	cmdline := strings.Fields(r.Out)
	for _, p := range update.TrialPanics {
		if on := slices.Contains(cmdline, p.Param); want {
			s.Check(on, "the trial boot's command line has %s: %q", p.Param, r.Out)
		} else if on {
			s.Fail("%s on the command line of a boot that is no trial: %q", p.Param, r.Out)
		}
	}
}

// expectHangPanicsOff checks that the kernel's hang detectors do not
// panic: sensorctl turned them off when the trial committed, or the boot
// was no trial. Each switch this kernel has gives one line.
func (s *updateRun) expectHangPanicsOff(ctx context.Context) {
	var files []string
	for _, p := range update.TrialPanics {
		files = append(files, filepath.Join(paths.ProcSys, p.Sysctl))
	}
	r, _ := s.guest(ctx, "cat "+strings.Join(files, " ")+" 2>/dev/null")
	l := r.Lines()
	s.Check(len(l) >= 3 && !slices.ContainsFunc(l, func(v string) bool { return strings.TrimSpace(v) != "0" }),
		"the hang detectors do not panic (%s): %q", strings.Join(files, " "), strings.Join(l, " "))
}
