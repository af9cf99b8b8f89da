package update

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sensord/internal/testutil"
)

func TestParseBootsReadsWhatTheBootScriptWrites(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int
		bad      bool
	}{
		{"U-Boot's env export -t, with its NUL", "boots=2\n\x00", 2, false},
		{"without the NUL", "boots=0\n", 0, false},
		{"the highest count", "boots=9\n", 9, false},
		{"two digits are not a count", "boots=10\n", 0, true},
		{"a letter is not a count", "boots=x\n", 0, true},
		{"an empty value is not a count", "boots=\n", 0, true},
		{"an empty file has no count", "", 0, true},
		{"a torn write: NULs only", "\x00\x00\x00", 0, true},
		{"a line that is not KEY=value", "boots\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBoots(strings.NewReader(tc.in))
			if tc.bad {
				if !errors.Is(err, ErrState) {
					t.Fatalf("got %d, %v; want ErrState", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func FuzzParseBoots(f *testing.F) {
	for _, s := range []string{"boots=1\n\x00", "boots=9\n", "boots=x\n", "", "\x00", "a=b\nboots=3\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseBoots(bytes.NewReader(b))
		if err == nil && (n < 0 || n > 9) {
			t.Fatalf("%q: %d boots without an error", b, n)
		}
		if err != nil && !errors.Is(err, ErrState) {
			t.Fatalf("%q: %v is not ErrState", b, err)
		}
	})
}

func TestReadBootsAndResetBoots(t *testing.T) {
	p := filepath.Join(t.TempDir(), BootsName)
	if n, err := ReadBoots(p); err != nil || n != 0 {
		t.Fatalf("a missing counter: got %d, %v; want 0 boots", n, err)
	}
	if err := os.WriteFile(p, []byte("boots=3\n\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadBoots(p); err != nil || n != 3 {
		t.Fatalf("got %d, %v; want 3", n, err)
	}
	if err := ResetBoots(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the counter is still there after ResetBoots: %v", err)
	}
	if err := ResetBoots(p); err != nil {
		t.Fatalf("resetting a missing counter: %v", err)
	}
}

// newSlotFiles makes a slot's boot files under dir: a kernel, an
// initramfs and a device tree of the given sizes.
func newSlotFiles(t *testing.T, dir string, kernel, initrd int) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	for name, size := range map[string]int{
		KernelName: kernel,
		InitrdName: initrd,
		filepath.Join(DTBDir, "broadcom", "b.dtb"): 100,
	} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte(name[:1]), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func TestWriteSlotBootReplacesTheSlotsFiles(t *testing.T) {
	fat := t.TempDir()
	old := filepath.Join(SlotBootDir(fat, SlotB), "stale-from-the-old-slot")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := newSlotFiles(t, t.TempDir(), 1000, 500)
	if err := WriteSlotBoot(fat, SlotB, src); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, fat); strings.Join(got, " ") != "slot-b" {
		t.Fatalf("the boot partition holds %v, want slot-b alone", got)
	}
	for name, size := range map[string]int64{KernelName: 1000, InitrdName: 500, "dtbs/broadcom/b.dtb": 100} {
		fi, err := os.Stat(filepath.Join(fat, "slot-b", name))
		if err != nil || fi.Size() != size {
			t.Errorf("slot-b/%s: %v, want %d bytes", name, err, size)
		}
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old slot's file survived: %v", err)
	}
	sizes, err := os.ReadFile(filepath.Join(fat, "slot-b", SizesName))
	if want := "vmlinuz_size=3e8\ninitrd_size=1f4\n"; err != nil || string(sizes) != want {
		t.Errorf("slot-b/%s: %q, %v; want %q (hex, as U-Boot's filesize)", SizesName, sizes, err, want)
	}
}

func TestWriteSlotBootRefusesWithoutAKernel(t *testing.T) {
	src := newSlotFiles(t, t.TempDir(), 1000, 500)
	if err := os.Remove(filepath.Join(src, KernelName)); err != nil {
		t.Fatal(err)
	}
	fat := t.TempDir()
	if err := WriteSlotBoot(fat, SlotA, src); !errors.Is(err, ErrBootFiles) {
		t.Fatalf("got %v, want ErrBootFiles", err)
	}
	if got := entries(t, fat); len(got) != 0 {
		t.Fatalf("the boot partition holds %v after a refusal", got)
	}
}

// A full boot partition: the copy fails with ENOSPC, the error says so,
// the other slot's files stay as they were and the partial copy is gone.
func TestWriteSlotBootOnAFullDiskSaysSo(t *testing.T) {
	fat := testutil.SmallDisk(t, "size=256k")
	if err := WriteSlotBoot(fat, SlotA, newSlotFiles(t, t.TempDir(), 64<<10, 32<<10)); err != nil {
		t.Fatal(err)
	}
	big := newSlotFiles(t, t.TempDir(), 512<<10, 32<<10)
	err := WriteSlotBoot(fat, SlotB, big)
	if !errors.Is(err, ErrBootFiles) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ErrBootFiles and ENOSPC", err)
	}
	fi, serr := os.Stat(filepath.Join(SlotBootDir(fat, SlotA), KernelName))
	if serr != nil || fi.Size() != 64<<10 {
		t.Fatalf("slot-a/vmlinuz after the refusal: %v, want its 64 KiB", serr)
	}
	if got := entries(t, fat); strings.Join(got, " ") != "slot-a" {
		t.Fatalf("the boot partition holds %v after the refusal, want slot-a alone", got)
	}
}

// Two slots fill the partition but for less than a third: replacing one
// still fits, since its old files go before the new ones are written.
func TestWriteSlotBootReplacesASlotOnAPartitionWithoutRoomForThree(t *testing.T) {
	fat := testutil.SmallDisk(t, "size=512k")
	for _, s := range []string{SlotA, SlotB} {
		if err := WriteSlotBoot(fat, s, newSlotFiles(t, t.TempDir(), 160<<10, 32<<10)); err != nil {
			t.Fatalf("slot %s: %v", s, err)
		}
	}
	if err := WriteSlotBoot(fat, SlotB, newSlotFiles(t, t.TempDir(), 170<<10, 32<<10)); err != nil {
		t.Fatalf("replacing slot B: %v", err)
	}
	fi, err := os.Stat(filepath.Join(SlotBootDir(fat, SlotB), KernelName))
	if err != nil || fi.Size() != 170<<10 {
		t.Fatalf("slot-b/vmlinuz: %v, want the new 170 KiB", err)
	}
}
