package update

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"sensord/internal/atomicfile"
)

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

// ErrState is a state, boot or outcome file that does not parse.
var ErrState = errors.New("update: bad state file")

// Sensor states recorded at install time (SlotState.SensorAtInstall).
const (
	SensorReading    = "reading"     // a good reading within SensorFresh of the install
	SensorNotReading = "not-reading" // failing, waiting, or sensord not answering
)

// SlotInfo is what a slot holds, from the signed manifest that wrote it.
type SlotInfo struct {
	Version string
	Release uint64 // 0: written by an updater or image without release numbers
}

// SlotState is the slot state (doc.go, "Where the slot state lives"): a
// text file of KEY=value lines that U-Boot's boot script reads (only
// committed, trial and tries, with `env import -t`), or, on a card whose
// state is on the data partition, the initramfs
// (image/initramfs/sensord-state, a plain shell with no sed or grep) reads
// and rewrites at every boot; ParseState and SlotState.Marshal read and
// write it here.
//
//	committed=A             the slot that boots when no trial is pending
//	trial=B                 the slot to try next boot (absent: none)
//	tries=1                 boots the trial gets (the boot script counts them
//	                        in its own file; the initramfs counts this down)
//	failed=B                the last trial that ran out of tries (rolled back)
//	version_A=...           what each slot holds (absent: unknown, or being written)
//	release_A=42
//	version_B=...
//	release_B=43
//	sensor_at_install=reading   whether the sensor read well when the trial
//	                            was installed (the trial's health gate)
//
// Lines with keys this version does not know are kept, in order.
type SlotState struct {
	Committed       string
	Trial           string // "" for none
	Tries           int
	Failed          string // "" for none
	A, B            SlotInfo
	SensorAtInstall string // SensorReading, SensorNotReading or "" (unknown)
	Unknown         []string
}

// Slot is slot s's SlotInfo.
func (st *SlotState) Slot(s string) *SlotInfo {
	if s == SlotB {
		return &st.B
	}
	return &st.A
}

// parseLines calls f with each KEY=value line of r (blank lines and #
// comments skipped); f's error is returned with the line's number.
func parseLines(r io.Reader, f func(k, v, line string) error) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("%w: line %d: %q is not KEY=value", ErrState, n, l)
		}
		if err := f(k, v, l); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrState, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return nil
}

func parseSlot(v string, empty bool) (string, error) {
	if ValidSlot(v) || (empty && v == "") {
		return v, nil
	}
	return "", fmt.Errorf("slot %q is neither A nor B", v)
}

// ParseState reads a slot state. A missing committed= is slot A, as the
// initramfs reads it.
func ParseState(r io.Reader) (SlotState, error) {
	st := SlotState{Committed: SlotA}
	err := parseLines(r, func(k, v, line string) error {
		var err error
		switch k {
		case "committed":
			st.Committed, err = parseSlot(v, false)
		case "trial":
			st.Trial, err = parseSlot(v, true)
		case "failed":
			st.Failed, err = parseSlot(v, true)
		case "tries":
			st.Tries, err = strconv.Atoi(v)
			if err == nil && (st.Tries < 0 || st.Tries > 9) {
				err = fmt.Errorf("tries %d is not 0..9", st.Tries)
			}
		case "version_A", "version_B":
			st.Slot(k[len(k)-1:]).Version = v
		case "release_A", "release_B":
			st.Slot(k[len(k)-1:]).Release, err = strconv.ParseUint(v, 10, 64)
		case "sensor_at_install":
			st.SensorAtInstall = v
		default:
			st.Unknown = append(st.Unknown, line)
		}
		return err
	})
	if err != nil {
		return SlotState{}, err
	}
	return st, nil
}

// checkValue refuses a value that would break the line format.
func checkValue(k, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") || strings.TrimSpace(v) != v {
		return fmt.Errorf("%w: %s=%q has a line break or surrounding space", ErrState, k, v)
	}
	return nil
}

// kv is one line of a KEY=value file, in the order written.
type kv struct{ k, v string }

func marshalLines(lines []kv, extra []string) ([]byte, error) {
	var b bytes.Buffer
	for _, l := range lines {
		if err := checkValue(l.k, l.v); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s=%s\n", l.k, l.v)
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.Bytes(), nil
}

// Marshal is the state file's content: the keys in a fixed order, empty
// ones left out, then the unknown lines.
func (st SlotState) Marshal() ([]byte, error) {
	if !ValidSlot(st.Committed) {
		return nil, fmt.Errorf("%w: committed slot %q", ErrState, st.Committed)
	}
	lines := []kv{{"committed", st.Committed}}
	if st.Trial != "" {
		if !ValidSlot(st.Trial) {
			return nil, fmt.Errorf("%w: trial slot %q", ErrState, st.Trial)
		}
		lines = append(lines, kv{"trial", st.Trial}, kv{"tries", strconv.Itoa(st.Tries)})
	}
	if st.Failed != "" {
		lines = append(lines, kv{"failed", st.Failed})
	}
	for _, s := range []string{SlotA, SlotB} {
		in := st.Slot(s)
		if in.Version != "" {
			lines = append(lines, kv{"version_" + s, in.Version})
		}
		if in.Release != 0 {
			lines = append(lines, kv{"release_" + s, strconv.FormatUint(in.Release, 10)})
		}
	}
	if st.SensorAtInstall != "" {
		lines = append(lines, kv{"sensor_at_install", st.SensorAtInstall})
	}
	return marshalLines(lines, st.Unknown)
}

// ReadState reads the state file at path.
func ReadState(path string) (SlotState, error) {
	f, err := os.Open(path)
	if err != nil {
		return SlotState{}, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	st, err := ParseState(f)
	if err != nil {
		return SlotState{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// WriteState replaces the state file at path (WriteFileAtomic).
func WriteState(path string, st SlotState) error {
	b, err := st.Marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic replaces path with data so that a power cut leaves
// either the old or the new content: a synced temporary file, a rename,
// a synced directory. Every step's error is returned, and on any error
// the old file is left as it was and the temporary file is removed.
func WriteFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// Boot is what the initramfs tells the running system about this boot
// (/run/sensord-boot, the same KEY=value form): slot=A|B,
// mode=committed|trial|rolled-back, partuuid=<disk id> (the slots are its
// partitions 2 and 3), failed=<slot> when rolled back.
type Boot struct {
	Slot, Mode, PartUUID, Failed string
	// Initramfs is the version of the build that made the initramfs
	// that booted (empty: one that does not say): after an update that
	// brings its own boot files, the trial's.
	Initramfs string
}

// Boot modes.
const (
	ModeCommitted  = "committed"
	ModeTrial      = "trial"
	ModeRolledBack = "rolled-back"
)

// ParseBoot reads what the initramfs wrote to /run/sensord-boot.
func ParseBoot(r io.Reader) (Boot, error) {
	var b Boot
	err := parseLines(r, func(k, v, _ string) error {
		switch k {
		case "slot":
			b.Slot = v
		case "mode":
			b.Mode = v
		case "partuuid":
			b.PartUUID = v
		case "failed":
			b.Failed = v
		case "initramfs":
			b.Initramfs = v
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	if !ValidSlot(b.Slot) {
		return b, fmt.Errorf("%w: slot %q", ErrState, b.Slot)
	}
	return b, nil
}

// ReadBoot reads /run/sensord-boot (or a test's copy).
func ReadBoot(path string) (Boot, error) {
	f, err := os.Open(path)
	if err != nil {
		return Boot{}, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	b, err := ParseBoot(f)
	if err != nil {
		return b, fmt.Errorf("%s: %w", path, err)
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
