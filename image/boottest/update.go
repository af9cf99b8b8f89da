package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sensord/image/settings"
	"sensord/image/update"
)

// updateOptions are the flags of the A/B update test (make update-test).
type updateOptions struct {
	on     bool
	bundle string // the image's own bundle (version N)
	key    string // the key it is signed with (the repository's test key)
}

func (u *updateOptions) flags() {
	flag.BoolVar(&u.on, "update", false, "run the A/B update test instead of the boot test")
	flag.StringVar(&u.bundle, "bundle", "", "with -update: the image's update bundle")
	flag.StringVar(&u.key, "key", "image/keys/TEST-ONLY-update-key.pem", "with -update: the key the image trusts")
}

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
	// shell (see boot in runUpdate): once is an emulation glitch, every
	// time is a broken image.
	maxEarlyReboots = 2
)

// runUpdate is make update-test: version N boots from slot A; bad, older
// and same-release bundles are refused; an install killed half-way leaves
// A booting; N+1 boots on trial in B and is committed; a bundle whose
// sensord never becomes healthy and one whose boot hangs are rolled back;
// an older release goes in only with --allow-downgrade over SSH; a trial
// on a Pi whose sensor fails before and after commits, and one that breaks
// a reading sensor rolls back; the data partition is the same all along
// (image/README.md, "make update-test").
func (t *test) runUpdate(ctx context.Context) (err error) {
	t.phase("prepare: copy image, settings, kernel")
	dir, err := os.MkdirTemp("", "sensord-updatetest-")
	if err != nil {
		return err
	}
	t.dir = dir
	defer func() {
		t.stopQemu()
		t.stopBroker()
		if !t.opts.keep && t.failed == 0 && err == nil {
			os.RemoveAll(dir)
		} else {
			t.logf("work directory kept: %s (console-N.log per boot)", dir)
		}
	}()
	keyDir, err := os.MkdirTemp("", "sensord-updatetest-keys-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(keyDir)
	if t.key, err = newKeyPair(ctx, keyDir, "id_appliance"); err != nil {
		return err
	}
	if t.otherKey, err = newKeyPair(ctx, keyDir, "id_other"); err != nil {
		return err
	}
	kernel, initrd, cmdline, _, err := t.prepare(ctx, false)
	if err != nil {
		return err
	}
	fatBefore, err := t.bootPartitionHash()
	if err != nil {
		return err
	}

	t.phase("bundles: N+1, never-healthy, hangs, breaks the sensor, older, same, tampered, foreign key")
	v, err := t.makeBundles(ctx)
	if err != nil {
		return err
	}

	n := 0
	boot := func(name string, wantHTTP bool) error {
		t.phase("boot: " + name)
		// Keep each boot's console log: startQemu starts console.log afresh.
		if n++; n > 1 {
			os.Rename(filepath.Join(dir, "console.log"), filepath.Join(dir, fmt.Sprintf("console-%d.log", n-1)))
		}
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		for try := 1; ; try++ {
			if err := t.startQemu(kernel, initrd, GuestCmdline(cmdline)); err != nil {
				return err
			}
			_, err := t.console.waitFor(bctx, 0, "root@")
			if err == nil {
				break
			}
			// The kernel panicked before a shell and panic=10 rebooted
			// it (seen once: the emulated virtio disk failed its probe,
			// "unsupported zone model 255", so the initramfs found no
			// data partition): a Pi would boot again, so boot again.
			con, _ := os.ReadFile(filepath.Join(dir, "console.log"))
			if try > maxEarlyReboots || !strings.Contains(string(con), "Rebooting automatically due to panic=") || t.waitQemuExit(30*time.Second) != nil {
				return fmt.Errorf("no shell prompt on the serial console: %w", err)
			}
			t.logf("%s: the guest panicked and rebooted before a shell (console-%d-early-%d.log); booting it again, as the Pi would", name, n, try)
			os.Rename(filepath.Join(dir, "console.log"), filepath.Join(dir, fmt.Sprintf("console-%d-early-%d.log", n, try)))
		}
		if err := t.console.Ready(bctx, func() <-chan struct{} { return t.poke(2 * time.Second) }); err != nil {
			return err
		}
		if _, err := t.console.Run(ctx, "stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb"); err != nil {
			return err
		}
		if wantHTTP {
			if err := t.waitHTTP(bctx); err != nil {
				return err
			}
		}
		t.number("%s: qemu start to %s: %.0f s", name, map[bool]string{true: "dashboard", false: "shell"}[wantHTTP], time.Since(start).Seconds())
		return nil
	}
	reboot := func(d time.Duration) error {
		t.console.Run(ctx, "(sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 &)")
		return t.waitQemuExit(d)
	}

	// ---- boot 1: version N in slot A ----
	if err := boot("1, version N from slot A", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "A", update.ModeCommitted)
	t.expectVersion(ctx, v.n)
	r, _ := t.guest(ctx, "for m in / /etc /var /root /data; do findmnt -rno FSTYPE,OPTIONS -M $m | cut -d, -f1; done")
	t.check(strings.Join(r.Lines(), " ") == "squashfs ro overlay rw overlay rw overlay rw ext4 rw", "root is the read-only squashfs slot, /etc /var /root are overlays on /data: %q", strings.Join(r.Lines(), " | "))
	// A history file stands for sensord's state; the SSH host keys are made
	// by sensord-sshkeys after sensord starts.
	t.guest(ctx, "mkdir -p /var/lib/sensord && echo update-test > /var/lib/sensord/update-test-history")
	fp := t.dataFingerprint(ctx)
	const settingsFiles = "stat -c '%n %Y' /etc/wpa_supplicant/sensord-wifi.conf /root/.ssh/authorized_keys"
	written, _ := t.guest(ctx, settingsFiles)
	// For the boots that follow (no daemon-reload: nothing needs it now).
	t.guest(ctx, "mkdir -p /etc/systemd/system/sensord-update.service.d && printf '[Service]\\nExecStart=\\nExecStart=/usr/local/sbin/sensorctl boot -healthy-for "+testHealthyFor+" -within "+testWithin+"\\n' > /etc/systemd/system/sensord-update.service.d/test.conf")
	t.guest(ctx, "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick && ls /run/stick")

	t.phase("refuse: tampered, foreign-key, older and same-release bundles")
	state, _ := t.guest(ctx, "sha256sum /data/update/state; cat /data/update/state")
	for _, c := range []struct{ file, want string }{
		{"tampered.update", "does not match its signed hash"},
		{"foreign.update", "signed by another key"},
		{"older.update", fmt.Sprintf("bundle release %d (version %s) is not newer than the committed slot A's release %d (version %s)", v.release-1, v.older, v.release, v.n)},
		{"same.update", fmt.Sprintf("bundle release %d (version %s) is the release already running in slot A (release %d, version %s)", v.release, v.n, v.release, v.n)},
	} {
		r, _ := t.guestLong(ctx, "sensorctl update /run/stick/"+c.file+" 2>&1")
		t.check(r.Status != 0 && strings.Contains(strings.Join(r.Lines(), " "), c.want), "%s refused (%q): %q", c.file, c.want, strings.Join(r.Lines(), " | "))
	}
	// The dashboard's upload refuses the older release before spooling it.
	status, body, err := t.upload(ctx, v.olderPath)
	t.check(err == nil && status == http.StatusConflict && strings.Contains(body, "is not newer than the committed slot A") && strings.Contains(body, "--allow-downgrade"),
		"dashboard upload of the older release refused with the reason: %d %s %v", status, body, err)
	r, _ = t.guest(ctx, "ls -A /var/lib/sensord/update-spool | wc -l")
	t.check(r.Status == 0 && strings.TrimSpace(r.Out) == "0", "nothing spooled for the refused upload: %q", r.Out)
	after, _ := t.guest(ctx, "sha256sum /data/update/state; cat /data/update/state")
	t.check(after.Out == state.Out, "slot state byte-identical after the refused bundles: %q", strings.Join(after.Lines(), " "))

	t.phase("power cut: qemu killed while slot B is written")
	t.guest(ctx, "(sensorctl update /run/stick/good.update > /run/install.log 2>&1 &)")
	if err := t.waitGuest(ctx, 5*time.Minute, fmt.Sprintf("p=$(pgrep -x sensorctl) && awk '/^wchar/ { exit !($2 > %d) }' /proc/$p/io && echo written", killAfterBytes), "written"); err != nil {
		t.fail("install never got %d MiB into the slot: %v", killAfterBytes>>20, err)
	}
	t.killQemu()
	t.pass("qemu killed (SIGKILL) with the install %d+ MiB into slot B", killAfterBytes>>20)
	if err := boot("2, after the power cut", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "A", update.ModeCommitted)
	t.expectVersion(ctx, v.n)
	r, _ = t.guest(ctx, "cat /data/update/state")
	t.check(!strings.Contains(r.Out, "trial="), "no trial pending after the interrupted install: %q", strings.Join(r.Lines(), " "))
	t.check(t.dataFingerprint(ctx) == fp, "data partition (machine-id, SSH host key, history) unchanged")
	r, _ = t.guest(ctx, settingsFiles)
	t.check(r.Status == 0 && r.Out == written.Out, "sensord-settings left the unchanged Wi-Fi configuration and authorized_keys unwritten: %q", strings.Join(r.Lines(), " | "))

	t.phase("install N+1 (fresh, after the power cut)")
	t.guest(ctx, "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick")
	// The sensor reads here, and the install must record that: the trial
	// then has to keep it reading (rule alive-and-sensor).
	if err := t.waitGuest(ctx, 5*time.Minute, "grep -o '\"alive\":true.*\"sensor_reading\":true' /run/sensord/verdict >/dev/null && echo reading", "reading"); err != nil {
		t.fail("sensord's verdict never showed the sensor reading: %v", err)
	}
	start := time.Now()
	r, _ = t.guestLong(ctx, "sensorctl update /run/stick/good.update 2>&1")
	t.check(r.Status == 0 && strings.Contains(r.Out, "boots on trial"), "sensorctl update good.update: %q", strings.Join(r.Lines(), " | "))
	t.number("install of the %d-byte N+1 bundle (verify, write, read back): %.0f s", v.goodBytes, time.Since(start).Seconds())
	if err := reboot(3 * time.Minute); err != nil {
		return err
	}

	// ---- boot 3: N+1 on trial in slot B, committed once healthy ----
	if err := boot("3, N+1 on trial in slot B", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "B", update.ModeTrial)
	t.expectVersion(ctx, v.next)
	start = time.Now()
	if err := t.waitGuest(ctx, 5*time.Minute, "sensorctl status | grep -x committed=B", "committed=B"); err != nil {
		t.fail("slot B never committed: %v", err)
		t.explain(ctx, "systemctl status sensord-update --no-pager; journalctl -b -u sensord-update --no-pager | tail -n 20")
	} else {
		t.pass("slot B committed after sensord was healthy")
		t.number("trial boot: dashboard to committed: %.0f s", time.Since(start).Seconds())
	}
	r, _ = t.guest(ctx, "sensorctl status")
	t.check(r.Has("last_outcome=committed") && r.Has("version="+v.next) && r.Has(fmt.Sprintf("release=%d", v.release+1)) && r.Has("last_rule="+update.RuleAliveAndSensor),
		"sensorctl status after the commit (the sensor read at install and on trial): %q", strings.Join(r.Lines(), " | "))
	t.check(t.dataFingerprint(ctx) == fp, "data partition unchanged by the update")

	t.expectPanel(ctx, "after the commit", func(in updatePanel) bool {
		return in.Slot == "B" && in.Mode == update.ModeTrial && in.Version == v.next && in.Committed == "B" && in.Last.Outcome == "committed" && in.Last.Rule == update.RuleAliveAndSensor
	})

	// The dashboard's way in: the bundle is uploaded over HTTP to sensord,
	// which spools it; the root path unit installs it and reboots.
	t.phase("upload, on the dashboard, a bundle whose sensord never becomes healthy")
	start = time.Now()
	status, body, err = t.upload(ctx, v.badPath)
	t.check(err == nil && status == http.StatusAccepted, "dashboard upload of the never-healthy bundle accepted: %d %s %v", status, body, err)
	if err := t.waitQemuExit(10 * time.Minute); err != nil {
		t.fail("the upload was never installed and rebooted into: %v", err)
		return err
	}
	t.pass("sensord-update-spool installed the upload and rebooted")
	t.number("dashboard upload of the %d-byte bundle to reboot (upload, two verifications, write, read back): %.0f s", v.badBytes, time.Since(start).Seconds())
	if err := boot("4, the bad bundle on trial in slot A", false); err != nil {
		return err
	}
	t.expectBoot(ctx, "A", update.ModeTrial)
	start = time.Now()
	if err := t.waitQemuExit(8 * time.Minute); err != nil {
		t.fail("the failed trial never rebooted: %v", err)
		return err
	}
	t.pass("the trial of the never-healthy bundle rebooted by itself")
	t.number("bad trial: shell to reboot (health gate %s): %.0f s", testWithin, time.Since(start).Seconds())
	if err := boot("5, rolled back to slot B", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "B", update.ModeRolledBack)
	t.expectVersion(ctx, v.next)
	r, _ = t.guest(ctx, "journalctl -b -u sensord-update -o cat --no-pager | grep 'rolled back'")
	t.check(strings.Contains(r.Out, "version "+v.bad+" rolled back by rule "+update.RuleNeverAlive), "the journal says the update was rolled back, and by which rule: %q", strings.Join(r.Lines(), " | "))
	r, _ = t.guest(ctx, "sensorctl status")
	t.check(r.Has("last_outcome=rolled-back") && r.Has("last_version="+v.bad) && r.Has("last_rule="+update.RuleNeverAlive), "sensorctl status after the rollback: %q", strings.Join(r.Lines(), " | "))
	t.expectPanel(ctx, "after the rollback", func(in updatePanel) bool {
		return in.Slot == "B" && in.Mode == update.ModeRolledBack && in.Version == v.next && in.Last.Outcome == "rolled-back" && in.Last.Version == v.bad && in.Last.Rule == update.RuleNeverAlive
	})
	t.check(t.dataFingerprint(ctx) == fp, "data partition unchanged by the rollback")

	// A board that hangs on its trial boot: PID 1 stopped (pid1stop), so
	// nothing pings the hardware watchdog; it resets the guest, and the
	// try is already spent.
	t.phase("install a bundle whose trial boot hangs")
	t.guest(ctx, "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick")
	r, _ = t.guestLong(ctx, "sensorctl update /run/stick/hang.update 2>&1")
	t.check(r.Status == 0 && strings.Contains(r.Out, "boots on trial"), "sensorctl update hang.update: %q", strings.Join(r.Lines(), " | "))
	if err := reboot(3 * time.Minute); err != nil {
		return err
	}
	if err := boot("6, the hanging trial in slot A", false); err != nil {
		return err
	}
	t.expectBoot(ctx, "A", update.ModeTrial)
	r, _ = t.guest(ctx, "grep -x trial=A /data/update/state")
	t.check(r.Has("trial=A"), "the trial is not committed yet when PID 1 is stopped: %q", strings.Join(r.Lines(), " "))
	for len(t.watchdog) > 0 {
		<-t.watchdog
	}
	t.guest(ctx, "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick; (/run/stick/pid1stop > /dev/console 2>&1 &); sleep 1")
	start = time.Now()
	select {
	case at := <-t.watchdog:
		t.pass("the guest's hardware watchdog expired %.0f s after PID 1 was stopped (%.0f s after qemu started)", time.Since(start).Seconds(), at.Seconds())
	case <-time.After(3 * time.Minute):
		t.fail("the hardware watchdog never expired with PID 1 stopped")
	}
	if err := t.waitQemuExit(2 * time.Minute); err != nil {
		t.fail("the watchdog did not reset the guest: %v", err)
		return err
	}
	if err := boot("7, rolled back to slot B after the watchdog reset", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "B", update.ModeRolledBack)
	t.expectVersion(ctx, v.next)
	r, _ = t.guest(ctx, "sensorctl status")
	t.check(r.Has("last_outcome=rolled-back") && r.Has("last_version="+v.hang) && r.Has("last_rule="+update.RuleBootEnded), "sensorctl status after the watchdog reset: %q", strings.Join(r.Lines(), " | "))
	t.check(t.dataFingerprint(ctx) == fp, "data partition unchanged by the watchdog reset")

	// The sensor rule, one way: a Pi whose sensor fails before the update
	// and after it commits the trial. The sensor is made to fail by a
	// drop-in on /etc (the data partition, so every slot sees it); the
	// update is the older release, installed on purpose as root over SSH.
	t.phase("sensor failing; downgrade over SSH with --allow-downgrade")
	const sensorOff = "/etc/systemd/system/sensord.service.d/update-test-sensor-off.conf"
	t.guest(ctx, "mkdir -p /etc/systemd/system/sensord.service.d && printf '[Service]\\nEnvironment=SENSORD_SIM_NO_RESPONSE=true\\n' > "+sensorOff+" && systemctl daemon-reload && systemctl restart sensord")
	if err := t.waitGuest(ctx, 5*time.Minute, "grep -o '\"alive\":true.*\"sensor_reading\":false' /run/sensord/verdict >/dev/null && echo failing", "failing"); err != nil {
		t.fail("sensord's verdict never showed the sensor failing: %v", err)
	}
	t.guest(ctx, "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick")
	out, errOut, err := t.sshWithin(ctx, 10*time.Minute, t.key, "sensorctl update /run/stick/older.update 2>&1; echo rc=$?")
	t.check(err == nil && strings.Contains(out, "rc=1") && strings.Contains(out, "--allow-downgrade"), "over SSH without --allow-downgrade, the older release is refused: %q %q %v", out, errOut, err)
	start = time.Now()
	out, errOut, err = t.sshWithin(ctx, 10*time.Minute, t.key, "sensorctl update --allow-downgrade /run/stick/older.update 2>&1; echo rc=$?")
	t.check(err == nil && strings.Contains(out, "rc=0") && strings.Contains(out, "boots on trial"), "over SSH, --allow-downgrade installs the older release: %q %q %v", out, errOut, err)
	t.number("downgrade install over SSH: %.0f s", time.Since(start).Seconds())
	r, _ = t.guest(ctx, "sensorctl status")
	t.check(r.Has("trial=A") && r.Has("sensor_at_install="+update.SensorNotReading), "the trial is pending, the sensor recorded as not reading: %q", strings.Join(r.Lines(), " | "))
	if err := reboot(3 * time.Minute); err != nil {
		return err
	}
	if err := boot("8, the older release on trial in slot A, sensor failing", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "A", update.ModeTrial)
	if err := t.waitGuest(ctx, 5*time.Minute, "sensorctl status | grep -x committed=A", "committed=A"); err != nil {
		t.fail("the trial with a sensor failing before and after never committed: %v", err)
		t.explain(ctx, "journalctl -b -u sensord-update --no-pager | tail -n 20; cat /run/sensord/verdict")
	}
	r, _ = t.guest(ctx, "sensorctl status")
	t.check(r.Has("committed=A") && r.Has("version="+v.older) && r.Has(fmt.Sprintf("release=%d", v.release-1)) && r.Has("last_rule="+update.RuleAlive),
		"a trial whose sensor failed before and after committed by the alive rule: %q", strings.Join(r.Lines(), " | "))
	r, _ = t.guest(ctx, "journalctl -b -u sensord-update -o cat --no-pager | grep committed")
	t.check(strings.Contains(r.Out, "committed by rule "+update.RuleAlive), "the journal names the rule: %q", strings.Join(r.Lines(), " | "))

	// The other way: the sensor reads, the update breaks it, the trial
	// rolls back.
	t.phase("sensor reading; install a release that breaks it")
	t.guest(ctx, "rm "+sensorOff+" && systemctl daemon-reload && systemctl restart sensord")
	if err := t.waitGuest(ctx, 5*time.Minute, "grep -o '\"alive\":true.*\"sensor_reading\":true' /run/sensord/verdict >/dev/null && echo reading", "reading"); err != nil {
		t.fail("sensord's verdict never showed the sensor reading again: %v", err)
	}
	t.guest(ctx, "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick")
	r, _ = t.guestLong(ctx, "sensorctl update /run/stick/breaks.update 2>&1")
	t.check(r.Status == 0 && strings.Contains(r.Out, "sensor at install: "+update.SensorReading), "sensorctl update breaks.update, the sensor reading at install: %q", strings.Join(r.Lines(), " | "))
	if err := reboot(3 * time.Minute); err != nil {
		return err
	}
	if err := boot("9, the sensor-breaking release on trial in slot B", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "B", update.ModeTrial)
	start = time.Now()
	if err := t.waitQemuExit(8 * time.Minute); err != nil {
		t.fail("the trial that broke the sensor never rebooted: %v", err)
		return err
	}
	t.pass("the trial that broke a reading sensor rebooted by itself")
	t.number("sensor-breaking trial: dashboard to reboot (health gate %s): %.0f s", testWithin, time.Since(start).Seconds())
	if err := boot("10, rolled back to slot A", true); err != nil {
		return err
	}
	t.expectBoot(ctx, "A", update.ModeRolledBack)
	r, _ = t.guest(ctx, "sensorctl status")
	t.check(r.Has("version="+v.older) && r.Has("last_outcome=rolled-back") && r.Has("last_version="+v.breaks) && r.Has("last_rule="+update.RuleSensorBroken),
		"sensorctl status after the sensor-breaking trial: %q", strings.Join(r.Lines(), " | "))
	r, _ = t.guest(ctx, "journalctl -b -u sensord-update -o cat --no-pager | grep 'rolled back'")
	t.check(strings.Contains(r.Out, "version "+v.breaks+" rolled back by rule "+update.RuleSensorBroken), "the journal says which rule rolled it back: %q", strings.Join(r.Lines(), " | "))
	t.expectPanel(ctx, "after the sensor-breaking trial", func(in updatePanel) bool {
		return in.Slot == "A" && in.Mode == update.ModeRolledBack && in.Version == v.older && in.Last.Outcome == "rolled-back" && in.Last.Rule == update.RuleSensorBroken
	})
	t.check(t.dataFingerprint(ctx) == fp, "data partition unchanged by the sensor rule's updates")
	t.stopQemu()

	fatAfter, err := t.bootPartitionHash()
	if err != nil {
		return err
	}
	t.check(fatAfter == fatBefore, "boot partition (kernel, initrd, config.txt, cmdline.txt) untouched by the updates")
	t.phase("")
	return nil
}

type bundles struct {
	n, next, bad, hang, older, breaks string
	release                           uint64 // the image's release (R)
	goodBytes, badBytes               int64
	badPath                           string // on the host: the dashboard upload sends it
	olderPath                         string // on the host: an upload that must be refused
}

// makeBundles writes the test's bundles onto a second disk (a stick), each
// with its release number, R being the image's: good (R+1: the image's
// root with sensord built as version N+next), bad (R+2: sensord replaced
// by a program that exits at once), hang (R+3: good's root), breaks (R+4:
// good's root with a drop-in that stops the simulated sensor answering),
// older (R-1: good's root), same (the image's own bundle, R), tampered
// (good with one payload byte flipped) and foreign (good's payload signed
// by a new key).
func (t *test) makeBundles(ctx context.Context) (bundles, error) {
	var v bundles
	key, err := update.ReadPrivateKey(t.opts.update.key)
	if err != nil {
		return v, err
	}
	f, err := os.Open(t.opts.update.bundle)
	if err != nil {
		return v, err
	}
	defer f.Close()
	b, err := update.Open(f, key.Public().(ed25519.PublicKey))
	if err != nil {
		return v, err
	}
	v.n, v.release = b.Manifest.Version, b.Manifest.Release
	if v.release < 2 {
		return v, fmt.Errorf("the image's bundle has release %d: want 2 or more, so an older one can be made", v.release)
	}
	v.next, v.bad, v.hang, v.older, v.breaks = v.n+"+next", v.n+"+broken", v.n+"+hangs", v.n+"-older", v.n+"+nosensor"
	work := filepath.Join(t.dir, "bundles")
	stick := filepath.Join(t.dir, "stick")
	for _, d := range []string{work, stick} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return v, err
		}
	}
	defer os.RemoveAll(work)
	orig := filepath.Join(work, "orig.squashfs")
	if err := copyTo(orig, b.Payload()); err != nil {
		return v, err
	}
	run := func(env []string, args ...string) error {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	tree := filepath.Join(work, "tree")
	if err := run(nil, "unsquashfs", "-q", "-n", "-d", tree, orig); err != nil {
		return v, err
	}
	bin := filepath.Join(tree, "usr/local/bin/sensord")
	if err := run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+v.next, "-o", bin, "./cmd/sensord"); err != nil {
		return v, err
	}
	squash := func(out string) error {
		// zstd at a low level: the test's bundles need speed, not size.
		return run([]string{"SOURCE_DATE_EPOCH=0"}, "mksquashfs", tree, out, "-noappend", "-comp", "zstd", "-Xcompression-level", "3", "-quiet", "-no-progress")
	}
	sign := func(payload, out, version string, release uint64, k ed25519.PrivateKey) error {
		p, err := os.Open(payload)
		if err != nil {
			return err
		}
		defer p.Close()
		o, err := os.Create(out)
		if err != nil {
			return err
		}
		m := update.Manifest{Compatible: update.Compatible, Version: version, Release: release, Kernel: b.Manifest.Kernel}
		if err := update.Write(o, m, p, k); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	}
	good := filepath.Join(work, "good.squashfs")
	if err := squash(good); err != nil {
		return v, err
	}
	if err := sign(good, filepath.Join(stick, "good.update"), v.next, v.release+1, key); err != nil {
		return v, err
	}
	// The same root as good, named otherwise: its trial is the one the
	// test hangs (pid1stop, built for the guest, on the stick too).
	if err := sign(good, filepath.Join(stick, "hang.update"), v.hang, v.release+3, key); err != nil {
		return v, err
	}
	// An older release (good's root again: what counts is the signed
	// release) and the image's own bundle, the release that runs.
	v.olderPath = filepath.Join(t.dir, "older.update")
	if err := sign(good, v.olderPath, v.older, v.release-1, key); err != nil {
		return v, err
	}
	if err := run(nil, "cp", "--sparse=always", v.olderPath, filepath.Join(stick, "older.update")); err != nil {
		return v, err
	}
	if err := run(nil, "cp", "--sparse=always", t.opts.update.bundle, filepath.Join(stick, "same.update")); err != nil {
		return v, err
	}
	if err := run([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-o", filepath.Join(stick, "pid1stop"), "./image/boottest/pid1stop"); err != nil {
		return v, err
	}
	_, foreign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return v, err
	}
	if err := sign(good, filepath.Join(stick, "foreign.update"), v.next, v.release+1, foreign); err != nil {
		return v, err
	}
	gb, err := os.ReadFile(filepath.Join(stick, "good.update"))
	if err != nil {
		return v, err
	}
	v.goodBytes = int64(len(gb))
	gb[len(gb)/2] ^= 0x20
	if err := os.WriteFile(filepath.Join(stick, "tampered.update"), gb, 0o644); err != nil {
		return v, err
	}
	gb = nil
	// A release that breaks the sensor: sensord runs, its simulated sensor
	// no longer answers (the settings file sets no SENSORD_SIM_NO_RESPONSE,
	// so the unit's Environment= holds).
	dropin := filepath.Join(tree, "etc/systemd/system/sensord.service.d/update-test-break-sensor.conf")
	if err := os.MkdirAll(filepath.Dir(dropin), 0o755); err != nil {
		return v, err
	}
	if err := os.WriteFile(dropin, []byte("[Service]\nEnvironment=SENSORD_SIM_NO_RESPONSE=true\n"), 0o644); err != nil {
		return v, err
	}
	breaks := filepath.Join(work, "breaks.squashfs")
	if err := squash(breaks); err != nil {
		return v, err
	}
	if err := sign(breaks, filepath.Join(stick, "breaks.update"), v.breaks, v.release+4, key); err != nil {
		return v, err
	}
	if err := os.Remove(dropin); err != nil {
		return v, err
	}
	broken := "#!/bin/sh\necho 'sensord (update test): this build never becomes healthy' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(broken), 0o755); err != nil {
		return v, err
	}
	bad := filepath.Join(work, "bad.squashfs")
	if err := squash(bad); err != nil {
		return v, err
	}
	if err := sign(bad, filepath.Join(stick, "bad.update"), v.bad, v.release+2, key); err != nil {
		return v, err
	}
	t.stick = filepath.Join(t.dir, "stick.img")
	if err := run(nil, "truncate", "-s", strconv.FormatInt(9*v.goodBytes+64<<20, 10), t.stick); err != nil {
		return v, err
	}
	if err := run(nil, "mkfs.ext4", "-q", "-F", "-d", stick, t.stick); err != nil {
		return v, err
	}
	v.badPath = filepath.Join(t.dir, "bad.update")
	if err := os.Rename(filepath.Join(stick, "bad.update"), v.badPath); err != nil {
		return v, err
	}
	if fi, err := os.Stat(v.badPath); err == nil {
		v.badBytes = fi.Size()
	}
	os.RemoveAll(stick)
	t.logf("bundles: N=%s (release %d), N+1=%s (%d bytes), never healthy=%s, hangs=%s, breaks the sensor=%s, older=%s (release %d), same, tampered, foreign key",
		v.n, v.release, v.next, v.goodBytes, v.bad, v.hang, v.breaks, v.older, v.release-1)
	return v, nil
}

func copyTo(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// guestLong is guest with room for a whole install under emulation.
func (t *test) guestLong(ctx context.Context, cmd string) (Result, bool) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	r, err := t.console.Run(cctx, cmd)
	if err != nil {
		t.fail("console: %s: %v", cmd, err)
	}
	return r, err == nil
}

// waitGuest runs cmd until a line of its output is want, or d passes.
func (t *test) waitGuest(ctx context.Context, d time.Duration, cmd, want string) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		r, err := t.console.Run(wctx, cmd)
		if err != nil {
			return err
		}
		if r.Has(want) {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%q never printed %q (last: %q)", cmd, want, r.Out)
		case <-time.After(2 * time.Second):
		}
	}
}

func (t *test) expectBoot(ctx context.Context, slot, mode string) {
	r, _ := t.guest(ctx, "cat /run/sensord-boot")
	t.check(r.Has("slot="+slot) && r.Has("mode="+mode), "initramfs booted slot %s (%s): %q", slot, mode, strings.Join(r.Lines(), " "))
}

func (t *test) expectVersion(ctx context.Context, want string) {
	var h struct {
		Version string `json:"version"`
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/healthz"), nil)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
	}
	t.check(err == nil && h.Version == want, "sensord's /healthz shows version %q (got %q, %v)", want, h.Version, err)
}

// dataFingerprint hashes what the data partition must keep: the
// machine ID, the SSH host key, sensord's history.
func (t *test) dataFingerprint(ctx context.Context) string {
	if err := t.waitGuest(ctx, 5*time.Minute, "test -s /etc/ssh/ssh_host_ed25519_key.pub && echo keys", "keys"); err != nil {
		t.fail("no SSH host key: %v", err)
	}
	r, _ := t.guest(ctx, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub /var/lib/sensord/update-test-history | sha256sum")
	t.logf("data fingerprint: %s", strings.TrimSpace(r.Out))
	return strings.TrimSpace(r.Out)
}

// bootPartitionHash is the SHA-256 of every file on the disk's boot
// partition, names and contents, read with mtools: what the Pi's firmware
// loads (kernel, initrd, device trees, config.txt, cmdline.txt) and the
// settings file. Not the partition's raw bytes: Linux marks a FAT volume
// dirty while it is mounted and a reset (the watchdog step, the test's own
// stop) leaves the mark, which the next boot's fsck clears.
func (t *test) bootPartitionHash() (string, error) {
	disk := filepath.Join(t.dir, "disk.img")
	f, err := os.Open(disk)
	if err != nil {
		return "", err
	}
	p, err := ReadMBR(f)
	f.Close()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(t.dir, "fat-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("mcopy", "-s", "-n", "-i", fmt.Sprintf("%s@@%d", disk, p[0].Start), "::/", dir)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mcopy the boot partition: %v: %s", err, out)
	}
	h := sha256.New()
	n := 0
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		n++
		return nil
	})
	if err != nil {
		return "", err
	}
	t.logf("boot partition: %d files hashed", n)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// waitQemuExit waits for the guest to reboot: qemu runs with -no-reboot,
// so a reboot ends it, and the next boot is a new qemu that reads the boot
// partition again, as the Pi's firmware does.
func (t *test) waitQemuExit(d time.Duration) error {
	select {
	case err := <-t.qemuErr:
		t.qemuErr <- err
		t.logf("qemu exited (guest rebooted): %v", err)
		t.qemu = nil
		return nil
	case <-time.After(d):
		return errors.New("guest did not reboot within " + d.String())
	}
}

// killQemu is the power cut: SIGKILL to our qemu, by its PID.
func (t *test) killQemu() {
	if t.qemu == nil || t.qemu.Process == nil {
		return
	}
	syscall.Kill(t.qemu.Process.Pid, syscall.SIGKILL)
	<-t.qemuErr
	t.qemu = nil
}

// updatePanel is what the dashboard's GET /api/update answers.
type updatePanel struct {
	Available bool   `json:"available"`
	Slot      string `json:"slot"`
	Mode      string `json:"mode"`
	Version   string `json:"version"`
	Release   uint64 `json:"release"`
	Committed string `json:"committed"`
	Last      struct {
		Outcome, Version, Slot, Rule string
	} `json:"last"`
}

// expectPanel checks the dashboard's update panel (the JSON its device
// panel shows) with ok.
func (t *test) expectPanel(ctx context.Context, when string, ok func(updatePanel) bool) {
	var in updatePanel
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/api/update"), nil)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&in)
		resp.Body.Close()
	}
	t.check(err == nil && in.Available && ok(in), "the dashboard's update panel %s: %+v (%v)", when, in, err)
}

// upload posts the bundle at path to the dashboard's /api/update, as the
// page's upload form does.
func (t *test) upload(ctx context.Context, path string) (int, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", t.url("/api/update"), f)
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+settings.BootTestOwnerToken)
	resp, err := (&http.Client{Timeout: 15 * time.Minute}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
