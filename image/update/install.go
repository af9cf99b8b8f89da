package update

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Errors of the install sequence.
var (
	ErrBusy         = errors.New("update: a trial is pending")
	ErrIncompatible = errors.New("update: bundle is not for this appliance")
	ErrTooBig       = errors.New("update: payload larger than the slot")
)

// TrialTries is how many boots a new slot gets before the initramfs goes
// back to the committed one: one, so any failure of the trial boot (crash,
// hang reset by the watchdog, health never reached) rolls back on the next.
const TrialTries = 1

// Updater installs bundles into the inactive slot and commits trials.
type Updater struct {
	Key       ed25519.PublicKey
	StatePath string // the slot state on the data partition
	LastPath  string // the last update's outcome, for people and the dashboard
	Boot      Boot   // this boot, from the initramfs
	Kernel    string // the running kernel's release (uname -r)
	// Device opens slot s's block device for writing; tests give a file.
	Device func(slot string) (*os.File, error)
	Now    func() time.Time
	Log    io.Writer
}

func (u *Updater) logf(format string, a ...any) { fmt.Fprintf(u.Log, format+"\n", a...) }

// Last records the outcome of the last update attempt (KEY=value lines).
func (u *Updater) Last(outcome, version, slot, detail string) error {
	st := State{"outcome": outcome, "version": version, "slot": slot, "detail": detail,
		"time": u.Now().UTC().Format(time.RFC3339)}
	return WriteFileAtomic(u.LastPath, st.Bytes())
}

// Install verifies the bundle at path and writes it to the slot that is
// not running, then makes that slot the trial for the next boot. Until the
// last step nothing the boot reads has changed: an error (or a power cut)
// at any point leaves the running slot committed.
func (u *Updater) Install(path string) (Manifest, error) {
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
	// The kernel and initrd live on the shared boot partition, not in the
	// slots: a root whose modules are for another kernel would boot without
	// its drivers.
	if m.Kernel != u.Kernel {
		return m, fmt.Errorf("%w: its root holds modules for kernel %s, the boot partition's kernel is %s (a kernel update needs the card reflashed)",
			ErrIncompatible, m.Kernel, u.Kernel)
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return m, err
	}
	// Busy while a trial waits for its boot, and while the running slot is
	// a trial not yet committed (writing the other slot would overwrite
	// the one to roll back to).
	if st["trial"] != "" {
		return m, fmt.Errorf("%w: slot %s (%s) boots on trial next; reboot first", ErrBusy, st["trial"], st["version_"+st["trial"]])
	}
	if st["committed"] != u.Boot.Slot {
		return m, fmt.Errorf("%w: the running slot %s is on trial; wait until it is committed", ErrBusy, u.Boot.Slot)
	}
	u.logf("bundle %s: version %s, %d bytes, signed by key %s", path, m.Version, m.PayloadBytes, m.KeyID)
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
	// neither committed nor trial, and its old version is forgotten first.
	delete(st, "version_"+target)
	delete(st, "failed")
	if err := WriteFileAtomic(u.StatePath, st.Bytes()); err != nil {
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
	st["version_"+target] = m.Version
	st["trial"] = target
	st["tries"] = fmt.Sprint(TrialTries)
	if err := WriteFileAtomic(u.StatePath, st.Bytes()); err != nil {
		return m, err
	}
	if err := u.Last("installed", m.Version, target, "boots on trial at the next reboot"); err != nil {
		return m, err
	}
	u.logf("slot %s (version %s) boots on trial at the next reboot; slot %s stays committed until it is healthy", target, m.Version, u.Boot.Slot)
	return m, nil
}

// MarkGood commits the running trial slot.
func (u *Updater) MarkGood() error {
	if u.Boot.Mode != ModeTrial {
		return nil
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return err
	}
	st["committed"] = u.Boot.Slot
	delete(st, "trial")
	delete(st, "tries")
	delete(st, "failed")
	if err := WriteFileAtomic(u.StatePath, st.Bytes()); err != nil {
		return err
	}
	v := st["version_"+u.Boot.Slot]
	u.logf("slot %s (version %s) is healthy: committed", u.Boot.Slot, v)
	return u.Last("committed", v, u.Boot.Slot, "healthy on its trial boot")
}

// ReportRollback records, on the boot after a failed trial, that the
// initramfs went back to the committed slot.
func (u *Updater) ReportRollback() error {
	if u.Boot.Mode != ModeRolledBack {
		return nil
	}
	st, err := ReadState(u.StatePath)
	if err != nil {
		return err
	}
	failed := u.Boot.Failed
	v := st["version_"+failed]
	u.logf("update to version %s rolled back: its trial boot in slot %s never became healthy; running slot %s (version %s)",
		v, failed, u.Boot.Slot, st["version_"+u.Boot.Slot])
	return u.Last("rolled-back", v, failed, fmt.Sprintf("trial boot never became healthy; running slot %s", u.Boot.Slot))
}
