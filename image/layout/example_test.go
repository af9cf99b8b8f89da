package layout_test

import (
	"os"

	"sensord/image/layout"
)

func ExamplePlan_WriteSfdisk() {
	p, err := layout.Make(layout.Spec{RootUsedBytes: 600 << 20, DiskID: 0x5e450d00})
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
	// start=532480, size=1671168, type=83
}
