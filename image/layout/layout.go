// Package layout plans the SD-card image's partition table: an MBR (the
// Raspberry Pi's boot ROM and firmware read MBR; Pi 3 cannot boot from GPT)
// with a FAT32 boot partition, two root slots and a data partition (ab.go).
// It only computes: sfdisk(8) writes the table, build.sh and ab.sh place
// the filesystems at the offsets planned here.
package layout

import "fmt"

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

// bootPartition fills in the alignment and boot size (0 means the
// default), checks them, and returns the alignment in
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
