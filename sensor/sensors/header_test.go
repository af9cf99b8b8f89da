package sensors

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorded is a gpioHost over a layout in testdata/boards (see make.sh
// there); the chips' labels come from its chips.txt.
func recorded(t testing.TB, board string) gpioHost {
	t.Helper()
	root := filepath.Join("testdata", "boards", board)
	raw, err := os.ReadFile(filepath.Join(root, "chips.txt"))
	if err != nil {
		t.Fatal(err)
	}
	type info struct {
		label string
		lines int
	}
	chips := map[string]info{}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var name, label string
		var n int
		// "gpiochip0 [pinctrl-bcm2835] (54 lines)"
		name, rest, _ := strings.Cut(l, " [")
		label, rest, _ = strings.Cut(rest, "] (")
		if _, err := fmt.Sscanf(rest, "%d lines)", &n); err != nil {
			t.Fatalf("%s: chips.txt line %q: %v", board, l, err)
		}
		chips[name] = info{label, n}
	}
	return gpioHost{root: root, info: func(dev string) (string, int, error) {
		c, ok := chips[filepath.Base(dev)]
		if !ok {
			return "", 0, fmt.Errorf("%s not in chips.txt", dev)
		}
		return c.label, c.lines, nil
	}}
}

func noNames(name string) (string, int, error) {
	return "", 0, errors.New("no line of that name")
}

func TestHeaderChipPerBoard(t *testing.T) {
	for _, tt := range []struct {
		board, pin, chip, label string
		offset                  int
	}{
		{"pi3b", "GPIO4", "gpiochip0", "pinctrl-bcm2835", 4},
		{"zero2w", "GPIO4", "gpiochip0", "pinctrl-bcm2835", 4},
		{"pi4b", "4", "gpiochip0", "pinctrl-bcm2711", 4},
		{"pi4b", "BCM17", "gpiochip0", "pinctrl-bcm2711", 17},
		// The Pi 5's first four chips are the SoC's brcmstb banks.
		{"pi5", "GPIO4", "gpiochip4", "pinctrl-rp1", 4},
		{"pi5", "gpio27", "gpiochip4", "pinctrl-rp1", 27},
		// No compatible: the model string says CM4; its header chip is not
		// the first one.
		{"cm4-model", "GPIO4", "gpiochip1", "pinctrl-bcm2711", 4},
		// No device-tree node in sysfs: the label alone finds it.
		{"pi4b-no-node", "GPIO4", "gpiochip1", "pinctrl-bcm2711", 4},
		// Written as chip and offset: taken as is.
		{"pi5", "gpiochip2:7", "gpiochip2", "107d517c00.gpio", 7},
	} {
		t.Run(tt.board+"/"+tt.pin, func(t *testing.T) {
			c, off, err := recorded(t, tt.board).findLine(tt.pin, noNames)
			if err != nil {
				t.Fatal(err)
			}
			if c.name != tt.chip || c.label != tt.label || off != tt.offset {
				t.Errorf("findLine(%q) = %v, %d; want %s [%s], %d", tt.pin, c, off, tt.chip, tt.label, tt.offset)
			}
		})
	}
}

func TestHeaderChipByNodeWhenTheLabelDiffers(t *testing.T) {
	h := recorded(t, "pi5")
	info := h.info
	h.info = func(dev string) (string, int, error) {
		l, n, err := info(dev)
		if l == "pinctrl-rp1" {
			l = "1f000d0000.pinctrl" // a kernel that labels the chip by device
		}
		return l, n, err
	}
	c, off, err := h.findLine("GPIO4", noNames)
	if err != nil || c.name != "gpiochip4" || off != 4 {
		t.Fatalf("findLine = %v, %d, %v; want gpiochip4 (its node is the RP1's raspberrypi,rp1-gpio)", c, off, err)
	}
	if c.node != "/axi/pcie@1000120000/pci@0,0/dev@0,0/pci-ep-bus@1/pinctrl@400d0000" {
		t.Errorf("node %q", c.node)
	}
}

func TestHeaderChipErrorsNameWhatWasFound(t *testing.T) {
	for _, tt := range []struct {
		board, pin string
		is         error
		want       []string
	}{
		// A Pi 5 before pinctrl-rp1 is loaded: the brcmstb chips are there,
		// the first is not the header.
		{"pi5-no-rp1", "GPIO4", ErrNoHeaderChip, []string{
			"Raspberry Pi 5", "pinctrl-rp1", "raspberrypi,rp1-gpio",
			"gpiochip0 [107d508500.gpio] (32 lines, /soc@107c000000/gpio@7d508500)",
			"gpiochip3 [107d517c00.gpio] (6 lines, /soc@107c000000/gpio@7d517c00)",
			"-pin gpiochipN:OFFSET",
		}},
		{"other", "GPIO4", ErrNoHeaderChip, []string{
			`compatible "vendor,some-board, vendor,some-soc"`, `model "Some Board"`,
			"gpiochip0 [some-gpio] (32 lines, /soc/gpio@1000)", "gpiochip1 [some-gpio]",
		}},
		{"pi4b", "GPIO60", nil, []string{"gpiochip0 [pinctrl-bcm2711] (58 lines", "no line 60"}},
		{"pi3b", "gpiochip7:4", nil, []string{"no /dev/gpiochip7", "gpiochip1 [raspberrypi-exp-gpio]"}},
		{"pi3b", "PIN7", nil, []string{`no GPIO line named "PIN7"`}},
	} {
		t.Run(tt.board+"/"+tt.pin, func(t *testing.T) {
			_, _, err := recorded(t, tt.board).findLine(tt.pin, noNames)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestFindLineByName(t *testing.T) {
	byName := func(name string) (string, int, error) {
		if name == "GPIO_GCLK" { // Debian's name for line 4 on the Pi 3 and 4
			return "gpiochip0", 4, nil
		}
		return noNames(name)
	}
	c, off, err := recorded(t, "pi3b").findLine("GPIO_GCLK", byName)
	if err != nil || c.name != "gpiochip0" || c.label != "pinctrl-bcm2835" || off != 4 {
		t.Errorf("findLine(GPIO_GCLK) = %v, %d, %v", c, off, err)
	}
}

// FuzzFindLine: any -pin value gives a line of a chip that exists, with an
// offset below its line count (unless written as chip:offset), or an error.
func FuzzFindLine(f *testing.F) {
	for _, s := range []string{"GPIO4", "4", "bcm27", "gpiochip4:3", "gpiochip99:1", "GPIO_GCLK", "", "gpio99999999999999999999", "gpiochip:4"} {
		f.Add(s)
	}
	h := recorded(f, "pi5")
	f.Fuzz(func(t *testing.T, pin string) {
		c, off, err := h.findLine(pin, noNames)
		if err != nil {
			return
		}
		if c.label == "" || off < 0 {
			t.Fatalf("findLine(%q) = %v, %d", pin, c, off)
		}
		if !chipLine.MatchString(pin) && (c.name != "gpiochip4" || off >= c.lines) {
			t.Fatalf("findLine(%q) = %v, %d: not a line of the header", pin, c, off)
		}
	})
}

// FuzzBoard: whatever the device tree and /proc/cpuinfo hold, board never
// panics, and a board it names is one the compatible or model names.
func FuzzBoard(f *testing.F) {
	f.Add([]byte("raspberrypi,5-model-b\x00brcm,bcm2712\x00"), []byte("Raspberry Pi 5 Model B Rev 1.0\x00"), []byte(""))
	f.Add([]byte{}, []byte{}, []byte("processor\t: 0\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"))
	f.Add([]byte("\x00\x00brcm,bcm2837"), []byte("\n"), []byte("Model:"))
	f.Fuzz(func(t *testing.T, compat, model, cpuinfo []byte) {
		root := t.TempDir()
		dt := filepath.Join(root, "proc", "device-tree")
		if err := os.MkdirAll(dt, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"compatible": compat, "model": model} {
			if len(b) > 0 {
				if err := os.WriteFile(filepath.Join(dt, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(root, "proc", "cpuinfo"), cpuinfo, 0o644); err != nil {
			t.Fatal(err)
		}
		b, ok, found := gpioHost{root: root}.board()
		if found == "" {
			t.Error("found says nothing")
		}
		if !ok {
			return
		}
		named := strings.Contains(string(compat)+"\x00"+string(model)+"\x00"+string(cpuinfo), b.soc[0])
		for _, m := range b.models {
			named = named || strings.Contains(string(model)+string(cpuinfo), m)
		}
		for _, s := range b.soc {
			named = named || strings.Contains(string(compat), s)
		}
		if !named {
			t.Errorf("board %s from compatible %q, model %q, cpuinfo %q", b.name, compat, model, cpuinfo)
		}
	})
}
