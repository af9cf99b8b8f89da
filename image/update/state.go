package update

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The slot state is a KEY=value text file on the data partition, read and
// rewritten by the initramfs (image/initramfs/sensord-slot, a plain shell
// with no sed or grep) at every boot and by the updater:
//
//	committed=A       the slot that boots when no trial is pending
//	trial=B           the slot to try next boot ("" for none)
//	tries=1           boots of the trial left; the initramfs takes one
//	failed=B          the last trial that ran out of tries (rolled back)
//	version_A=...     what each slot holds
//	version_B=...
//
// Keys the reader does not know are kept.
type State map[string]string

// Slots of the A/B layout.
const (
	SlotA = "A"
	SlotB = "B"
)

// Other is the slot that is not s.
func Other(s string) string {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// ValidSlot reports whether s names a slot.
func ValidSlot(s string) bool { return s == SlotA || s == SlotB }

// ParseState reads KEY=value lines; blank lines and # comments are skipped.
func ParseState(r io.Reader) (State, error) {
	st := State{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("update: state line %d: %q is not KEY=value", n, l)
		}
		st[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("update: state: %w", err)
	}
	return st, nil
}

// Tries is the trial's remaining boots (0 when unset or bad).
func (s State) Tries() int {
	n, err := strconv.Atoi(s["tries"])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Bytes is the file's content, keys sorted.
func (s State) Bytes() []byte {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, s[k])
	}
	return b.Bytes()
}

// ReadState reads the state file at path.
func ReadState(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	return ParseState(f)
}

// WriteFileAtomic replaces path with data so that a power cut leaves
// either the old or the new content: a synced temporary file, a rename,
// a synced directory. Every step's error is returned, and on any error
// the old file is left as it was and the temporary file is removed.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("update: write %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp.Name())
		}
	}()
	werr := tmp.Chmod(0o644)
	if werr == nil {
		_, werr = tmp.Write(data)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("update: write %s: %w", path, werr)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("update: write %s: %w", path, err)
	}
	renamed = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("update: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("update: sync %s: %w", dir, err)
	}
	return nil
}

// Boot is what the initramfs tells the running system about this boot
// (/run/sensord-boot, the same KEY=value form): slot=A|B,
// mode=committed|trial|rolled-back, partuuid=<disk id> (the slots are its
// partitions 2 and 3), failed=<slot> when rolled back.
type Boot struct {
	Slot, Mode, PartUUID, Failed string
}

// Boot modes.
const (
	ModeCommitted  = "committed"
	ModeTrial      = "trial"
	ModeRolledBack = "rolled-back"
)

// ReadBoot reads /run/sensord-boot (or a test's copy).
func ReadBoot(path string) (Boot, error) {
	st, err := ReadState(path)
	if err != nil {
		return Boot{}, err
	}
	b := Boot{Slot: st["slot"], Mode: st["mode"], PartUUID: st["partuuid"], Failed: st["failed"]}
	if !ValidSlot(b.Slot) {
		return b, fmt.Errorf("update: %s: slot %q", path, b.Slot)
	}
	return b, nil
}

// SlotDevice is the block device of slot s on the boot disk.
func (b Boot) SlotDevice(s string) string {
	n := "02"
	if s == SlotB {
		n = "03"
	}
	return "/dev/disk/by-partuuid/" + b.PartUUID + "-" + n
}
