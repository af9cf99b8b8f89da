package layout

import (
	"bytes"
	"flag"
	"testing"

	"sensord/image/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in image/testdata")

func TestMakePlansAlignedPartitions(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want Plan
	}{
		{
			name: "a 1000 MiB root gets 25 % plus 64 MiB free, rounded to 4 MiB",
			spec: Spec{RootUsedBytes: 1000 << 20, DiskID: 0x5e450d00},
			// 1000 + 250 + 64 = 1314 MiB -> 1316 MiB = 2695168 sectors.
			want: Plan{DiskID: 0x5e450d00, BootStart: 8192, BootSize: 524288, RootStart: 532480, RootSize: 2695168, TotalSectors: 3227648},
		},
		{
			name: "explicit free space and boot size, 1 MiB alignment",
			spec: Spec{RootUsedBytes: 1, RootFreeBytes: 10 << 20, BootBytes: 33 << 20, Align: 1 << 20},
			// root: 10 MiB + 1 byte -> 11 MiB.
			want: Plan{BootStart: 2048, BootSize: 67584, RootStart: 69632, RootSize: 22528, TotalSectors: 92160},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Make(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Make(%+v)\n got %+v\nwant %+v", tc.spec, got, tc.want)
			}
			a := tc.spec.Align
			if a == 0 {
				a = DefaultAlign
			}
			for _, s := range []int64{got.BootStart, got.BootSize, got.RootStart, got.RootSize} {
				if s*SectorSize%a != 0 {
					t.Errorf("%d sectors is not aligned to %d bytes", s, a)
				}
			}
		})
	}
}

func TestMakeRefusesImpossibleSpecs(t *testing.T) {
	for name, s := range map[string]Spec{
		"an empty root":                        {},
		"a boot partition too small for FAT32": {RootUsedBytes: 1, BootBytes: 16 << 20},
		"an alignment not in sectors":          {RootUsedBytes: 1, Align: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Make(s); err == nil {
				t.Errorf("Make(%+v) = nil error", s)
			}
		})
	}
}

func TestSfdiskScriptAndShellMatchGolden(t *testing.T) {
	p, err := Make(Spec{RootUsedBytes: 1000 << 20, DiskID: 0x5e450d00})
	if err != nil {
		t.Fatal(err)
	}
	var sf, sh bytes.Buffer
	if err := p.WriteSfdisk(&sf); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteShell(&sh); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "layout", "layout.sfdisk", sf.Bytes(), *update)
	golden.Check(t, "layout", "layout.sh", sh.Bytes(), *update)
}
