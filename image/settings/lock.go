package settings

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes the lock every writer of the settings file at path holds
// from reading it to renaming the edited copy into place: the settings
// page's helper, the setup access point and the Imager import run as
// separate root processes, and without it an edit read before another's
// rename would put the old values back. It is a flock on the file's
// directory, so nothing is written to the card for it; unlock releases it.
func Lock(path string) (unlock func(), err error) {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("settings: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("settings: lock %s: %w", dir, err)
	}
	return func() { d.Close() }, nil
}
