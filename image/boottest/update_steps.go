package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"sensord/image/update"
)

// firstBoot: version N committed in slot A, the read-only root with its
// overlays; then what later boots compare against (the data partition's
// fingerprint, the settings files), the test's health timing, the stick.
func (s *updateRun) firstBoot(ctx context.Context) error {
	s.expectBoot(ctx, "A", update.ModeCommitted)
	s.expectVersion(ctx, s.v.n)
	r, _ := s.guest(ctx, "for m in / /etc /var /root /data; do findmnt -rno FSTYPE,OPTIONS -M $m | cut -d, -f1; done")
	s.Check(strings.Join(r.Lines(), " ") == "squashfs ro overlay rw overlay rw overlay rw ext4 rw", "root is the read-only squashfs slot, /etc /var /root are overlays on /data: %q", strings.Join(r.Lines(), " | "))
	// A history file stands for sensord's state; the SSH host keys are made
	// by sensord-sshkeys after sensord starts.
	s.guest(ctx, "mkdir -p /var/lib/sensord && echo update-test > /var/lib/sensord/update-test-history")
	s.fp = s.dataFingerprint(ctx)
	written, _ := s.guest(ctx, settingsFiles)
	s.written = written.Out
	// For the boots that follow (no daemon-reload: nothing needs it now).
	s.guest(ctx, shortGate)
	s.guest(ctx, mountStick+" && ls /run/stick")
	return nil
}

// refuse: tampered, foreign-key, older and same-release bundles are
// refused on the console, the older one on the dashboard too, and the
// slot state is untouched.
func (s *updateRun) refuse(ctx context.Context) {
	v := s.v
	state, _ := s.guest(ctx, "sha256sum /boot/firmware/sensord/state; cat /boot/firmware/sensord/state")
	for _, c := range []struct{ file, want string }{
		{"tampered.update", "does not match its signed hash"},
		{"foreign.update", "signed by another key"},
		{"older.update", fmt.Sprintf("bundle release %d (version %s) is not newer than the committed slot A's release %d (version %s)", v.release-1, v.older, v.release, v.n)},
		{"same.update", fmt.Sprintf("bundle release %d (version %s) is the release already running in slot A (release %d, version %s)", v.release, v.n, v.release, v.n)},
	} {
		r, _ := s.guestLong(ctx, "sensorctl update /run/stick/"+c.file+" 2>&1")
		s.Check(r.Status != 0 && strings.Contains(strings.Join(r.Lines(), " "), c.want), "%s refused (%q): %q", c.file, c.want, strings.Join(r.Lines(), " | "))
	}
	// The dashboard's upload refuses the older release before spooling it.
	status, body, err := s.upload(ctx, v.olderPath)
	s.Check(err == nil && status == http.StatusConflict && strings.Contains(body, "is not newer than the committed slot A") && strings.Contains(body, "--allow-downgrade"),
		"dashboard upload of the older release refused with the reason: %d %s %v", status, body, err)
	r, _ := s.guest(ctx, "ls -A /var/lib/sensord/update-spool | wc -l")
	s.Check(r.Status == 0 && strings.TrimSpace(r.Out) == "0", "nothing spooled for the refused upload: %q", r.Out)
	after, _ := s.guest(ctx, "sha256sum /boot/firmware/sensord/state; cat /boot/firmware/sensord/state")
	s.Check(after.Out == state.Out, "slot state byte-identical after the refused bundles: %q", strings.Join(after.Lines(), " "))
}

// powerCut kills qemu while the install writes slot B.
func (s *updateRun) powerCut(ctx context.Context) {
	const install = "sensorctl update /run/stick/good.update"
	s.guest(ctx, "("+install+" > /run/install.log 2>&1 &)")
	// The install's own process: other sensorctl processes run for good
	// (the setup access point's sensorctl setup).
	err := s.waitGuest(ctx, 5*time.Minute, fmt.Sprintf("p=$(pgrep -xf '%s') && awk '/^wchar/ { exit !($2 > %d) }' /proc/$p/io && echo written", install, killAfterBytes), "written")
	s.m.Kill()
	if err != nil {
		s.Fail("install never got %d MiB into the slot before qemu was killed: %v", killAfterBytes>>20, err)
		return
	}
	s.Pass("qemu killed (SIGKILL) with the install %d+ MiB into slot B", killAfterBytes>>20)
}

func (s *updateRun) afterPowerCut(ctx context.Context) {
	s.expectBoot(ctx, "A", update.ModeCommitted)
	s.expectVersion(ctx, s.v.n)
	r, _ := s.guest(ctx, "cat /boot/firmware/sensord/state")
	s.Check(!strings.Contains(r.Out, "trial="), "no trial pending after the interrupted install: %q", strings.Join(r.Lines(), " "))
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition (machine-id, SSH host key, history) unchanged")
	r, _ = s.guest(ctx, settingsFiles)
	s.Check(r.Status == 0 && r.Out == s.written, "sensord-settings left the unchanged Wi-Fi configuration and authorized_keys unwritten: %q", strings.Join(r.Lines(), " | "))
}

func (s *updateRun) installNext(ctx context.Context) {
	s.guest(ctx, mountStick)
	// The sensor reads here, and the install must record that: the trial
	// then has to keep it reading (rule alive-and-sensor).
	if err := s.waitGuest(ctx, 5*time.Minute, "grep -o '\"alive\":true.*\"sensor_reading\":true' /run/sensord/verdict >/dev/null && echo reading", "reading"); err != nil {
		s.Fail("sensord's verdict never showed the sensor reading: %v", err)
	}
	start := time.Now()
	r, _ := s.guestLong(ctx, "sensorctl update /run/stick/good.update 2>&1")
	s.Check(r.Status == 0 && strings.Contains(r.Out, "boots on trial"), "sensorctl update good.update: %q", strings.Join(r.Lines(), " | "))
	s.Number("install of the %d-byte N+1 bundle (verify, write, read back): %.0f s", s.v.goodBytes, time.Since(start).Seconds())
}

func (s *updateRun) commitNext(ctx context.Context) {
	v := s.v
	s.expectBoot(ctx, "B", update.ModeTrial)
	s.expectVersion(ctx, v.next)
	start := time.Now()
	if err := s.waitGuest(ctx, 5*time.Minute, "sensorctl status | grep -x committed=B", "committed=B"); err != nil {
		s.Fail("slot B never committed: %v", err)
		s.explain(ctx, "systemctl status sensord-update --no-pager; journalctl -b -u sensord-update --no-pager | tail -n 20")
	} else {
		s.Pass("slot B committed after sensord was healthy")
		s.Number("trial boot: dashboard to committed: %.0f s", time.Since(start).Seconds())
	}
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("last_outcome=committed") && r.Has("version="+v.next) && r.Has(fmt.Sprintf("release=%d", v.release+1)) && r.Has("last_rule="+update.RuleAliveAndSensor),
		"sensorctl status after the commit (the sensor read at install and on trial): %q", strings.Join(r.Lines(), " | "))
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition unchanged by the update")
	s.expectPanel(ctx, "after the commit", func(in updatePanel) bool {
		return in.Slot == "B" && in.Mode == update.ModeTrial && in.Version == v.next && in.Committed == "B" && in.Last.Outcome == "committed" && in.Last.Rule == update.RuleAliveAndSensor
	})
}

// uploadBad is the dashboard's way in: the bundle is uploaded over HTTP to
// sensord, which spools it; the root path unit installs it and reboots.
func (s *updateRun) uploadBad(ctx context.Context) error {
	start := time.Now()
	status, body, err := s.upload(ctx, s.v.badPath)
	s.Check(err == nil && status == http.StatusAccepted, "dashboard upload of the never-healthy bundle accepted: %d %s %v", status, body, err)
	if err := s.m.WaitExit(10 * time.Minute); err != nil {
		s.Fail("the upload was never installed and rebooted into: %v", err)
		return err
	}
	s.Pass("sensord-update-spool installed the upload and rebooted")
	s.Number("dashboard upload of the %d-byte bundle to reboot (upload, two verifications, write, read back): %.0f s", s.v.badBytes, time.Since(start).Seconds())
	return nil
}

func (s *updateRun) badTrialReboots(ctx context.Context) error {
	s.expectBoot(ctx, "A", update.ModeTrial)
	start := time.Now()
	if err := s.m.WaitExit(trialGateWait); err != nil {
		s.Fail("the failed trial never rebooted: %v", err)
		return err
	}
	s.Pass("the trial of the never-healthy bundle rebooted by itself")
	s.Number("bad trial: shell to reboot (health gate %s): %.0f s", testWithin, time.Since(start).Seconds())
	return nil
}

func (s *updateRun) rolledBackBad(ctx context.Context) {
	v := s.v
	s.expectBoot(ctx, "B", update.ModeRolledBack)
	s.expectVersion(ctx, v.next)
	s.expectRolledBack(ctx, v.bad, update.RuleNeverAlive, "the journal says the update was rolled back, and by which rule: %q")
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("last_outcome=rolled-back") && r.Has("last_version="+v.bad) && r.Has("last_rule="+update.RuleNeverAlive), "sensorctl status after the rollback: %q", strings.Join(r.Lines(), " | "))
	s.expectPanel(ctx, "after the rollback", func(in updatePanel) bool {
		return in.Slot == "B" && in.Mode == update.ModeRolledBack && in.Version == v.next && in.Last.Outcome == "rolled-back" && in.Last.Version == v.bad && in.Last.Rule == update.RuleNeverAlive
	})
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition unchanged by the rollback")
}

// installHang: a board that hangs on its trial boot (hang): PID 1
// stopped (pid1stop), so nothing pings the hardware watchdog; it resets
// the guest, and the try is already spent.
func (s *updateRun) installHang(ctx context.Context) {
	s.guest(ctx, mountStick)
	r, _ := s.guestLong(ctx, "sensorctl update /run/stick/hang.update 2>&1")
	s.Check(r.Status == 0 && strings.Contains(r.Out, "boots on trial"), "sensorctl update hang.update: %q", strings.Join(r.Lines(), " | "))
}

func (s *updateRun) hang(ctx context.Context) error {
	s.expectBoot(ctx, "A", update.ModeTrial)
	// The console's shell starts before the boot partition is mounted.
	err := s.waitGuest(ctx, 2*time.Minute, "grep -x trial=A /boot/firmware/sensord/state", "trial=A")
	s.Check(err == nil, "the trial is not committed yet when PID 1 is stopped: %v", err)
	for len(s.watchdog) > 0 {
		<-s.watchdog
	}
	s.guest(ctx, mountStick+"; (/run/stick/pid1stop > /dev/console 2>&1 &); sleep 1")
	start := time.Now()
	select {
	case at := <-s.watchdog:
		s.Pass("the guest's hardware watchdog expired %.0f s after PID 1 was stopped (%.0f s after qemu started)", time.Since(start).Seconds(), at.Seconds())
	case <-time.After(3 * time.Minute):
		s.Fail("the hardware watchdog never expired with PID 1 stopped")
	}
	if err := s.m.WaitExit(2 * time.Minute); err != nil {
		s.Fail("the watchdog did not reset the guest: %v", err)
		return err
	}
	return nil
}

func (s *updateRun) rolledBackHang(ctx context.Context) {
	v := s.v
	s.expectBoot(ctx, "B", update.ModeRolledBack)
	s.expectVersion(ctx, v.next)
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("last_outcome=rolled-back") && r.Has("last_version="+v.hang) && r.Has("last_rule="+update.RuleBootEnded), "sensorctl status after the watchdog reset: %q", strings.Join(r.Lines(), " | "))
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition unchanged by the watchdog reset")
}

// downgrade: the sensor rule, one way: a Pi whose sensor fails before the
// update and after it commits the trial. The sensor is made to fail by a
// drop-in on /etc; the update is the older release, installed on purpose
// as root over SSH.
func (s *updateRun) downgrade(ctx context.Context) {
	s.guest(ctx, "mkdir -p /etc/systemd/system/sensord.service.d && printf '[Service]\\nEnvironment=SENSORD_SIM_NO_RESPONSE=true\\n' > "+sensorOff+" && systemctl daemon-reload && systemctl restart sensord")
	if err := s.waitGuest(ctx, 5*time.Minute, "grep -o '\"alive\":true.*\"sensor_reading\":false' /run/sensord/verdict >/dev/null && echo failing", "failing"); err != nil {
		s.Fail("sensord's verdict never showed the sensor failing: %v", err)
	}
	s.guest(ctx, mountStick)
	out, errOut, err := s.sshWithin(ctx, 10*time.Minute, s.key, "sensorctl update /run/stick/older.update 2>&1; echo rc=$?")
	s.Check(err == nil && strings.Contains(out, "rc=1") && strings.Contains(out, "--allow-downgrade"), "over SSH without --allow-downgrade, the older release is refused: %q %q %v", out, errOut, err)
	start := time.Now()
	out, errOut, err = s.sshWithin(ctx, 10*time.Minute, s.key, "sensorctl update --allow-downgrade /run/stick/older.update 2>&1; echo rc=$?")
	s.Check(err == nil && strings.Contains(out, "rc=0") && strings.Contains(out, "boots on trial"), "over SSH, --allow-downgrade installs the older release: %q %q %v", out, errOut, err)
	s.Number("downgrade install over SSH: %.0f s", time.Since(start).Seconds())
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("trial=A") && r.Has("sensor_at_install="+update.SensorNotReading), "the trial is pending, the sensor recorded as not reading: %q", strings.Join(r.Lines(), " | "))
}

func (s *updateRun) commitOlder(ctx context.Context) {
	v := s.v
	s.expectBoot(ctx, "A", update.ModeTrial)
	if err := s.waitGuest(ctx, 5*time.Minute, "sensorctl status | grep -x committed=A", "committed=A"); err != nil {
		s.Fail("the trial with a sensor failing before and after never committed: %v", err)
		s.explain(ctx, "journalctl -b -u sensord-update --no-pager | tail -n 20; cat /run/sensord/verdict")
	}
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("committed=A") && r.Has("version="+v.older) && r.Has(fmt.Sprintf("release=%d", v.release-1)) && r.Has("last_rule="+update.RuleAlive),
		"a trial whose sensor failed before and after committed by the alive rule: %q", strings.Join(r.Lines(), " | "))
	r, _ = s.guest(ctx, "journalctl -b -u sensord-update -o cat --no-pager | grep committed")
	s.Check(strings.Contains(r.Out, "committed by rule "+update.RuleAlive), "the journal names the rule: %q", strings.Join(r.Lines(), " | "))
}

// installBreaks: the other way: the sensor reads, the update breaks it,
// the trial rolls back.
func (s *updateRun) installBreaks(ctx context.Context) {
	s.guest(ctx, "rm "+sensorOff+" && systemctl daemon-reload && systemctl restart sensord")
	if err := s.waitGuest(ctx, 5*time.Minute, "grep -o '\"alive\":true.*\"sensor_reading\":true' /run/sensord/verdict >/dev/null && echo reading", "reading"); err != nil {
		s.Fail("sensord's verdict never showed the sensor reading again: %v", err)
	}
	s.guest(ctx, mountStick)
	r, _ := s.guestLong(ctx, "sensorctl update /run/stick/breaks.update 2>&1")
	s.Check(r.Status == 0 && strings.Contains(r.Out, "sensor at install: "+update.SensorReading), "sensorctl update breaks.update, the sensor reading at install: %q", strings.Join(r.Lines(), " | "))
}

func (s *updateRun) breaksReboots(ctx context.Context) error {
	s.expectBoot(ctx, "B", update.ModeTrial)
	start := time.Now()
	if err := s.m.WaitExit(trialGateWait); err != nil {
		s.Fail("the trial that broke the sensor never rebooted: %v", err)
		return err
	}
	s.Pass("the trial that broke a reading sensor rebooted by itself")
	s.Number("sensor-breaking trial: dashboard to reboot (health gate %s): %.0f s", testWithin, time.Since(start).Seconds())
	return nil
}

func (s *updateRun) rolledBackBreaks(ctx context.Context) {
	v := s.v
	s.expectBoot(ctx, "A", update.ModeRolledBack)
	r, _ := s.guest(ctx, "sensorctl status")
	s.Check(r.Has("version="+v.older) && r.Has("last_outcome=rolled-back") && r.Has("last_version="+v.breaks) && r.Has("last_rule="+update.RuleSensorBroken),
		"sensorctl status after the sensor-breaking trial: %q", strings.Join(r.Lines(), " | "))
	s.expectRolledBack(ctx, v.breaks, update.RuleSensorBroken, "the journal says which rule rolled it back: %q")
	s.expectPanel(ctx, "after the sensor-breaking trial", func(in updatePanel) bool {
		return in.Slot == "A" && in.Mode == update.ModeRolledBack && in.Version == v.older && in.Last.Outcome == "rolled-back" && in.Last.Rule == update.RuleSensorBroken
	})
	s.Check(s.dataFingerprint(ctx) == s.fp, "data partition unchanged by the sensor rule's updates")
}

func (s *updateRun) bootPartitionUntouched(ctx context.Context) error {
	s.m.Stop()
	after, err := s.bootPartitionHash(ctx)
	if err != nil {
		return err
	}
	s.Check(after == s.fatBefore, "boot partition untouched by the updates but for the slots' boot files and the slot state (U-Boot, boot.scr, firmware, config.txt, cmdline.txt)")
	return nil
}
