package layout

import (
	"bytes"
	"strings"
	"testing"
)

func TestMakeABPlansTwoEqualSlotsAndDataLast(t *testing.T) {
	p, err := MakeAB(SpecAB{RootImageBytes: 200 << 20, DiskID: 0x5e450d00})
	if err != nil {
		t.Fatal(err)
	}
	// 4 MiB, then 256 MiB boot, two 768 MiB slots, 64 MiB data.
	want := PlanAB{DiskID: 0x5e450d00, BootStart: 8192, BootSize: 524288,
		SlotAStart: 532480, SlotBStart: 2105344, SlotSize: 1572864,
		DataStart: 3678208, DataSize: 131072, TotalSectors: 3809280}
	if p != want {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	big, err := MakeAB(SpecAB{RootImageBytes: 500 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if big.SlotSize*SectorSize != 1000<<20 {
		t.Errorf("a 500 MiB root gets a %d MiB slot, want twice its size", big.SlotSize*SectorSize>>20)
	}
	var sf bytes.Buffer
	if err := p.WriteSfdisk(&sf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(sf.String(), "type=83"); n != 3 {
		t.Errorf("%d Linux partitions in\n%s", n, sf.String())
	}
	var sh bytes.Buffer
	if err := p.WriteShell(&sh); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sh.String(), "DATA_OFFSET=1883242496\n") {
		t.Errorf("shell:\n%s", sh.String())
	}
}

func TestMakeABRefusesImpossibleSpecs(t *testing.T) {
	for name, s := range map[string]SpecAB{
		"an empty root":        {},
		"a small boot":         {RootImageBytes: 1, BootBytes: 16 << 20},
		"alignment not sector": {RootImageBytes: 1, Align: 1000},
	} {
		if _, err := MakeAB(s); err == nil {
			t.Errorf("%s: MakeAB(%+v) = nil error", name, s)
		}
	}
}
