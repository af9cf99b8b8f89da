package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"sensord/image/boottest/vm"
)

// The board-level boot (-board): qemu emulates the Raspberry Pi itself (its
// SoC, SD controller, GPIO, mini UART, watchdog) and the image boots the
// way the Pi's firmware would boot it: what config.txt names as the kernel
// (U-Boot, which runs the card's boot.scr: the slot's kernel, initramfs and
// device tree, cmdline.txt) and the board's device tree, all from the
// card's FAT partition, and the card itself as the SD card. The checks: the kernel
// sees the Pi's model, the root is the SD card's slot A, systemd runs,
// /dev/gpiochip* exists and sensord (the image's own settings: a DHT22 on
// GPIO4) opened line 4 of the header's chip.

// boardSpec is one board qemu emulates.
type boardSpec struct {
	machine string // qemu -M
	dtb     string // the device tree its firmware would load
	model   string // /proc/device-tree/model starts with this
	// header: the chip sensord must find, as its log names the line.
	header  string
	console string // the mini UART, qemu's second serial port
	mem     string
	// unemulated: device-tree nodes of hardware qemu's machine lacks,
	// disabled in the test's copy of the device tree, as qemu itself
	// disables others (its warnings name them); a driver touching the
	// missing registers takes an external abort.
	unemulated []string
	// unwired: each a node and properties to delete from the test's
	// copy, where qemu's machine is wired unlike the board.
	unwired [][]string
	// qemuRemoves: nodes qemu's machine removes itself from the device
	// tree it loads (-dtb), which through U-Boot is U-Boot's, not the
	// slot's one U-Boot hands the kernel: disabled in the test's copy of
	// that one.
	qemuRemoves []string
}

func boardSpecs() []boardSpec {
	return []boardSpec{
		{machine: "raspi3b", dtb: "bcm2837-rpi-3-b.dtb", model: "Raspberry Pi 3 Model B", header: "pinctrl-bcm2835", console: "ttyS1", mem: "1G"},
		{machine: "raspi4b", dtb: "bcm2711-rpi-4-b.dtb", model: "Raspberry Pi 4 Model B", header: "pinctrl-bcm2711", console: "ttyS1", mem: "2G",
			// The HDMI block at 0x7ef00000 (its clock, always-on L2
			// interrupt controller, two HDMI controllers and their DDC
			// I2C): qemu 10's raspi4b maps nothing there, and
			// brcmstb_l2_intc_probe and brcmstb_i2c_probe fault, killing
			// init.
			unemulated: []string{"/soc/clock@7ef00000", "/soc/interrupt-controller@7ef00100",
				"/soc/hdmi@7ef00700", "/soc/i2c@7ef04500", "/soc/hdmi@7ef05700", "/soc/i2c@7ef09500"},
			// qemu's raspi4b puts the SD card on the Arasan controller at
			// 0x7e300000 (the Wi-Fi's SDIO on a Pi 4), not on emmc2 as the
			// board does; the Wi-Fi's power sequence there, and emmc2's
			// two regulators, are switched through the firmware's GPIO
			// expander, which qemu's firmware mailbox does not implement,
			// so both controllers would wait for them forever.
			unwired: [][]string{
				{"/soc/mmc@7e300000", "mmc-pwrseq", "non-removable"},
				{"/emmc2-bus@fe000000/mmc@7e340000", "vmmc-supply", "vqmmc-supply"},
			},
			// qemu 10's raspi4_modify_dtb: PCIe, RNG, thermal, GENET.
			qemuRemoves: []string{"/scb-bus@fc000000/pcie@7d500000", "/soc/rng@7e104000",
				"/soc/avs-monitor@7d5d2000/thermal", "/scb-bus@fc000000/ethernet@7d580000"}},
	}
}

func findBoard(machine string) (boardSpec, error) {
	var names []string
	for _, b := range boardSpecs() {
		if b.machine == machine {
			return b, nil
		}
		names = append(names, b.machine)
	}
	return boardSpec{}, fmt.Errorf("-board %q: want one of %s", machine, strings.Join(names, ", "))
}

// Emulation allowances. A real Pi boots in well under a minute; qemu's
// emulated Pi 3 runs its four cores in software on a shared 2-core host.
const (
	// boardBootTimeout bounds qemu start to a shell on the console.
	boardBootTimeout = 25 * time.Minute
	// boardCommandTimeout bounds one console command.
	boardCommandTimeout = 5 * time.Minute
	// boardSensordTimeout bounds shell to sensord's "sensor opened".
	boardSensordTimeout = 15 * time.Minute
)

// BoardCmdline is the kernel command line of the board-level boot: the
// card's cmdline.txt unchanged (its console= for the Pi's UARTs, its root=),
// plus a root shell on the board's mini UART for the test, systemd's
// status lines off that line, and the hardware watchdog left unarmed:
// bcm2835_wdt's longest timeout is 15 s, which emulated PID 1 misses during
// boot, and the watchdog then resets the board. The device itself is
// checked (/dev/watchdog0, its identity) instead.
func BoardCmdline(cmdline, console string) string {
	f := strings.Fields(cmdline)
	return strings.Join(append(f,
		"systemd.debug_shell="+console,
		"systemd.mask=serial-getty@"+console+".service",
		"systemd.show_status=false",
		"systemd.watchdog_sec=off",
		// Kernel and early systemd messages stay off the console the
		// checks read (errors still show).
		"loglevel=4",
		"systemd.default_device_timeout_sec="+vm.DeviceTimeout,
	), " ")
}

// kernelLog matches a kernel message line ("[   41.898883] ...") on the
// console.
var kernelLog = regexp.MustCompile(`^\[\s*\d+\.\d+\]`)

// sdRoot is root slot A, the read-only squashfs on an SD card's second
// partition (mmcblk0 on the Pi 3, the Pi 4's emmc2 may be mmcblk1).
var sdRoot = regexp.MustCompile(`^/dev/mmcblk\d+p2 squashfs$`)

// shellLines is r's lines without kernel messages that the console
// interleaved.
func shellLines(r vm.Result) []string {
	var out []string
	for _, l := range r.Lines() {
		if !kernelLog.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// hasPrefixFields says whether line starts with the fields of prefix,
// spacing aside.
func hasPrefixFields(line, prefix string) bool {
	l, p := strings.Fields(line), strings.Fields(prefix)
	return len(p) > 0 && len(l) >= len(p) && slices.Equal(l[:len(p)], p)
}

// FATFiles parses `mdir -/ -b` (one "::/path" per line, directories
// included) into the set of slash-separated paths under the partition's
// top.
func FATFiles(mdir string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(mdir, "\n") {
		l = strings.TrimSpace(l)
		if p, ok := strings.CutPrefix(l, "::/"); ok && p != "" {
			out[strings.TrimSuffix(p, "/")] = true
		}
	}
	return out
}

// run runs cmd on the console, bounded by boardCommandTimeout; a console
// error is a failed check.
func (s *boardRun) run(ctx context.Context, cmd string) vm.Result {
	cctx, cancel := context.WithTimeout(ctx, boardCommandTimeout)
	defer cancel()
	r, err := s.m.Console.Run(cctx, cmd)
	if err != nil {
		s.Fail("console: %s: %v", cmd, err)
	}
	return r
}

// checkBoard: the kernel sees the Pi's model and the card's command line,
// the root is the card's slot A, PID 1 is systemd, the GPIO chips and the
// watchdog are there.
func (s *boardRun) checkBoard(ctx context.Context) {
	l := shellLines(s.run(ctx, "tr -d '\\0' < /proc/device-tree/model; echo; uname -r"))
	s.Check(len(l) > 0 && strings.HasPrefix(l[0], s.b.model), "the kernel runs on the board's device tree: model, kernel %q", strings.Join(l, " | "))
	l = shellLines(s.run(ctx, "cat /proc/cmdline"))
	s.Check(len(l) == 1 && hasPrefixFields(l[0], s.cardCmdline), "the kernel command line is the card's cmdline.txt (and the test's additions): %q", strings.Join(l, " | "))
	l = shellLines(s.run(ctx, "findmnt -rno SOURCE,FSTYPE /; cat /run/sensord-boot"))
	s.Check(len(l) >= 3 && sdRoot.MatchString(l[0]) && slices.Contains(l, "slot=A") && slices.Contains(l, "mode=committed"),
		"the root is the SD card's slot A (squashfs, partition 2), chosen by the initramfs from the data partition's slot state: %q", strings.Join(l, " | "))
	l = shellLines(s.run(ctx, "readlink /proc/1/exe"))
	s.Check(len(l) == 1 && l[0] == "/usr/lib/systemd/systemd", "PID 1 is systemd: %q", strings.Join(l, " | "))
	r := s.run(ctx, "ls /dev/gpiochip*; for c in /sys/bus/gpio/devices/gpiochip*; do echo \"$c -> $(readlink \"$c\") of_node $(readlink -f \"$c/of_node\")\"; done")
	s.Check(strings.Contains(r.Out, "/dev/gpiochip0"), "/dev/gpiochip* exist: %q", strings.Join(shellLines(r), " | "))
	l = shellLines(s.run(ctx, "cat /sys/class/watchdog/watchdog0/identity; ls /dev/watchdog0"))
	s.Check(len(l) == 2 && strings.Contains(strings.ToLower(l[0]), "bcm2835") && l[1] == "/dev/watchdog0", "the Pi's hardware watchdog is there: %q", strings.Join(l, " | "))
	s.Logf("I2C: %s", strings.Join(shellLines(s.run(ctx, "ls /dev/i2c-* 2>&1; lsmod | grep -E '^(i2c_dev|i2c_bcm2835) ' | cut -d' ' -f1")), " | "))
}

// checkSensorOpened waits for sensord (the image's own settings: a DHT22
// on GPIO4) to log that it opened line 4 of the header's chip.
func (s *boardRun) checkSensorOpened(ctx context.Context) {
	want := fmt.Sprintf(`line="gpiochip0:4 (GPIO4, %s)"`, s.b.header)
	sctx, cancel := context.WithTimeout(ctx, boardSensordTimeout)
	defer cancel()
	for {
		r, err := s.m.Console.Run(sctx, "journalctl -b -u sensord -o cat --no-pager | grep -m 1 'msg=\"sensor opened\"'")
		if err == nil && strings.Contains(r.Out, "sensor opened") {
			s.Check(strings.Contains(r.Out, want), "sensord opened GPIO4 on the header's chip (%s): %q", want, strings.TrimSpace(r.Out))
			s.Number("qemu start to sensord's \"sensor opened\": %.0f s", time.Since(s.qemuStart).Seconds())
			break
		}
		if sctx.Err() != nil {
			r, _ := s.m.Console.Run(ctx, "systemctl status sensord --no-pager 2>&1 | tail -n 15")
			s.Fail("sensord never logged \"sensor opened\": %q", strings.Join(r.Lines(), " | "))
			break
		}
		select {
		case <-sctx.Done():
		case <-time.After(10 * time.Second):
		}
	}
	s.Logf("sensord: %s", strings.Join(shellLines(s.run(ctx, "systemctl is-active sensord; journalctl -b -u sensord -o cat --no-pager | tail -n 3")), " | "))
	s.Logf("systemd: %s", strings.Join(shellLines(s.run(ctx, "systemctl is-system-running; systemctl --failed --no-legend --plain")), " | "))
}
