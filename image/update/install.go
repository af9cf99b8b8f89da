package update

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Errors of the install sequence.
var (
	ErrBusy         = errors.New("update: a trial is pending")
	ErrIncompatible = errors.New("update: bundle is not for this appliance")
	ErrTooBig       = errors.New("update: payload larger than the slot")
	ErrNotNewer     = errors.New("update: bundle is not newer than what runs")
	// ErrCommitted: the running slot was committed while its health gate
	// still ran (sensorctl mark-good), so the gate's decision no longer
	// applies: nothing is recorded and nothing reboots.
	ErrCommitted = errors.New("update: the running slot is already committed")
)

// TrialTries is how many boots a new slot gets before the boot script
// (or, on a card whose state is on the data partition, the initramfs)
// goes back to the committed one: one, so any failure of the trial boot
// (a kernel that does not start or panics, a crash, a hang reset by the
// watchdog, health never reached) rolls back on the next.
const TrialTries = 1

// Updater installs bundles into the inactive slot and commits trials.
type Updater struct {
	Key ed25519.PublicKey
	// StatePath is the slot state: on the boot partition once its boot
	// script chooses the slot (SlotKernels), else on the data partition.
	// StateView, when set, gets a copy at every write and at PublishState:
	// sensord may not read the boot partition (it holds the Wi-Fi
	// passphrase), so it shows the state from there.
	StatePath, StateView string
	LastPath             string // the last update's outcome, for people and the dashboard
	Boot                 Boot   // this boot, from the initramfs
	Kernel               string // the running kernel's release (uname -r)
	// Device opens slot s's block device for writing; tests give a file.
	Device func(slot string) (*os.File, error)
	// BootPartition is where the boot partition is mounted. Once its boot
	// script chooses the slot (SlotKernels), each slot boots its own
	// kernel: Install copies the new slot's boot files there, and a
	// bundle may bring another kernel than the running one.
	BootPartition string
	// SlotFiles opens slot s's root, as written, read-only and gives the
	// directory of its boot files in it (paths.SlotBoot) and how to close
	// it again; tests give a directory.
	SlotFiles func(slot string) (dir string, closeSlot func() error, err error)
	// ProcSys is where the kernel's sysctls are (/proc/sys): MarkGood turns
	// the trial's TrialPanics off there. Empty: left alone (tests).
	ProcSys string
	Now     func() time.Time
	Log     io.Writer
}

func (u *Updater) logf(format string, a ...any) { fmt.Fprintf(u.Log, format+"\n", a...) }

// writeState replaces the slot state, then its view.
func (u *Updater) writeState(st SlotState) error {
	if err := WriteState(u.StatePath, st); err != nil {
		return err
	}
	if u.StateView == "" {
		return nil
	}
	return WriteState(u.StateView, st)
}

// PublishState copies the slot state to StateView as it is now: at boot,
// before anything changes it, so sensord shows it from the start.
func (u *Updater) PublishState() error {
	st, err := ReadState(u.StatePath)
	if err != nil || u.StateView == "" {
		return err
	}
	return WriteState(u.StateView, st)
}

// Record writes o as the last update attempt's outcome, stamped now.
func (u *Updater) Record(o Outcome) error {
	o.Time = u.Now().UTC().Format(time.RFC3339)
	return WriteOutcome(u.LastPath, o)
}

// InstallOptions are the choices of the person installing.
type InstallOptions struct {
	// AllowDowngrade installs a bundle whose release is not newer than
	// the committed slot's (sensorctl update --allow-downgrade, as root).
	AllowDowngrade bool
	// SensorAtInstall is whether the sensor reads well now
	// (SensorReading, SensorNotReading): the trial must keep it reading.
	SensorAtInstall string
}

// CheckRelease refuses a bundle whose release is the running slot's or
// not newer than the committed slot's, naming both; a bundle or slot
// without a release number counts as release 0.
func CheckRelease(st SlotState, running string, m Manifest) error {
	run := st.Slot(running)
	if m.Release == run.Release {
		return fmt.Errorf("%w: bundle release %d (version %s) is the release already running in slot %s (release %d, version %s)%s",
			ErrNotNewer, m.Release, m.Version, running, run.Release, run.Version, noRelease(m))
	}
	com := st.Slot(st.Committed)
	if m.Release <= com.Release {
		return fmt.Errorf("%w: bundle release %d (version %s) is not newer than the committed slot %s's release %d (version %s)%s",
			ErrNotNewer, m.Release, m.Version, st.Committed, com.Release, com.Version, noRelease(m))
	}
	return nil
}

func noRelease(m Manifest) string {
	if m.Release == 0 {
		return "; the bundle carries no release number (built before release numbers), which counts as release 0"
	}
	return ""
}

// Install verifies the bundle at path and writes it to the slot that is
// not running, then makes that slot the trial for the next boot. Until the
// last step nothing the boot reads has changed: an error (or a power cut)
// at any point leaves the running slot committed.
func (u *Updater) Install(path string, o InstallOptions) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Manifest{}, fmt.Errorf("update: %w", err)
	}
	b, err := Open(f, u.Key)
	if err != nil {
		return Manifest{}, err
	}
	m := b.Manifest
	if m.Compatible != Compatible {
		return m, fmt.Errorf("%w: built for %q, this is %q", ErrIncompatible, m.Compatible, Compatible)
	}
	// Until the boot script chooses the slot, the kernel and initrd the
	// card was made with boot every slot: a root whose modules are for
	// another kernel would boot without its drivers.
	slotKernels := SlotKernels(u.BootPartition)
	if !slotKernels && m.Kernel != u.Kernel {
		return m, fmt.Errorf("%w: its root holds modules for kernel %s, the boot partition's kernel is %s (a kernel update needs the card reflashed)",
			ErrIncompatible, m.Kernel, u.Kernel)
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return m, err
	}
	if _, err := st.busy(u.Boot.Slot); err != nil {
		return m, err
	}
	if err := CheckRelease(st, u.Boot.Slot, m); err != nil {
		if !o.AllowDowngrade {
			return m, fmt.Errorf("%w; to go back on purpose, as root: sensorctl update --allow-downgrade FILE", err)
		}
		u.logf("installing anyway (--allow-downgrade): %v", err)
	}
	u.logf("bundle %s: version %s, release %d, %d bytes, signed by key %s", path, m.Version, m.Release, m.PayloadBytes, m.KeyID)
	if err := b.Verify(fi.Size()); err != nil {
		return m, err
	}
	u.logf("signature and payload hash verified")

	target := Other(u.Boot.Slot)
	dev, err := u.Device(target)
	if err != nil {
		return m, fmt.Errorf("update: open slot %s: %w", target, err)
	}
	defer dev.Close()
	size, err := dev.Seek(0, io.SeekEnd)
	if err != nil {
		return m, fmt.Errorf("update: slot %s size: %w", target, err)
	}
	if m.PayloadBytes > size {
		return m, fmt.Errorf("%w: %d bytes for a %d-byte slot", ErrTooBig, m.PayloadBytes, size)
	}
	// The slot is not bootable while it is written: the state names it
	// neither committed nor trial, and its old contents are forgotten first.
	*st.Slot(target) = SlotInfo{}
	st.Failed = ""
	st.SensorAtInstall = ""
	if err := u.writeState(st); err != nil {
		return m, err
	}
	u.logf("writing slot %s (%s)", target, dev.Name())
	start := u.Now()
	if _, err := dev.Seek(0, io.SeekStart); err != nil {
		return m, fmt.Errorf("update: %w", err)
	}
	if _, err := io.Copy(dev, b.Payload()); err != nil {
		return m, fmt.Errorf("update: write slot %s: %w", target, err)
	}
	if err := dev.Sync(); err != nil {
		return m, fmt.Errorf("update: sync slot %s: %w", target, err)
	}
	// Read back what the card holds: the bytes that will boot.
	if err := b.CheckHash(io.NewSectionReader(dev, 0, m.PayloadBytes)); err != nil {
		return m, fmt.Errorf("update: slot %s after writing: %w", target, err)
	}
	u.logf("slot %s written and read back in %.1fs", target, u.Now().Sub(start).Seconds())
	if slotKernels {
		if err := u.installBootFiles(target); err != nil {
			return m, err
		}
		u.logf("slot %s's kernel %s, initramfs and device trees copied to %s", target, m.Kernel, SlotBootDir(u.BootPartition, target))
	}
	*st.Slot(target) = SlotInfo{Version: m.Version, Release: m.Release}
	st.Trial = target
	st.Tries = TrialTries
	st.SensorAtInstall = o.SensorAtInstall
	if st.SensorAtInstall == "" {
		st.SensorAtInstall = SensorNotReading
	}
	if err := u.writeState(st); err != nil {
		return m, err
	}
	if err := u.Record(Outcome{Outcome: OutcomeInstalled, Version: m.Version, Release: m.Release, Slot: target,
		Detail: "boots on trial at the next reboot; the sensor was " + st.SensorAtInstall + " at install"}); err != nil {
		return m, err
	}
	u.logf("slot %s (version %s, release %d) boots on trial at the next reboot; slot %s stays committed until the trial passes its health gate (sensor at install: %s)",
		target, m.Version, m.Release, u.Boot.Slot, st.SensorAtInstall)
	return m, nil
}

// installBootFiles copies slot s's boot files, from its root as written,
// to its directory on the boot partition, and resets the boot script's
// count of a trial's boots, before the state names s the trial.
func (u *Updater) installBootFiles(s string) (err error) {
	if u.SlotFiles == nil {
		return fmt.Errorf("%w: slot %s: no way to open its root", ErrBootFiles, s)
	}
	dir, closeSlot, err := u.SlotFiles(s)
	if err != nil {
		return fmt.Errorf("%w: open slot %s: %w", ErrBootFiles, s, err)
	}
	defer func() {
		if cerr := closeSlot(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("%w: close slot %s: %w", ErrBootFiles, s, cerr))
		}
	}()
	if err := ResetBoots(filepath.Join(u.BootPartition, ChooserDir, BootsName)); err != nil {
		return err
	}
	return WriteSlotBoot(u.BootPartition, s, dir)
}

// Trial is the running trial's state, for the health gate: nil when this
// boot is not a trial.
func (u *Updater) Trial() (*SlotState, error) {
	if u.Boot.Mode != ModeTrial {
		return nil, nil
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// MarkGood commits the running trial slot; rule and detail say what
// decided (a Gate's Decision, or RuleMarkGood). A slot already committed
// is ErrCommitted, its outcome (and the rule that decided) left as it is.
func (u *Updater) MarkGood(rule, detail string) error {
	if u.Boot.Mode != ModeTrial {
		return nil
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return err
	}
	if st.Committed == u.Boot.Slot {
		return fmt.Errorf("%w: slot %s", ErrCommitted, u.Boot.Slot)
	}
	st.Committed = u.Boot.Slot
	st.Trial, st.Tries, st.Failed, st.SensorAtInstall = "", 0, "", ""
	if err := u.writeState(st); err != nil {
		return err
	}
	in := st.Slot(u.Boot.Slot)
	u.logf("slot %s (version %s, release %d) committed by rule %s: %s", u.Boot.Slot, in.Version, in.Release, rule, detail)
	if u.ProcSys != "" {
		if err := relaxTrialPanics(u.ProcSys); err != nil {
			u.logf("the trial's hang detectors still panic until the next boot: %v", err)
		}
	}
	return u.Record(Outcome{Outcome: OutcomeCommitted, Version: in.Version, Release: in.Release, Slot: u.Boot.Slot, Rule: rule, Detail: detail})
}

// GiveUp records, before the reboot that rolls the trial back, which rule
// failed it; ReportRollback names that rule on the next boot. A trial
// with boots left (the boot script gives it several) gets none: the gate
// has decided, and another try would only wait out the gate again. A slot
// committed meanwhile by hand is ErrCommitted: there is nothing to roll
// back, and the caller must not reboot.
func (u *Updater) GiveUp(rule, detail string) error {
	st, err := ReadState(u.StatePath)
	if err != nil {
		return err
	}
	if st.Committed == u.Boot.Slot {
		return fmt.Errorf("%w: slot %s (by hand, while the gate ran), so rule %s does not roll it back", ErrCommitted, u.Boot.Slot, rule)
	}
	if st.Trial == u.Boot.Slot && st.Tries != 0 {
		st.Tries = 0
		if err := u.writeState(st); err != nil {
			return err
		}
	}
	in := st.Slot(u.Boot.Slot)
	u.logf("trial of slot %s (version %s) failed by rule %s: %s; rebooting into the committed slot %s", u.Boot.Slot, in.Version, rule, detail, st.Committed)
	return u.Record(Outcome{Outcome: OutcomeGaveUp, Version: in.Version, Release: in.Release, Slot: u.Boot.Slot, Rule: rule, Detail: detail})
}

// ReportRollback records, on the boot after a failed trial, that the
// boot went back to the committed slot, and which rule decided: the
// health gate's, when it gave up, or RuleBootEnded when the trial boot
// ended before the gate decided (a crash, a watchdog reset, a panic, a
// power cut).
func (u *Updater) ReportRollback() error {
	if u.Boot.Mode != ModeRolledBack {
		return nil
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return err
	}
	failed := u.Boot.Failed
	// The initramfs forgets the trial itself when it rolls back; the boot
	// script never writes the state, so the trial it gave up on is
	// forgotten here, or every later boot would be a rollback too.
	if st.Trial == failed {
		st.Trial, st.Tries, st.Failed = "", 0, failed
		if err := u.writeState(st); err != nil {
			return err
		}
	}
	in := st.Slot(failed)
	rule, why := RuleBootEnded, "the trial boot ended before its health gate decided (crash, hang reset by the watchdog, kernel panic or power cut)"
	if last, err := ReadOutcome(u.LastPath); err == nil && last.Outcome == OutcomeGaveUp && last.Slot == failed && last.Version == in.Version {
		rule, why = last.Rule, last.Detail
	}
	u.logf("update to version %s rolled back by rule %s: its trial boot in slot %s never became healthy (%s); running slot %s (version %s)",
		in.Version, rule, failed, why, u.Boot.Slot, st.Slot(u.Boot.Slot).Version)
	return u.Record(Outcome{Outcome: OutcomeRolledBack, Version: in.Version, Release: in.Release, Slot: failed, Rule: rule,
		Detail: fmt.Sprintf("%s; running slot %s", why, u.Boot.Slot)})
}
