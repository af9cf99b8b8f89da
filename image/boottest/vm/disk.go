package vm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Partition is one MBR partition entry.
type Partition struct {
	Type          byte
	Start, Length int64 // bytes
}

// ReadMBR reads the four primary partitions of a disk image; unused
// entries have Type 0.
func ReadMBR(r io.ReaderAt) ([4]Partition, error) {
	var p [4]Partition
	var sec [512]byte
	if _, err := r.ReadAt(sec[:], 0); err != nil {
		return p, fmt.Errorf("mbr: %w", err)
	}
	if sec[510] != 0x55 || sec[511] != 0xaa {
		return p, errors.New("mbr: no boot signature")
	}
	for i := range p {
		e := sec[446+16*i:]
		p[i] = Partition{
			Type:   e[4],
			Start:  int64(binary.LittleEndian.Uint32(e[8:])) * 512,
			Length: int64(binary.LittleEndian.Uint32(e[12:])) * 512,
		}
	}
	return p, nil
}

// GuestCmdline turns the image's cmdline.txt (written for a Pi's consoles)
// into the kernel command line for qemu's virt machine: the Pi's console=
// arguments go, the virt machine's PL011 (ttyAMA0) becomes the console and
// carries a root shell for the test (systemd.debug_shell, with the getty on
// that line masked so they do not fight over it), and systemd's status lines
// stay off it. Everything else (root=LABEL=..., rootwait, ...) is kept, so
// the image's own root= finds the root filesystem.
func GuestCmdline(cmdline string) string {
	var keep []string
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, "console=") || f == "quiet" {
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(append(keep,
		"console=ttyAMA0,115200",
		"systemd.debug_shell=ttyAMA0",
		"systemd.mask=serial-getty@ttyAMA0.service",
		"systemd.show_status=false",
		"loglevel=4",
		"systemd.default_device_timeout_sec="+DeviceTimeout,
	), " ")
}

// DeviceTimeout is how long systemd in the emulated guest waits for a
// device (the boot partition by label) before failing its mounts: the
// default 90 s was seen to run out at load average 13-16 on the 2-core
// build machine, and the boot ended in emergency mode. A Pi finds its card
// in seconds.
const DeviceTimeout = "600"

// BootFiles finds the kernel and initrd config.txt loads: its kernel= and
// initramfs lines (the Pi firmware's config, written by raspi-firmware).
// initrd is "" without an initramfs line: kernel is then a boot loader
// (U-Boot) that loads the kernel and initramfs itself.
func BootFiles(configTxt string) (kernel, initrd string, err error) {
	for _, l := range strings.Split(configTxt, "\n") {
		l = strings.TrimSpace(l)
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "kernel" && kernel == "" {
			kernel = strings.TrimSpace(v)
		}
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "initramfs" && initrd == "" {
			initrd = f[1]
		}
	}
	if kernel == "" {
		return "", "", fmt.Errorf("config.txt: no kernel= line (initramfs %q)", initrd)
	}
	return kernel, initrd, nil
}

// CheckABLayout checks the A/B image's table: FAT32 boot, two equal Linux
// root slots, a Linux data partition last.
func CheckABLayout(p [4]Partition) error {
	if p[0].Type != 0x0c || p[1].Type != 0x83 || p[2].Type != 0x83 || p[3].Type != 0x83 {
		return fmt.Errorf("partition types %#x %#x %#x %#x: want FAT32 LBA (0xc), then three Linux (0x83): slot A, slot B, data",
			p[0].Type, p[1].Type, p[2].Type, p[3].Type)
	}
	if p[1].Length != p[2].Length {
		return fmt.Errorf("slot A is %d bytes, slot B %d: want equal", p[1].Length, p[2].Length)
	}
	return nil
}
