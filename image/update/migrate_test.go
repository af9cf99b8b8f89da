package update

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const oldConfig = `# Switch the CPU from ARMv7 into ARMv8 (aarch64) mode
arm_64bit=1

enable_uart=1
upstream_kernel=1

kernel=vmlinuz-7.3.4+deb13-arm64
# For details on the initramfs directive, see
# https://www.raspberrypi.org/forums/viewtopic.php?f=63&t=10532
initramfs initrd.img-7.3.4+deb13-arm64

[pi5]
dtoverlay=sensord-rp1-i2c1
[all]
`

// oldCard is a boot partition whose firmware loads the kernel itself, the
// slot state on a data partition, and a running root's files.
func oldCard(t *testing.T) Migration {
	t.Helper()
	dir := t.TempDir()
	m := Migration{FAT: filepath.Join(dir, "fat"), DataState: filepath.Join(dir, "data", "state"), Slot: SlotB,
		BootFiles: filepath.Join(dir, "root", "boot"), UBoot: filepath.Join(dir, "root", "uboot"), Log: &strings.Builder{}}
	for p, data := range map[string]string{
		filepath.Join(m.FAT, ConfigName):                              oldConfig,
		filepath.Join(m.FAT, "vmlinuz-7.3.4+deb13-arm64"):             "old kernel",
		filepath.Join(m.FAT, "initrd.img-7.3.4+deb13-arm64"):          "old initramfs",
		filepath.Join(m.FAT, "start4.elf"):                            "firmware",
		m.DataState:                                                   "committed=B\nversion_A=1.0\nrelease_A=1\nversion_B=2.0\nrelease_B=2\n",
		filepath.Join(m.BootFiles, KernelName):                        "new kernel",
		filepath.Join(m.BootFiles, InitrdName):                        "new initramfs",
		filepath.Join(m.BootFiles, DTBDir, "broadcom", "bcm2837.dtb"): "tree",
		filepath.Join(m.UBoot, UBootName):                             "u-boot",
		filepath.Join(m.UBoot, BootScriptName):                        "script",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func checkMigrated(t *testing.T, m Migration) {
	t.Helper()
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(m.FAT, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		return string(b)
	}
	cfg := read(ConfigName)
	if !strings.Contains(cfg, "\nkernel=u-boot.bin\n") || strings.Contains(cfg, "initramfs") || !strings.Contains(cfg, "dtoverlay=sensord-rp1-i2c1") {
		t.Errorf("config.txt:\n%s", cfg)
	}
	for rel, want := range map[string]string{"slot-b/vmlinuz": "new kernel", "slot-b/initrd.img": "new initramfs",
		"slot-b/dtbs/broadcom/bcm2837.dtb": "tree", UBootName: "u-boot", BootScriptName: "script", "start4.elf": "firmware"} {
		if got := read(rel); got != want {
			t.Errorf("%s: %q, want %q", rel, got, want)
		}
	}
	st, err := ReadState(filepath.Join(m.FAT, ChooserDir, ChooserStateName))
	if err != nil || st.Committed != SlotB || st.B != (SlotInfo{"2.0", 2}) || st.A != (SlotInfo{"1.0", 1}) {
		t.Errorf("state on the boot partition: %+v, %v", st, err)
	}
	for _, gone := range []string{filepath.Join(m.FAT, "vmlinuz-7.3.4+deb13-arm64"), filepath.Join(m.FAT, "initrd.img-7.3.4+deb13-arm64"), m.DataState} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", gone, err)
		}
	}
	if need, err := m.Needed(); need || err != nil {
		t.Errorf("Needed after the move: %v, %v", need, err)
	}
}

func TestMigrationMovesAnOldCardToTheBootScript(t *testing.T) {
	m := oldCard(t)
	if need, err := m.Needed(); !need || err != nil {
		t.Fatalf("Needed on an old card: %v, %v", need, err)
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	checkMigrated(t, m)
}

// A power cut at any step: the next boot's Run finishes the move.
func TestMigrationFinishesAfterAPowerCut(t *testing.T) {
	t.Run("state written, config.txt not yet", func(t *testing.T) {
		m := oldCard(t)
		if err := WriteSlotBoot(m.FAT, m.Slot, m.BootFiles); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(m.FAT, ChooserDir), 0o755)
		b, _ := os.ReadFile(m.DataState)
		os.WriteFile(filepath.Join(m.FAT, ChooserDir, ChooserStateName), b, 0o644)
		os.WriteFile(filepath.Join(m.FAT, UBootName), []byte("u-boot"), 0o644)
		os.WriteFile(filepath.Join(m.FAT, BootScriptName), []byte("script"), 0o644)
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
		checkMigrated(t, m)
	})
	t.Run("config.txt switched, old kernel still there", func(t *testing.T) {
		m := oldCard(t)
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(m.FAT, "vmlinuz-7.3.4+deb13-arm64"), []byte("old kernel"), 0o644)
		os.WriteFile(m.DataState, []byte("committed=B\n"), 0o644)
		if need, _ := m.Needed(); !need {
			t.Fatal("Needed: false with the old kernel left")
		}
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
		checkMigrated(t, m)
	})
}

// Only the committed slot moves the card, and only with its boot files:
// otherwise nothing on the boot partition changes.
func TestMigrationRefusesAndChangesNothing(t *testing.T) {
	for name, spoil := range map[string]func(m *Migration){
		"trial pending":         func(m *Migration) { os.WriteFile(m.DataState, []byte("committed=B\ntrial=A\ntries=1\n"), 0o644) },
		"not the committed":     func(m *Migration) { m.Slot = SlotA },
		"no boot files":         func(m *Migration) { os.RemoveAll(m.BootFiles) },
		"no U-Boot in the root": func(m *Migration) { os.RemoveAll(m.UBoot) },
	} {
		t.Run(name, func(t *testing.T) {
			m := oldCard(t)
			spoil(&m)
			if err := m.Run(); !errors.Is(err, ErrMigrate) && !errors.Is(err, ErrBootFiles) {
				t.Errorf("Run: %v, want ErrMigrate", err)
			}
			cfg, _ := os.ReadFile(filepath.Join(m.FAT, ConfigName))
			if string(cfg) != oldConfig || SlotKernels(m.FAT) {
				t.Errorf("the boot partition changed: state there %v, config.txt:\n%s", SlotKernels(m.FAT), cfg)
			}
		})
	}
}
