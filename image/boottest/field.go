package main

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/update"
)

// fieldSteps is make field-test: a card of an earlier release (-image, a
// card whose firmware loads the kernel itself and whose initramfs chooses
// the slot) takes this version's bundle (-bundle) with its own sensorctl,
// boots it on trial through its own initramfs, commits it, and moves
// itself to U-Boot's slot chooser; the next boot goes through U-Boot
// (image/README.md, "make field-test"). The update test's boots 22 and 23
// play such a card with this version's root; this is the earlier
// release's own sensorctl and initramfs.
func (s *updateRun) fieldSteps() []harness.Step {
	t := s.T
	return []harness.Step{
		t.PhaseOf("prepare: copy the earlier release's image, settings",
			append([]harness.Step{harness.Do("work directory and two key pairs", s.keys)}, s.prepareSteps(false)...)...),
		t.PhaseOf("stick: this version's bundle", harness.Do("the bundle on a second disk", s.fieldStick)),
		s.boot("1, the earlier release from slot A, its firmware loading the kernel", true, harness.Checks("the earlier release runs", s.fieldFirst)),
		t.PhaseOf("install this version with the earlier release's sensorctl", harness.Checks("install", s.fieldInstall), s.reboot()),
		s.boot("2, this version on trial in slot B, chosen by the earlier initramfs", true, harness.Checks("committed; the card moves to U-Boot", s.fieldCommit), s.reboot()),
		s.boot("3, through U-Boot after the move", true, harness.Checks("U-Boot chooses slot B", s.afterMigration)),
	}
}

// fieldStick puts the bundle on the stick and names its version.
func (s *updateRun) fieldStick(ctx context.Context) error {
	key, err := update.ReadPrivateKey(s.opts.update.key)
	if err != nil {
		return err
	}
	f, err := os.Open(s.opts.update.bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := update.Open(f, key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	// afterMigration checks version next, and sensorctl status the
	// version of the slot's boot files (kernel): both are the bundle's.
	s.v.next, s.v.kernel, s.v.release = b.Manifest.Version, b.Manifest.Version, b.Manifest.Release
	dir := filepath.Join(s.dir, "stick")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := copyTo(filepath.Join(dir, "field.update"), f); err != nil {
		return err
	}
	if err := (&bundleMaker{rig: s.rig, ctx: ctx, stickDir: dir}).writeStick(); err != nil {
		return err
	}
	s.Logf("stick: %s, version %s, release %d", filepath.Base(s.opts.update.bundle), s.v.next, s.v.release)
	return os.RemoveAll(dir)
}

func (s *updateRun) fieldFirst(ctx context.Context) {
	r, _ := s.guest(ctx, "grep -c sensord.slot= /proc/cmdline; grep -E '^kernel=' /boot/firmware/config.txt; test -e /boot/firmware/sensord/state || echo no-boot-state; test -e /data/update/state && echo data-state")
	s.Check(r.Has("0") && !r.Has("kernel=u-boot.bin") && r.Has("no-boot-state"),
		"the card boots the firmware's way, its initramfs choosing the slot: %q", strings.Join(r.Lines(), " | "))
	s.expectBoot(ctx, "A", update.ModeCommitted)
	r, _ = s.guest(ctx, "sensorctl status")
	s.Logf("the earlier release's sensorctl status: %s", strings.Join(r.Lines(), " | "))
	s.fp = s.dataFingerprint(ctx)
	// Read by this version's sensorctl on the trial.
	s.guest(ctx, shortGate)
}

func (s *updateRun) fieldInstall(ctx context.Context) {
	s.guest(ctx, mountStick)
	start := time.Now()
	r, _ := s.guestLong(ctx, "sensorctl update /run/stick/field.update 2>&1")
	s.Check(r.Status == 0, "the earlier release's sensorctl installs this version's bundle: %q", strings.Join(r.Lines(), " | "))
	s.Number("install of this version by the earlier release: %.0f s", time.Since(start).Seconds())
}

func (s *updateRun) fieldCommit(ctx context.Context) {
	s.expectBoot(ctx, "B", update.ModeTrial)
	s.expectVersion(ctx, s.v.next)
	r, _ := s.guest(ctx, "grep -c sensord.slot= /proc/cmdline")
	s.Check(strings.TrimSpace(r.Out) == "0", "the trial boot names no slot on the command line (the earlier initramfs chose it): %q", r.Out)
	if err := s.waitGuest(ctx, 5*time.Minute, "sensorctl status | grep -x committed=B", "committed=B"); err != nil {
		s.Fail("this version's trial never committed: %v", err)
		s.explain(ctx, "journalctl -b -u sensord-update -o cat --no-pager | tail -n 20")
		return
	}
	s.movedToUBoot(ctx)
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition unchanged by the update and the move")
}
