package sensors

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrNoHeaderChip is returned (wrapped) when no GPIO chip of the host is the
// one that carries the 40-pin header.
var ErrNoHeaderChip = errors.New("sensors: no GPIO chip carries the header")

// headerBoard says how to recognise a board family and its header's GPIO
// chip. BCM numbering (GPIO4) is the offset on that chip on every Pi.
type headerBoard struct {
	name string
	// soc: the SoC's compatible in /proc/device-tree/compatible.
	soc []string
	// models: substrings of /proc/device-tree/model (or /proc/cpuinfo's
	// Model line) when there is no compatible.
	models []string
	// labels: the header chip's label as its driver names it.
	labels []string
	// compatible: the header chip's device-tree node's compatible.
	compatible []string
}

// headerBoards lists the boards whose header chip is known. The labels are
// the drivers' (pinctrl-bcm2835, pinctrl-bcm2711, pinctrl-rp1); the
// compatibles are the GPIO nodes of Debian's bcm2837-*, bcm2711-* and
// bcm2712-* device trees. On the Pi 5 the header is on the RP1 (behind PCIe),
// not on the SoC's own brcmstb GPIO banks, which usually come first.
func headerBoards() []headerBoard {
	return []headerBoard{
		{
			name:       "Raspberry Pi 5 (BCM2712, header on the RP1)",
			soc:        []string{"brcm,bcm2712"},
			models:     []string{"Raspberry Pi 5", "Raspberry Pi 500", "Raspberry Pi Compute Module 5"},
			labels:     []string{"pinctrl-rp1"},
			compatible: []string{"raspberrypi,rp1-gpio"},
		},
		{
			name:       "Raspberry Pi 4 (BCM2711)",
			soc:        []string{"brcm,bcm2711"},
			models:     []string{"Raspberry Pi 4", "Raspberry Pi 400", "Raspberry Pi Compute Module 4"},
			labels:     []string{"pinctrl-bcm2711"},
			compatible: []string{"brcm,bcm2711-gpio"},
		},
		{
			name:       "Raspberry Pi 1-3, Zero (BCM2835-7)",
			soc:        []string{"brcm,bcm2837", "brcm,bcm2836", "brcm,bcm2835"},
			models:     []string{"Raspberry Pi 3", "Raspberry Pi Zero", "Raspberry Pi Compute Module 3", "Raspberry Pi 2", "Raspberry Pi Model", "Raspberry Pi Compute Module Rev"},
			labels:     []string{"pinctrl-bcm2835"},
			compatible: []string{"brcm,bcm2835-gpio"},
		},
	}
}

// gpioChip is one /dev/gpiochipN as the lookup sees it.
type gpioChip struct {
	name       string // "gpiochip0"
	label      string // from the chip (GPIO_GET_CHIPINFO)
	lines      int
	node       string   // device-tree path, "" if none
	compatible []string // of that node
}

func (c gpioChip) String() string {
	s := fmt.Sprintf("%s [%s] (%d lines", c.name, c.label, c.lines)
	if c.node != "" {
		s += ", " + c.node
	}
	return s + ")"
}

// chipInfo asks a GPIO character device for its label and line count.
type chipInfo func(dev string) (label string, lines int, err error)

// gpioHost is where the lookup reads: root is "/" on a device (a recorded
// layout in tests); info asks a chip for its label.
type gpioHost struct {
	root string
	info chipInfo
}

func (h gpioHost) path(p string) string { return filepath.Join(h.root, p) }

// board identifies the board from the device tree's compatible, else from
// its model string, else from /proc/cpuinfo's Model line. found says what
// was read, for errors.
func (h gpioHost) board() (b headerBoard, ok bool, found string) {
	if raw, err := os.ReadFile(h.path("proc/device-tree/compatible")); err == nil {
		compat := splitNUL(raw)
		found = "compatible " + strconv.Quote(strings.Join(compat, ", "))
		for _, b := range headerBoards() {
			for _, c := range compat {
				if slices.Contains(b.soc, c) {
					return b, true, found
				}
			}
		}
	}
	model := ""
	if raw, err := os.ReadFile(h.path("proc/device-tree/model")); err == nil {
		model = strings.TrimRight(string(raw), "\x00\n")
	} else if raw, err := os.ReadFile(h.path("proc/cpuinfo")); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "Model" {
				model = strings.TrimSpace(v)
			}
		}
	}
	if model != "" {
		if found != "" {
			found += ", "
		}
		found += "model " + strconv.Quote(model)
		for _, b := range headerBoards() {
			for _, m := range b.models {
				if strings.HasPrefix(model, m) {
					return b, true, found
				}
			}
		}
	}
	if found == "" {
		found = "no device tree"
	}
	return headerBoard{}, false, found
}

var chipNumber = regexp.MustCompile(`^gpiochip(\d+)$`)

// chips lists /dev/gpiochip* in numeric order with each chip's label and
// device-tree node (sysfs: /sys/bus/gpio/devices/gpiochipN/of_node).
func (h gpioHost) chips() ([]gpioChip, error) {
	ents, err := os.ReadDir(h.path("dev"))
	if err != nil {
		return nil, fmt.Errorf("sensors: listing GPIO chips: %w", err)
	}
	var out []gpioChip
	for _, e := range ents {
		if !chipNumber.MatchString(e.Name()) {
			continue
		}
		c := gpioChip{name: e.Name()}
		label, lines, err := h.info(h.path("dev/" + e.Name()))
		if err != nil {
			label = "? " + err.Error()
		}
		c.label, c.lines = label, lines
		c.node, c.compatible = h.ofNode(e.Name())
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b gpioChip) int { return chipIndex(a.name) - chipIndex(b.name) })
	return out, nil
}

func chipIndex(name string) int {
	n, _ := strconv.Atoi(chipNumber.FindStringSubmatch(name)[1])
	return n
}

// ofNode resolves the chip's of_node link to a device-tree path and reads
// that node's compatible. Chips without a device-tree node give "".
func (h gpioHost) ofNode(chip string) (string, []string) {
	node, err := filepath.EvalSymlinks(h.path("sys/bus/gpio/devices/" + chip + "/of_node"))
	if err != nil {
		return "", nil
	}
	base, err := filepath.EvalSymlinks(h.path("sys/firmware/devicetree/base"))
	if err != nil {
		return "", nil
	}
	rel, err := filepath.Rel(base, node)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", nil
	}
	var compat []string
	if raw, err := os.ReadFile(filepath.Join(node, "compatible")); err == nil {
		compat = splitNUL(raw)
	}
	return "/" + filepath.ToSlash(rel), compat
}

// headerChip finds the chip that carries the header: the board's chip by
// label or device-tree compatible; on a board it does not know, the only
// chip there is. The error lists the chips and labels found.
func (h gpioHost) headerChip() (gpioChip, error) {
	chips, err := h.chips()
	if err != nil {
		return gpioChip{}, err
	}
	b, known, found := h.board()
	if known {
		for _, c := range chips {
			if slices.Contains(b.labels, c.label) || slices.ContainsFunc(c.compatible, func(s string) bool { return slices.Contains(b.compatible, s) }) {
				return c, nil
			}
		}
		return gpioChip{}, fmt.Errorf("%w: on a %s the header is the chip labelled %s (device-tree compatible %s), and none of %s is; is its driver loaded (lsmod, dmesg)? Or name the chip: -pin gpiochipN:OFFSET",
			ErrNoHeaderChip, b.name, strings.Join(b.labels, " or "), strings.Join(b.compatible, " or "), listChips(chips))
	}
	if len(chips) == 1 {
		return chips[0], nil
	}
	return gpioChip{}, fmt.Errorf("%w: not a board whose header chip is known (%s), and there are %s; name the chip: -pin gpiochipN:OFFSET",
		ErrNoHeaderChip, found, listChips(chips))
}

func listChips(chips []gpioChip) string {
	if len(chips) == 0 {
		return "no GPIO chips"
	}
	s := make([]string, len(chips))
	for i, c := range chips {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

var (
	gpioNumber = regexp.MustCompile(`^(?i:gpio|bcm)?(\d+)$`)
	chipLine   = regexp.MustCompile(`^(gpiochip\d+):(\d+)$`)
)

// lineFinder finds a line by its name across all chips (gpiocdev.FindLine).
type lineFinder func(name string) (chip string, offset int, err error)

// findLine resolves a pin to a chip and offset:
//   - "gpiochipN:OFFSET" is taken as written;
//   - "GPIO4", "BCM4" or "4" is BCM number 4: offset 4 of the header's chip
//     (headerChip), since the line names differ between boards and kernels
//     (Debian's device trees name line 4 "GPIO_GCLK"; the Pi 5's RP1 lines
//     carry no names);
//   - any other name is a line name (e.g. "GPIO_GCLK"), found by byName.
func (h gpioHost) findLine(pin string, byName lineFinder) (chip gpioChip, offset int, err error) {
	if m := chipLine.FindStringSubmatch(pin); m != nil {
		off, err := strconv.Atoi(m[2])
		if err != nil {
			return gpioChip{}, 0, fmt.Errorf("sensors: -pin %s: offset: %w", pin, err)
		}
		chips, err := h.chips()
		if err != nil {
			return gpioChip{}, 0, err
		}
		i := slices.IndexFunc(chips, func(c gpioChip) bool { return c.name == m[1] })
		if i < 0 {
			return gpioChip{}, 0, fmt.Errorf("sensors: -pin %s: no /dev/%s; there are %s", pin, m[1], listChips(chips))
		}
		return chips[i], off, nil
	}
	if m := gpioNumber.FindStringSubmatch(pin); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return gpioChip{}, 0, fmt.Errorf("sensors: -pin %s: %w", pin, err)
		}
		c, err := h.headerChip()
		if err != nil {
			return gpioChip{}, 0, fmt.Errorf("sensors: -pin %s: %w", pin, err)
		}
		if n >= c.lines {
			return gpioChip{}, 0, fmt.Errorf("sensors: -pin %s: the header's chip %s has no line %d (BCM numbering, not the header pin number)", pin, c, n)
		}
		return c, n, nil
	}
	name, off, err := byName(pin)
	if err != nil {
		return gpioChip{}, 0, fmt.Errorf("sensors: no GPIO line named %q; use a name such as GPIO4 (BCM numbering, not the header pin number) or gpiochipN:OFFSET", pin)
	}
	chips, _ := h.chips()
	for _, c := range chips {
		if c.name == name {
			return c, off, nil
		}
	}
	return gpioChip{name: name}, off, nil
}

func splitNUL(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(b, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}
