package layout

import (
	"errors"
	"fmt"
	"io"
)

// The A/B layout: the boot partition, two root slots of the same size (the
// running one and the one an update writes), and the data partition last,
// so the first boot can grow it to the end of the card (sensord-growroot).
//
// DefaultSlotMinBytes is the smallest slot: a slot must hold later
// versions too, which may be larger than the first (more packages, a newer
// kernel's modules); 768 MiB is about four times today's compressed root.
// DefaultDataBytes is the data partition in the image; it grows at first
// boot.
const (
	DefaultSlotMinBytes = 768 << 20
	DefaultDataBytes    = 64 << 20
)

// SpecAB is what the A/B plan is made from.
type SpecAB struct {
	// RootImageBytes is the size of the root slot's filesystem image
	// (squashfs). Required. A slot is at least twice that.
	RootImageBytes int64
	SlotMinBytes   int64  // 0: DefaultSlotMinBytes
	DataBytes      int64  // 0: DefaultDataBytes
	BootBytes      int64  // 0: DefaultBootBytes
	Align          int64  // 0: DefaultAlign
	DiskID         uint32 // the MBR disk identifier
}

// PlanAB is the A/B partition table, in sectors.
type PlanAB struct {
	DiskID              uint32
	BootStart, BootSize int64
	SlotAStart          int64
	SlotBStart          int64
	SlotSize            int64
	DataStart, DataSize int64
	TotalSectors        int64
}

// MakeAB plans the A/B table for s.
func MakeAB(s SpecAB) (PlanAB, error) {
	if s.RootImageBytes <= 0 {
		return PlanAB{}, errors.New("layout: root image size must be positive")
	}
	if s.SlotMinBytes == 0 {
		s.SlotMinBytes = DefaultSlotMinBytes
	}
	if s.DataBytes == 0 {
		s.DataBytes = DefaultDataBytes
	}
	a, bootStart, bootSize, err := bootPartition(s.Align, s.BootBytes)
	if err != nil {
		return PlanAB{}, err
	}
	slot := max(s.SlotMinBytes, 2*s.RootImageBytes)
	p := PlanAB{DiskID: s.DiskID, BootStart: bootStart, BootSize: bootSize}
	p.SlotSize = roundUp((slot+SectorSize-1)/SectorSize, a)
	p.SlotAStart = p.BootStart + p.BootSize
	p.SlotBStart = p.SlotAStart + p.SlotSize
	p.DataStart = p.SlotBStart + p.SlotSize
	p.DataSize = roundUp((s.DataBytes+SectorSize-1)/SectorSize, a)
	p.TotalSectors = p.DataStart + p.DataSize
	return p, nil
}

// WriteSfdisk writes the table as an sfdisk script.
func (p PlanAB) WriteSfdisk(w io.Writer) error {
	_, err := fmt.Fprintf(w, `label: dos
label-id: 0x%08x
unit: sectors
sector-size: %d

start=%d, size=%d, type=c, bootable
start=%d, size=%d, type=83
start=%d, size=%d, type=83
start=%d, size=%d, type=83
`, p.DiskID, SectorSize, p.BootStart, p.BootSize, p.SlotAStart, p.SlotSize,
		p.SlotBStart, p.SlotSize, p.DataStart, p.DataSize)
	return err
}

// WriteShell writes the plan as shell assignments for build.sh, in bytes.
func (p PlanAB) WriteShell(w io.Writer) error {
	_, err := fmt.Fprintf(w, `IMG_BYTES=%d
BOOT_OFFSET=%d
BOOT_BYTES=%d
SLOT_A_OFFSET=%d
SLOT_B_OFFSET=%d
SLOT_BYTES=%d
DATA_OFFSET=%d
DATA_BYTES=%d
`, p.TotalSectors*SectorSize, p.BootStart*SectorSize, p.BootSize*SectorSize,
		p.SlotAStart*SectorSize, p.SlotBStart*SectorSize, p.SlotSize*SectorSize,
		p.DataStart*SectorSize, p.DataSize*SectorSize)
	return err
}
