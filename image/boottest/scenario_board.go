package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sensord/image/boards"
	"sensord/image/boottest/harness"
	"sensord/image/boottest/vm"
)

// boardRun is make board-test's state between its steps (board.go says
// what it proves).
type boardRun struct {
	*harness.T
	opts     options
	watchdog chan time.Duration

	b                            boardSpec
	dir                          string
	disk                         *vm.Disk
	kernel, initrd, dtb, cmdline string
	cardCmdline                  string // cmdline.txt as the card has it
	m                            *vm.Machine
	qemuStart                    time.Time
}

// steps is make board-test: the image booted as the Pi's firmware would
// boot it, under qemu's emulated Raspberry Pi.
func (s *boardRun) steps() []harness.Step {
	t := s.T
	return []harness.Step{
		harness.Do("which board", s.findBoard),
		t.PhaseOf("prepare: copy image, boot files from the FAT",
			harness.Do("the image on an SD card", s.card),
			harness.Do("the FAT holds every board's files", s.checkFAT),
			harness.Do("kernel, initramfs, device tree, cmdline.txt", s.bootFiles)),
		harness.Do("boot", func(ctx context.Context) error {
			// The phase's name needs the board, known only once the
			// first step ran.
			return t.PhaseOf("boot: qemu -M "+s.b.machine+" to a shell on the mini UART", harness.Do("qemu to a root shell", s.boot)).Run(ctx)
		}),
		t.PhaseOf("checks: the board, its SD card, systemd, GPIO", harness.Checks("the board", s.checkBoard)),
		t.PhaseOf("checks: sensord finds the header's GPIO chip", harness.Checks("sensord's GPIO line", s.checkSensorOpened)),
	}
}

func (s *boardRun) findBoard(context.Context) (err error) {
	s.b, err = findBoard(s.opts.board)
	return err
}

// card copies the image to a work directory and grows it to a power of
// two (qemu's SD card must be), bigger than the image, as cards are, for
// growroot.
func (s *boardRun) card(ctx context.Context) (err error) {
	if s.dir, err = s.WorkDir("sensord-boardtest-"); err != nil {
		return err
	}
	if s.disk, err = vm.CopyImage(ctx, s.opts.image, filepath.Join(s.dir, "disk.img")); err != nil {
		return err
	}
	have, err := s.disk.Size()
	if err != nil {
		return err
	}
	size := int64(1) << 30
	for size <= have {
		size <<= 1
	}
	if err := s.disk.Resize(size); err != nil {
		return err
	}
	s.Logf("SD card: the image grown to %d MiB", size>>20)
	return nil
}

func (s *boardRun) checkFAT(ctx context.Context) error {
	list, err := s.disk.FAT().List(ctx)
	if err != nil {
		return err
	}
	have := FATFiles(list)
	missing := boards.Missing(func(name string) bool { return have[name] })
	s.Check(len(missing) == 0, "the FAT holds every board's device tree, overlay and firmware (%d files; missing: %q)", len(boards.Files()), missing)
	return nil
}

// bootFiles takes what the firmware would load from the FAT, and makes
// the device tree fit qemu's machine (board.go: unemulated, unwired).
func (s *boardRun) bootFiles(ctx context.Context) error {
	fat := s.disk.FAT()
	cfg, err := fat.Read(ctx, "config.txt")
	if err != nil {
		return err
	}
	k, i, err := vm.BootFiles(string(cfg))
	if err != nil {
		return err
	}
	s.kernel, s.initrd, s.dtb = filepath.Join(s.dir, "kernel"), filepath.Join(s.dir, "initrd"), filepath.Join(s.dir, "board.dtb")
	for _, c := range [][2]string{{k, s.kernel}, {i, s.initrd}, {s.b.dtb, s.dtb}} {
		if err := fat.Get(ctx, c[0], c[1]); err != nil {
			return err
		}
	}
	if err := s.fitDeviceTree(ctx); err != nil {
		return err
	}
	cl, err := fat.Read(ctx, "cmdline.txt")
	if err != nil {
		return err
	}
	s.cardCmdline, s.cmdline = string(cl), BoardCmdline(string(cl), s.b.console)
	for _, f := range [][2]string{{k, s.kernel}, {i, s.initrd}} {
		if st, err := os.Stat(f[1]); err == nil {
			s.Number("%s on the FAT: %d bytes", filepath.Base(f[0]), st.Size())
		}
	}
	s.Logf("boot partition: kernel %s, initramfs %s, device tree %s, cmdline.txt %q", k, i, s.b.dtb, strings.TrimSpace(string(cl)))
	return nil
}

func (s *boardRun) fitDeviceTree(ctx context.Context) error {
	for _, node := range s.b.unemulated {
		if out, err := exec.CommandContext(ctx, "fdtput", "-t", "s", s.dtb, node, "status", "disabled").CombinedOutput(); err != nil {
			return fmt.Errorf("fdtput %s %s status disabled: %v: %s", s.dtb, node, err, out)
		}
		s.Logf("device tree: %s disabled (not emulated by qemu -M %s)", node, s.b.machine)
	}
	for _, np := range s.b.unwired {
		if out, err := exec.CommandContext(ctx, "fdtput", append([]string{"-d", s.dtb}, np...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("fdtput -d %s %s: %v: %s", s.dtb, strings.Join(np, " "), err, out)
		}
		s.Logf("device tree: %s without %s (qemu -M %s is wired otherwise)", np[0], strings.Join(np[1:], ", "), s.b.machine)
	}
	return nil
}

func (s *boardRun) boot(ctx context.Context) error {
	args := []string{
		"-M", s.b.machine, "-m", s.b.mem,
		"-kernel", s.kernel, "-initrd", s.initrd, "-dtb", s.dtb, "-append", s.cmdline,
		"-drive", "file=" + s.disk.Path + ",format=raw,if=sd,cache=unsafe",
		"-display", "none", "-monitor", "none", "-no-reboot",
	}
	var err error
	// serial0 is the PL011 (Bluetooth on a Pi), serial1 the mini UART on
	// the header's GPIO14/15: the console.
	s.m, err = vm.Start(s.T, vm.Options{Qemu: s.opts.qemu, Dir: s.dir, Args: args,
		Serials: []vm.Serial{vm.SerialNull, vm.SerialConsole}, Watchdog: s.watchdog})
	if err != nil {
		return err
	}
	s.Logf("qemu pid %d", s.m.Pid())
	s.qemuStart = time.Now()
	bootCtx, cancel := context.WithTimeout(ctx, boardBootTimeout)
	defer cancel()
	if err := s.m.WaitPrompt(bootCtx); err != nil {
		return fmt.Errorf("no shell prompt on %s: %w", s.b.console, err)
	}
	if err := s.m.Console.Ready(bootCtx, func() <-chan struct{} { return s.m.Poke(5 * time.Second) }); err != nil {
		return fmt.Errorf("no shell on %s: %w", s.b.console, err)
	}
	s.Number("qemu -M %s start to a root shell on %s: %.0f s", s.b.machine, s.b.console, time.Since(s.qemuStart).Seconds())
	s.run(ctx, "stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb")
	return nil
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
