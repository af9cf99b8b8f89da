package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSettingsCommandMatchesGolden(t *testing.T) {
	var b bytes.Buffer
	if err := run([]string{"settings"}, &b); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "testdata", "sensord.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Error("imgtool settings differs from image/testdata/sensord.conf")
	}
}

func TestLayoutCommandWritesBothFiles(t *testing.T) {
	sf := filepath.Join(t.TempDir(), "table")
	var b bytes.Buffer
	if err := run([]string{"layout-ab", "-root-image-bytes", "209715200", "-disk-id", "0x5e450d00", "-sfdisk", sf}, &b); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ got, golden string }{{b.String(), "layout.sh"}, {read(t, sf), "layout.sfdisk"}} {
		if want := read(t, filepath.Join("..", "testdata", f.golden)); f.got != want {
			t.Errorf("got %q, want image/testdata/%s %q", f.got, f.golden, want)
		}
	}
}

func TestBootfilesCommand(t *testing.T) {
	var b bytes.Buffer
	if err := run([]string{"bootfiles"}, &b); err != nil {
		t.Fatal(err)
	}
	if want := read(t, filepath.Join("..", "testdata", "bootfiles.txt")); b.String() != want {
		t.Errorf("got %q, want image/testdata/bootfiles.txt", b.String())
	}
	// -check on a partition without them names them.
	err := run([]string{"bootfiles", "-check", t.TempDir()}, &b)
	if err == nil || !strings.Contains(err.Error(), "bcm2712-rpi-5-b.dtb") {
		t.Errorf("-check on an empty directory: %v", err)
	}
	b.Reset()
	if err := run([]string{"dtbs"}, &b); err != nil || !strings.Contains(b.String(), "bcm2712-d-rpi-5-b.dtb bcm2712d0-rpi-5-b.dtb\n") {
		t.Errorf("dtbs: %v %q", err, b.String())
	}
}

func TestBadArgumentsAreErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no command":         nil,
		"an unknown command": {"mkfs"},
		"a -set without =":   {"settings", "-set", "SENSORD_PERIOD"},
		"an unknown setting": {"settings", "-set", "SENSORD_NOPE=1"},
		"no root size":       {"layout"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := run(args, &bytes.Buffer{}); err == nil {
				t.Errorf("run(%q) = nil", args)
			}
		})
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) + "\n"
}

func TestStateCommandWritesTheFirstSlotState(t *testing.T) {
	var b bytes.Buffer
	if err := run([]string{"state", "-version", "v1.2", "-release", "42"}, &b); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "committed=A\nversion_A=v1.2\nrelease_A=42\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := run([]string{"state", "-version", "v1.2"}, &b); err == nil {
		t.Error("a state without a release was written")
	}
	b.Reset()
	if err := run([]string{"state", "-version", "v1.2", "-release", "42", "-trial", "B", "-tries", "3"}, &b); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "committed=A\ntrial=B\ntries=3\nversion_A=v1.2\nrelease_A=42\n"; got != want {
		t.Errorf("with a trial: got %q, want %q", got, want)
	}
	if err := run([]string{"state", "-version", "v1.2", "-release", "42", "-trial", "C"}, &b); err == nil {
		t.Error("a trial in slot C was written")
	}
}

func TestSlotbootAndBootsCommands(t *testing.T) {
	src, fat := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"vmlinuz": "kernel", "initrd.img": "initramfs"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := run([]string{"slotboot", "-fat", fat, "-slot", "B", src}, &b); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(fat, "slot-b", "sizes")); err != nil || string(got) != "vmlinuz_size=6\ninitrd_size=9\n" {
		t.Errorf("slot-b/sizes: %q, %v", got, err)
	}
	if err := run([]string{"slotboot", "-fat", fat, "-slot", "C", src}, &b); err == nil {
		t.Error("slot C was written")
	}
	p := filepath.Join(t.TempDir(), "boots")
	if err := os.WriteFile(p, []byte("boots=2\n\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := run([]string{"boots", p}, &b); err != nil || b.String() != "2\n" {
		t.Errorf("boots: %q, %v; want 2", b.String(), err)
	}
}
