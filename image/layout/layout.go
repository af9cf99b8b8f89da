// Package layout plans the SD-card image's partition table: an MBR (the
// Raspberry Pi's boot ROM and firmware read MBR; Pi 3 cannot boot from GPT)
// with a FAT32 boot partition and an ext4 root filling the rest of the image.
// It only computes: sfdisk(8) writes the table, build.sh places the
// filesystems at the offsets planned here.
//
// The root partition is the last one and the image ends where it ends, so
// the first boot can grow it to the end of whatever card it is flashed to
// (sensord-growroot).
package layout

import (
	"errors"
	"fmt"
	"io"
)

// SectorSize is the logical sector size of SD cards and of sfdisk's
// arithmetic.
const SectorSize = 512

// Defaults. The boot partition starts at 4 MiB: SD cards erase in 4 MiB
// units, and leaving the first one to the MBR keeps every filesystem block
// aligned to them. 256 MiB holds the firmware (about 30 MiB), two kernels
// and initrds (about 80 MiB each with initramfs-tools' MODULES=most) across a
// kernel upgrade.
const (
	DefaultAlign     = 4 << 20
	DefaultBootBytes = 256 << 20
)

// Spec is what the plan is made from.
type Spec struct {
	// RootUsedBytes is the space the root tree needs (du --apparent-size
	// would undercount: use du's allocated size). Required.
	RootUsedBytes int64
	// RootFreeBytes is free space to leave in the root filesystem of the
	// image itself (the card grows it on first boot). 0 means 25 % of
	// RootUsedBytes plus 64 MiB, room for ext4's metadata and journal.
	RootFreeBytes int64
	BootBytes     int64  // 0: DefaultBootBytes
	Align         int64  // 0: DefaultAlign
	DiskID        uint32 // the MBR disk identifier (fixed: reproducible images)
}

// Plan is the partition table.
type Plan struct {
	DiskID              uint32
	BootStart, BootSize int64 // sectors
	RootStart, RootSize int64 // sectors
	TotalSectors        int64
}

// Make plans the table for s.
func Make(s Spec) (Plan, error) {
	if s.RootUsedBytes <= 0 {
		return Plan{}, errors.New("layout: root size must be positive")
	}
	if s.RootFreeBytes == 0 {
		s.RootFreeBytes = s.RootUsedBytes/4 + 64<<20
	}
	a, bootStart, bootSize, err := bootPartition(s.Align, s.BootBytes)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{DiskID: s.DiskID, BootStart: bootStart, BootSize: bootSize}
	p.RootStart = p.BootStart + p.BootSize
	p.RootSize = roundUp((s.RootUsedBytes+s.RootFreeBytes+SectorSize-1)/SectorSize, a)
	p.TotalSectors = p.RootStart + p.RootSize
	return p, nil
}

// bootPartition fills in the alignment and boot size both layouts share
// (0 means the default), checks them, and returns the alignment in
// sectors and where the boot partition lies.
func bootPartition(align, bootBytes int64) (a, start, size int64, err error) {
	if align == 0 {
		align = DefaultAlign
	}
	if bootBytes == 0 {
		bootBytes = DefaultBootBytes
	}
	if align%SectorSize != 0 || align <= 0 {
		return 0, 0, 0, fmt.Errorf("layout: alignment %d is not a positive multiple of %d", align, SectorSize)
	}
	// FAT32 needs at least 65525 clusters; with mkfs.vfat's 512-byte clusters
	// for small volumes that is 32 MiB.
	if bootBytes < 32<<20 {
		return 0, 0, 0, fmt.Errorf("layout: boot partition %d bytes is below FAT32's 32 MiB", bootBytes)
	}
	a = align / SectorSize
	return a, a, roundUp(bootBytes/SectorSize, a), nil
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// WriteSfdisk writes the table as an sfdisk script (sfdisk(8), "Input
// format"): `sfdisk image < script` applies it to an image file.
func (p Plan) WriteSfdisk(w io.Writer) error {
	_, err := fmt.Fprintf(w, `label: dos
label-id: 0x%08x
unit: sectors
sector-size: %d

start=%d, size=%d, type=c, bootable
start=%d, size=%d, type=83
`, p.DiskID, SectorSize, p.BootStart, p.BootSize, p.RootStart, p.RootSize)
	return err
}

// WriteShell writes the plan as shell assignments for build.sh, in bytes:
// where each filesystem goes (dd seek=) and how large it is.
func (p Plan) WriteShell(w io.Writer) error {
	_, err := fmt.Fprintf(w, `IMG_BYTES=%d
BOOT_OFFSET=%d
BOOT_BYTES=%d
ROOT_OFFSET=%d
ROOT_BYTES=%d
`, p.TotalSectors*SectorSize, p.BootStart*SectorSize, p.BootSize*SectorSize,
		p.RootStart*SectorSize, p.RootSize*SectorSize)
	return err
}
