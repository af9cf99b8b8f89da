package layout_test

import (
	"os"

	"sensord/image/layout"
)

func ExamplePlanAB_WriteSfdisk() {
	p, err := layout.MakeAB(layout.SpecAB{RootImageBytes: 200 << 20, DiskID: 0x5e450d00})
	if err != nil {
		panic(err)
	}
	p.WriteSfdisk(os.Stdout)
	// Output:
	// label: dos
	// label-id: 0x5e450d00
	// unit: sectors
	// sector-size: 512
	//
	// start=8192, size=524288, type=c, bootable
	// start=532480, size=1572864, type=83
	// start=2105344, size=1572864, type=83
	// start=3678208, size=131072, type=83
}
