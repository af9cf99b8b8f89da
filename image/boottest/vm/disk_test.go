package vm

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadMBRReadsWhatTheLayoutGoldenDescribes(t *testing.T) {
	// image/testdata/layout.sfdisk: boot at sector 8192 (524288 sectors,
	// type c), root at 532480 (2695168 sectors, type 83).
	var sec [512]byte
	put := func(i int, typ byte, start, n uint32) {
		e := sec[446+16*i:]
		e[4] = typ
		binary.LittleEndian.PutUint32(e[8:], start)
		binary.LittleEndian.PutUint32(e[12:], n)
	}
	put(0, 0x0c, 8192, 524288)
	put(1, 0x83, 532480, 2695168)
	sec[510], sec[511] = 0x55, 0xaa
	p, err := ReadMBR(bytes.NewReader(sec[:]))
	if err != nil {
		t.Fatal(err)
	}
	want := [4]Partition{{0x0c, 8192 * 512, 524288 * 512}, {0x83, 532480 * 512, 2695168 * 512}}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	sec[511] = 0
	if _, err := ReadMBR(bytes.NewReader(sec[:])); err == nil {
		t.Error("ReadMBR accepted a sector without the boot signature")
	}
}

func TestGuestCmdlineSwapsThePiConsolesForTheVirtMachines(t *testing.T) {
	in := "console=tty0 console=ttyS1,115200 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 rootwait quiet"
	got := GuestCmdline(in)
	want := "root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 rootwait console=ttyAMA0,115200 systemd.debug_shell=ttyAMA0 systemd.mask=serial-getty@ttyAMA0.service systemd.show_status=false loglevel=4 systemd.default_device_timeout_sec=600"
	if got != want {
		t.Errorf("GuestCmdline(%q)\n got %q\nwant %q", in, got, want)
	}
}

func TestBootFilesReadsKernelAndInitramfsLines(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config.txt"))
	if err != nil {
		t.Fatal(err)
	}
	k, i, err := BootFiles(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if k == "" || i == "" || k == i {
		t.Errorf("BootFiles = %q, %q", k, i)
	}
	if _, _, err := BootFiles("arm_64bit=1\ninitramfs initrd.img\n"); err == nil {
		t.Error("BootFiles accepted a config.txt without a kernel")
	}
	if k, i, err := BootFiles("arm_64bit=1\nkernel=u-boot.bin\n"); err != nil || k != "u-boot.bin" || i != "" {
		t.Errorf("a boot loader and no initramfs: BootFiles = %q, %q, %v; want u-boot.bin, none", k, i, err)
	}
}

// ReadMBR reads whatever file it is given: never panic, and report
// partitions only from a sector with the boot signature.
func FuzzReadMBR(f *testing.F) {
	var sec [512]byte
	sec[510], sec[511] = 0x55, 0xaa
	f.Add(sec[:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadMBR(bytes.NewReader(b))
		if err == nil && (len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa) {
			t.Errorf("ReadMBR accepted %d bytes without a boot signature: %+v", len(b), p)
		}
		for _, e := range p {
			if e.Start < 0 || e.Length < 0 {
				t.Errorf("negative partition %+v", e)
			}
		}
	})
}

// BootFiles parses config.txt from the image: never panic; names it returns
// are non-empty and single words.
func FuzzBootFiles(f *testing.F) {
	f.Add("kernel=vmlinuz\ninitramfs initrd.img followkernel\n")
	f.Add("[pi4]\nkernel = a\n[all]\ninitramfs b\n")
	f.Fuzz(func(t *testing.T, cfg string) {
		k, i, err := BootFiles(cfg)
		if err != nil {
			return
		}
		if k == "" || strings.ContainsAny(i, " \t\n") {
			t.Errorf("BootFiles(%q) = %q, %q", cfg, k, i)
		}
	})
}
