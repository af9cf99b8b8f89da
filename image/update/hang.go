package update

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TrialPanic is one of the kernel's hang detectors that a trial boot
// turns into a panic: Param is what the boot script adds to the trial's
// command line (image/uboot/boot.cmd, trial_args), Sysctl the file under
// /proc/sys that holds the same switch at run time.
type TrialPanic struct {
	Param, Sysctl string
}

// TrialPanics are the trial boot's hang detectors, in the boot script's
// order. Until systemd arms the hardware watchdog nothing else resets a
// board whose new kernel hangs; with these the kernel panics instead, and
// cmdline.txt's panic= reboots into the boot that rolls the trial back.
// Once the trial commits they are off again (the kernel's defaults):
// a committed system is not rebooted for a task that waits long on a slow
// SD card.
var TrialPanics = []TrialPanic{
	{"softlockup_panic=1", "kernel/softlockup_panic"},
	{"nmi_watchdog=panic", "kernel/hardlockup_panic"},
	{"hung_task_panic=1", "kernel/hung_task_panic"},
	{"oops=panic", "kernel/panic_on_oops"},
	{"sysctl.kernel.panic_on_rcu_stall=1", "kernel/panic_on_rcu_stall"},
}

// relaxTrialPanics turns TrialPanics off under procSys (/proc/sys). A
// switch this kernel does not have (its detector is not built in) is
// left; every other failure is returned, after trying the rest.
func relaxTrialPanics(procSys string) error {
	var errs []error
	for _, p := range TrialPanics {
		err := writeExisting(filepath.Join(procSys, p.Sysctl), "0\n")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", p.Sysctl, err))
		}
	}
	return errors.Join(errs...)
}

// writeExisting writes s over the file at path, which must exist: a
// sysctl is never made.
func writeExisting(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}
