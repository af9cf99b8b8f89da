package update

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The boot partition as U-Boot's chooser (image/uboot/boot.cmd) reads it:
// each slot's kernel, initramfs and device trees in the slot's own
// directory, and the chooser's count of the trial's boots.
//
//	/slot-a/vmlinuz, /slot-a/initrd.img, /slot-a/dtbs/broadcom/*.dtb
//	/slot-b/...
//	/sensord/state      the slot state the script chooses by (SlotState)
//	/sensord/boots      boots=N: written by the boot script only
const (
	KernelName = "vmlinuz"
	InitrdName = "initrd.img"
	DTBDir     = "dtbs"
	// SizesName is the file, beside a slot's kernel, with the sizes of
	// its kernel and initramfs (vmlinuz_size=, initrd_size=, in hex as
	// U-Boot's filesize): the boot script refuses a file on the FAT that
	// is not as long as the one written (a torn or truncated copy), which
	// would otherwise start and hang before it could panic.
	SizesName = "sizes"
	// ChooserDir is the directory on the boot partition that holds the
	// slot state the boot script reads (ChooserStateName) and its counter
	// (BootsName).
	ChooserDir       = "sensord"
	ChooserStateName = "state"
	// BootsName is the boot script's counter, in ChooserDir.
	BootsName = "boots"
	// maxBootsFile bounds what ReadBoots reads: the script writes about
	// ten bytes.
	maxBootsFile = 4 << 10
)

// ErrBootFiles is a slot's boot files that are missing or cannot be written.
var ErrBootFiles = errors.New("update: slot boot files")

// SlotKernels reports whether the boot partition mounted at fat boots
// each slot's own kernel: its boot script chooses the slot, which it does
// once the partition holds the slot state (ChooserDir/ChooserStateName).
// Without it the script boots slot A's boot files and the initramfs
// chooses the root slot, so every slot runs the kernel the card was made
// with.
func SlotKernels(fat string) bool {
	if fat == "" {
		return false
	}
	fi, err := os.Stat(filepath.Join(fat, ChooserDir, ChooserStateName))
	return err == nil && fi.Mode().IsRegular()
}

// SlotBootDir is slot s's directory on the boot partition mounted at fat.
func SlotBootDir(fat, s string) string {
	return filepath.Join(fat, "slot-"+strings.ToLower(s))
}

// ParseBoots reads the boot script's counter: "boots=N", N one digit
// (the script counts up to SlotState.Tries, at most 9), as U-Boot's
// `env export -t` writes it, with a NUL after the last line. Anything
// else is ErrState; the script itself counts such a file as used up.
func ParseBoots(r io.Reader) (int, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBootsFile))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrState, err)
	}
	n, seen := 0, false
	err = parseLines(bytes.NewReader(bytes.TrimRight(b, "\x00")), func(k, v, _ string) error {
		if k != "boots" {
			return nil
		}
		if len(v) != 1 || v[0] < '0' || v[0] > '9' {
			return fmt.Errorf("boots %q is not one digit", v)
		}
		n, seen = int(v[0]-'0'), true
		return nil
	})
	if err != nil {
		return 0, err
	}
	if !seen {
		return 0, fmt.Errorf("%w: no boots= line", ErrState)
	}
	return n, nil
}

// ReadBoots reads the counter at path; a missing file is 0 boots, as the
// boot script reads it.
func ReadBoots(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	n, err := ParseBoots(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ResetBoots removes the counter at path, so that the next trial starts
// at 0 boots; it must happen before the state names the trial.
func ResetBoots(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("update: reset the trial's boots: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// WriteSlotBoot replaces slot s's boot files on the boot partition mounted
// at fat with the files under src (the new slot's kernel, initramfs and
// device trees): the old directory removed, a copy in slot-X.new, each
// file synced, then renamed into its place. The old files go first: the
// partition (256 MiB) holds the firmware and two slots of about 90 MB
// each, not a third copy, and the slot being replaced is never the one
// that boots (Install names it neither committed nor trial while it
// writes it). The boot script boots slot s only once the state names it,
// which Install writes after this returns: until then a power cut leaves
// a slot that is not chosen. Every write, sync, close, remove and rename
// error is returned; a partial copy is removed.
func WriteSlotBoot(fat, s, src string) error {
	for _, name := range []string{KernelName, InitrdName} {
		if fi, err := os.Stat(filepath.Join(src, name)); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			return fmt.Errorf("%w: the new slot has no %s in %s", ErrBootFiles, name, src)
		}
	}
	dst := SlotBootDir(fat, s)
	tmp := dst + ".new"
	for _, d := range []string{tmp, dst} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("%w: slot %s: %w", ErrBootFiles, s, err)
		}
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, to)
		default:
			return fmt.Errorf("%s is neither a file nor a directory", p)
		}
	})
	if err == nil {
		err = writeSizes(src, filepath.Join(tmp, SizesName))
	}
	if err == nil {
		err = syncDir(tmp)
	}
	if err != nil {
		// The partial copy must not fill the partition.
		if rerr := os.RemoveAll(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("%w: slot %s: %w", ErrBootFiles, s, err)
	}
	// The renamed directory is synced itself: on vfat that writes its
	// entry, which the rename leaves to the directory's next write-back.
	err = os.Rename(tmp, dst)
	if err == nil {
		err = syncDir(dst)
	}
	if err == nil {
		err = syncDir(fat)
	}
	if err != nil {
		return fmt.Errorf("%w: slot %s: %w", ErrBootFiles, s, err)
	}
	return nil
}

// writeSizes writes the sizes file of the kernel and initramfs in src.
func writeSizes(src, to string) error {
	var b strings.Builder
	for _, name := range []string{KernelName, InitrdName} {
		fi, err := os.Stat(filepath.Join(src, name))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s_size=%x\n", strings.TrimSuffix(name, ".img"), fi.Size())
	}
	return writeNew(to, strings.NewReader(b.String()))
}

// copyFile copies the regular file from to the new file to and syncs it.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeNew(to, in)
}

// writeNew creates the file to with what r holds and syncs it.
func writeNew(to string, r io.Reader) error {
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", to, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("update: sync %s: %w", dir, err)
	}
	return nil
}
