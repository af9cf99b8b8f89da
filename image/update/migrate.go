package update

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Files U-Boot's side of the boot partition holds: the boot loader the
// Pi's firmware starts (config.txt's kernel=) and the slot chooser it runs.
const (
	UBootName      = "u-boot.bin"
	BootScriptName = "boot.scr"
	ConfigName     = "config.txt"
)

// ErrMigrate is a boot partition that could not be moved to the layout
// where the boot script chooses the slot.
var ErrMigrate = errors.New("update: move the boot partition to U-Boot")

// Migration moves a card whose Pi firmware loads the kernel itself
// (config.txt kernel=vmlinuz-..., one kernel and initramfs at the boot
// partition's root for both slots, the slot state on the data partition)
// to the layout where U-Boot's boot script chooses the slot and its own
// boot files (image/uboot/README.md). The running root brings what the
// new layout needs (the build puts it there): its boot files and U-Boot.
//
// Each step leaves a card that boots the committed slot, and Run starts
// again where a power cut stopped it:
//
//  1. the running slot's boot files to its directory (WriteSlotBoot);
//  2. U-Boot and boot.scr at the root of the partition;
//  3. the slot state, from the data partition's, on the boot partition:
//     from here sensorctl reads and writes it there (SlotKernels), while
//     the firmware may still boot the old way, whose initramfs reads the
//     data partition's copy, the same state;
//  4. config.txt loads U-Boot, with no initramfs line: the switch;
//  5. the old kernel and initramfs at the root go, and the data
//     partition's state, which nothing reads any more.
//
// Only the committed slot runs it: its files are the ones that boot.
type Migration struct {
	FAT       string // the boot partition's mount point
	DataState string // the slot state on the data partition
	Slot      string // the running slot, committed
	BootFiles string // the running root's boot files (vmlinuz, initrd.img, dtbs/)
	UBoot     string // the running root's u-boot.bin and boot.scr
	Log       io.Writer
}

// Needed reports whether the boot partition still boots the old way (its
// config.txt names a kernel that is not U-Boot), or the move stopped
// before its end (the old kernel, initramfs or the data partition's
// state still there).
func (m Migration) Needed() (bool, error) {
	b, err := os.ReadFile(filepath.Join(m.FAT, ConfigName))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // not a Pi's boot partition
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrMigrate, err)
	}
	if _, old := loadUBoot(string(b)); len(old) > 0 {
		return true, nil
	}
	if left, err := m.oldBootFiles(); err != nil || len(left) > 0 {
		return len(left) > 0, err
	}
	_, err = os.Stat(m.DataState)
	return err == nil, nil
}

// oldBootFiles are the kernels and initramfs images at the boot
// partition's root, by the names Debian's raspi-firmware gives them.
func (m Migration) oldBootFiles() ([]string, error) {
	var files []string
	for _, pat := range []string{"vmlinuz-*", "initrd.img-*"} {
		f, err := filepath.Glob(filepath.Join(m.FAT, pat))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMigrate, err)
		}
		files = append(files, f...)
	}
	return files, nil
}

// Run makes the moves Needed asks for; see Migration.
func (m Migration) Run() error {
	if !ValidSlot(m.Slot) {
		return fmt.Errorf("%w: running slot %q", ErrMigrate, m.Slot)
	}
	for _, f := range []string{KernelName, InitrdName} {
		if _, err := os.Stat(filepath.Join(m.BootFiles, f)); err != nil {
			return fmt.Errorf("%w: the running root brings no boot files: %w", ErrMigrate, err)
		}
	}
	state := filepath.Join(m.FAT, ChooserDir, ChooserStateName)
	if !SlotKernels(m.FAT) {
		st, err := ReadState(m.DataState)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMigrate, err)
		}
		if st.Committed != m.Slot || st.Trial != "" {
			return fmt.Errorf("%w: slot %s runs, but the state commits %s (trial %q): only the committed slot moves the card",
				ErrMigrate, m.Slot, st.Committed, st.Trial)
		}
		if err := WriteSlotBoot(m.FAT, m.Slot, m.BootFiles); err != nil {
			return err
		}
		fmt.Fprintf(m.Log, "boot partition: slot %s's kernel, initramfs and device trees in %s\n", m.Slot, SlotBootDir(m.FAT, m.Slot))
		for _, f := range []string{UBootName, BootScriptName} {
			b, err := os.ReadFile(filepath.Join(m.UBoot, f))
			if err != nil {
				return fmt.Errorf("%w: %w", ErrMigrate, err)
			}
			if err := WriteFileAtomic(filepath.Join(m.FAT, f), b); err != nil {
				return fmt.Errorf("%w: %w", ErrMigrate, err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
			return fmt.Errorf("%w: %w", ErrMigrate, err)
		}
		if err := WriteState(state, st); err != nil {
			return fmt.Errorf("%w: %w", ErrMigrate, err)
		}
		fmt.Fprintf(m.Log, "boot partition: U-Boot, %s and the slot state (slot %s committed)\n", BootScriptName, st.Committed)
	}
	cfg := filepath.Join(m.FAT, ConfigName)
	b, err := os.ReadFile(cfg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMigrate, err)
	}
	edited, old := loadUBoot(string(b))
	if edited != string(b) {
		if err := WriteFileAtomic(cfg, []byte(edited)); err != nil {
			return fmt.Errorf("%w: %w", ErrMigrate, err)
		}
		fmt.Fprintf(m.Log, "boot partition: config.txt loads %s instead of %s\n", UBootName, strings.Join(old, " and "))
	}
	left, err := m.oldBootFiles()
	if err != nil {
		return err
	}
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrMigrate, err)
		}
	}
	if err := os.Remove(m.DataState); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrMigrate, err)
	}
	return nil
}

// initramfsComment is what Debian's raspi-firmware writes above the
// initramfs line; it goes with it.
var initramfsComment = map[string]bool{
	"# For details on the initramfs directive, see":                   true,
	"# https://www.raspberrypi.org/forums/viewtopic.php?f=63&t=10532": true,
}

// loadUBoot is config.txt with every kernel= line loading U-Boot and no
// initramfs line, and the files those lines named.
func loadUBoot(cfg string) (string, []string) {
	var out, old []string
	for _, l := range strings.Split(cfg, "\n") {
		t := strings.TrimSpace(l)
		if initramfsComment[t] {
			continue
		}
		if k, v, ok := strings.Cut(t, "="); ok && k == "kernel" {
			if v != UBootName {
				old = append(old, v)
			}
			out = append(out, "kernel="+UBootName)
			continue
		}
		if f := strings.Fields(t); len(f) >= 2 && f[0] == "initramfs" {
			old = append(old, f[1])
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n"), old
}
