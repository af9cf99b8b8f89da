// Package boards lists the Raspberry Pi models the image is for and what
// each needs on the FAT boot partition: the device tree its firmware loads
// by name, the GPU firmware it reads from the card, the overlays.
//
// build.sh copies the device trees itself (imgtool dtbs) and then checks the
// partition holds every file (imgtool bootfiles -check); the boot test
// checks the finished image's FAT the same way. Debian's raspi-firmware
// kernel hook also copies device trees, but from
// /usr/lib/linux-image-<version>/broadcom, a layout Linux 7.x packages keep
// only as a compatibility symlink into /usr/lib/modules/<version>/dtb.
package boards

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Model is one Raspberry Pi model.
type Model struct {
	Name string
	// DTB is Debian's device tree (under /usr/lib/modules/<v>/dtb/broadcom),
	// copied to the FAT under the same name: with upstream_kernel=1 in
	// config.txt the firmware loads the upstream kernel's names.
	DTB string
	// Aliases are more names the same device tree is copied to, for
	// firmware that looks for another name.
	Aliases []string
	// Firmware: the GPU firmware files the board reads from the card (the
	// Pi 5's is in its EEPROM).
	Firmware []string
	// Overlays the image adds for this board (overlays/NAME.dtbo).
	Overlays []string
	// ImagerTag is Raspberry Pi Imager's device tag for the board's family
	// in 64-bit mode (its device list and OS lists say pi3-64bit, pi4-64bit,
	// pi5-64bit; the Zero 2 W and the CM3 are pi3, the 400 and the CM4 pi4).
	ImagerTag string
}

// RP1I2COverlay enables the Pi 5's header I2C (GPIO2/3); its source is
// sensord-rp1-i2c1.dts beside this file.
const RP1I2COverlay = "sensord-rp1-i2c1"

var (
	pi3Firmware = []string{"bootcode.bin", "start.elf", "fixup.dat"}
	pi4Firmware = []string{"start4.elf", "fixup4.dat"}
)

// Models lists the 64-bit Raspberry Pi models, in the order of the table in
// image/README.md.
func Models() []Model {
	return []Model{
		{Name: "Raspberry Pi 3 Model B", DTB: "bcm2837-rpi-3-b.dtb", Firmware: pi3Firmware, ImagerTag: "pi3-64bit"},
		{Name: "Raspberry Pi 3 Model B+", DTB: "bcm2837-rpi-3-b-plus.dtb", Firmware: pi3Firmware, ImagerTag: "pi3-64bit"},
		{Name: "Raspberry Pi 3 Model A+", DTB: "bcm2837-rpi-3-a-plus.dtb", Firmware: pi3Firmware, ImagerTag: "pi3-64bit"},
		{Name: "Raspberry Pi Compute Module 3 (IO board)", DTB: "bcm2837-rpi-cm3-io3.dtb", Firmware: pi3Firmware, ImagerTag: "pi3-64bit"},
		{Name: "Raspberry Pi Zero 2 W", DTB: "bcm2837-rpi-zero-2-w.dtb", Firmware: pi3Firmware, ImagerTag: "pi3-64bit"},
		{Name: "Raspberry Pi 4 Model B", DTB: "bcm2711-rpi-4-b.dtb", Firmware: pi4Firmware, ImagerTag: "pi4-64bit"},
		{Name: "Raspberry Pi 400", DTB: "bcm2711-rpi-400.dtb", Firmware: pi4Firmware, ImagerTag: "pi4-64bit"},
		{Name: "Raspberry Pi Compute Module 4 (IO board)", DTB: "bcm2711-rpi-cm4-io.dtb", Firmware: pi4Firmware, ImagerTag: "pi4-64bit"},
		{Name: "Raspberry Pi 5 Model B (C1 stepping)", DTB: "bcm2712-rpi-5-b.dtb", Overlays: []string{RP1I2COverlay}, ImagerTag: "pi5-64bit"},
		// The D0 stepping (2 GB boards, later 4 and 8 GB ones): Raspberry
		// Pi's own firmware and kernel call its device tree bcm2712d0-*.
		{Name: "Raspberry Pi 5 Model B (D0 stepping)", DTB: "bcm2712-d-rpi-5-b.dtb", Aliases: []string{"bcm2712d0-rpi-5-b.dtb"}, Overlays: []string{RP1I2COverlay}, ImagerTag: "pi5-64bit"},
	}
}

// Copy is one device tree to put on the FAT: Src under dtb/broadcom, Dst at
// the partition's top.
type Copy struct{ Src, Dst string }

// DTBs lists the device-tree copies, sorted by destination.
func DTBs() []Copy {
	var out []Copy
	for _, m := range Models() {
		out = append(out, Copy{m.DTB, m.DTB})
		for _, a := range m.Aliases {
			out = append(out, Copy{m.DTB, a})
		}
	}
	slices.SortFunc(out, func(a, b Copy) int { return strings.Compare(a.Dst, b.Dst) })
	return slices.Compact(out)
}

// Files lists every file the boot partition must hold for the models (its
// config.txt and cmdline.txt included), slash-separated, sorted.
func Files() []string {
	out := []string{"config.txt", "cmdline.txt"}
	for _, m := range Models() {
		out = append(out, m.Firmware...)
		for _, o := range m.Overlays {
			out = append(out, "overlays/"+o+".dtbo")
		}
	}
	for _, c := range DTBs() {
		out = append(out, c.Dst)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Missing returns the Files for which has is false, in order.
func Missing(has func(name string) bool) []string {
	var out []string
	for _, f := range Files() {
		if !has(f) {
			out = append(out, f)
		}
	}
	return out
}

// CheckDir returns an error naming every file of Files that dir lacks (or
// holds empty).
func CheckDir(dir string) error {
	missing := Missing(func(name string) bool {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
	})
	if len(missing) > 0 {
		return fmt.Errorf("boards: %s lacks %s", dir, strings.Join(missing, ", "))
	}
	return nil
}
