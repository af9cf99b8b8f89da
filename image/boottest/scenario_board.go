package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// When config.txt names no initramfs its kernel is U-Boot, which runs the
// card's boot.scr: that loads the slot's kernel, initramfs and device
// tree and reads cmdline.txt itself, so the test's command line goes into
// the copy's cmdline.txt, and the slot's device tree on the copy's FAT is
// fitted too (the one the firmware loads is U-Boot's own).
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
	files := [][2]string{{k, s.kernel}, {i, s.initrd}, {s.b.dtb, s.dtb}}
	if i == "" {
		s.initrd = ""
		files = [][2]string{{k, s.kernel}, {s.b.dtb, s.dtb}}
	}
	for _, c := range files {
		if err := fat.Get(ctx, c[0], c[1]); err != nil {
			return err
		}
	}
	if err := s.fitDeviceTree(ctx, s.dtb); err != nil {
		return err
	}
	if s.initrd == "" && (len(s.b.unemulated) > 0 || len(s.b.unwired) > 0 || len(s.b.qemuRemoves) > 0) {
		slotDTB, p := slotADTBDir+s.b.dtb, filepath.Join(s.dir, "slot.dtb")
		if err := fat.Get(ctx, slotDTB, p); err != nil {
			return err
		}
		for _, node := range s.b.qemuRemoves {
			if err := disableNode(ctx, p, node); err != nil {
				return err
			}
			s.Logf("device tree: %s disabled in %s (qemu -M %s removes it from the device tree it loads)", node, slotDTB, s.b.machine)
		}
		if err := s.fitDeviceTree(ctx, p); err != nil {
			return err
		}
		if err := fat.Put(ctx, p, slotDTB); err != nil {
			return err
		}
	}
	cl, err := fat.Read(ctx, "cmdline.txt")
	if err != nil {
		return err
	}
	s.cardCmdline, s.cmdline = string(cl), BoardCmdline(string(cl), s.b.console)
	if s.initrd == "" {
		p := filepath.Join(s.dir, "cmdline.txt")
		if err := os.WriteFile(p, []byte(s.cmdline+"\n"), 0o644); err != nil {
			return err
		}
		if err := fat.Put(ctx, p, "cmdline.txt"); err != nil {
			return err
		}
	}
	for _, f := range files[:len(files)-1] {
		if st, err := os.Stat(f[1]); err == nil {
			s.Number("%s on the FAT: %d bytes", filepath.Base(f[0]), st.Size())
		}
	}
	if s.initrd == "" {
		s.Logf("boot partition: U-Boot %s with device tree %s; its boot.scr boots slot A with cmdline.txt %q", k, s.b.dtb, strings.TrimSpace(string(cl)))
	} else {
		s.Logf("boot partition: kernel %s, initramfs %s, device tree %s, cmdline.txt %q", k, i, s.b.dtb, strings.TrimSpace(string(cl)))
	}
	return nil
}

// slotADTBDir is where boot.scr loads slot A's device trees from:
// slot-a/dtbs/ and U-Boot's ${fdtfile} (broadcom/<board>.dtb).
const slotADTBDir = "slot-a/dtbs/broadcom/"

// disableNode sets status = "disabled" on node in the device tree at dtb.
func disableNode(ctx context.Context, dtb, node string) error {
	if out, err := exec.CommandContext(ctx, "fdtput", "-t", "s", dtb, node, "status", "disabled").CombinedOutput(); err != nil {
		return fmt.Errorf("fdtput %s %s status disabled: %v: %s", dtb, node, err, out)
	}
	return nil
}

// fitDeviceTree makes the device tree at dtb fit qemu's machine.
func (s *boardRun) fitDeviceTree(ctx context.Context, dtb string) error {
	for _, node := range s.b.unemulated {
		if err := disableNode(ctx, dtb, node); err != nil {
			return err
		}
		s.Logf("device tree: %s disabled (not emulated by qemu -M %s)", node, s.b.machine)
	}
	for _, np := range s.b.unwired {
		if out, err := exec.CommandContext(ctx, "fdtput", append([]string{"-d", dtb}, np...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("fdtput -d %s %s: %v: %s", dtb, strings.Join(np, " "), err, out)
		}
		s.Logf("device tree: %s without %s (qemu -M %s is wired otherwise)", np[0], strings.Join(np[1:], ", "), s.b.machine)
	}
	return nil
}

func (s *boardRun) boot(ctx context.Context) error {
	args := []string{"-M", s.b.machine, "-m", s.b.mem, "-kernel", s.kernel, "-dtb", s.dtb}
	if s.initrd != "" {
		args = append(args, "-initrd", s.initrd, "-append", s.cmdline)
	}
	args = append(args,
		"-drive", "file="+s.disk.Path+",format=raw,if=sd,cache=unsafe",
		"-display", "none", "-monitor", "none", "-no-reboot")
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
