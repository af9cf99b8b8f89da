package boards

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sensord/image/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in image/testdata")

func TestFilesMatchGolden(t *testing.T) {
	golden.Check(t, "boards", "bootfiles.txt", []byte(strings.Join(Files(), "\n")+"\n"), *update)
}

// fill writes every file of Files into a fresh directory.
func fill(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range Files() {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckDirNamesEveryMissingFile(t *testing.T) {
	dir := fill(t)
	if err := CheckDir(dir); err != nil {
		t.Fatalf("complete partition: %v", err)
	}
	for _, f := range []string{"bcm2712-rpi-5-b.dtb", "overlays/" + RP1I2COverlay + ".dtbo", "bcm2837-rpi-zero-2-w.dtb", "start4.elf"} {
		t.Run(f, func(t *testing.T) {
			dir := fill(t)
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
				t.Fatal(err)
			}
			err := CheckDir(dir)
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Errorf("without %s: %v", f, err)
			}
		})
	}
	// An empty file is as good as none (a failed copy).
	if err := os.WriteFile(filepath.Join(dir, "bcm2711-rpi-4-b.dtb"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); err == nil || !strings.Contains(err.Error(), "bcm2711-rpi-4-b.dtb") {
		t.Errorf("empty dtb: %v", err)
	}
}

func TestEveryModelHasItsBootFiles(t *testing.T) {
	files := map[string]bool{}
	for _, f := range Files() {
		files[f] = true
	}
	seen := map[string]string{}
	for _, m := range Models() {
		if prev, ok := seen[m.DTB]; ok {
			t.Errorf("%s and %s share %s", prev, m.Name, m.DTB)
		}
		seen[m.DTB] = m.Name
		for _, f := range append(append([]string{m.DTB}, m.Aliases...), m.Firmware...) {
			if !files[f] {
				t.Errorf("%s: %s not in Files", m.Name, f)
			}
		}
		// Every board but the Pi 5 (firmware in its EEPROM) boots from
		// GPU firmware on the card.
		if pi5 := strings.HasPrefix(m.DTB, "bcm2712"); pi5 != (len(m.Firmware) == 0) {
			t.Errorf("%s: firmware %v", m.Name, m.Firmware)
		}
	}
}
