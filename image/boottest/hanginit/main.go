// Command hanginit stands, in a trial slot's initramfs, for "a kernel
// that hangs before userspace": the update test has the real initramfs
// run it instead of the slot chooser (scripts/local-top/sensord-slot),
// and it leaves a task stuck in the kernel for good, the way a driver
// that waits on hardware that never answers does. It loads loop
// and ext4 from the real initramfs, mounts /hang.ext4 through a loop
// device, freezes that filesystem (FIFREEZE) and writes to it: the write
// waits, uninterruptibly, for a thaw that never comes.
//
// Nothing else reboots the board: only the kernel's hung-task detector
// turned into a panic (the boot script's trial arguments) and the panic=
// of cmdline.txt. The detector's timeout is cut to hungAfter so the test
// waits less; whether it panics is the boot script's to decide.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// hungAfter is the kernel's hung_task_timeout_secs for this boot: a task
// stuck this long is reported (and, on a trial boot, panics).
const hungAfter = "30"

// fifreeze is FIFREEZE, _IOWR('X', 119, int) of linux/fs.h (not in x/sys/unix).
const fifreeze = 0xc0045877

func main() {
	if err := hang(); err != nil {
		fmt.Fprintf(os.Stderr, "sensord-hanginit: %v\n", err)
		os.Exit(1)
	}
}

func hang() error {
	for _, d := range []string{"/dev", "/proc", "/mnt"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The real initramfs has mounted them already when it runs this.
	if err := mountOnce("/dev/null", "devtmpfs", "/dev"); err != nil {
		return err
	}
	if err := mountOnce("/proc/self", "proc", "/proc"); err != nil {
		return err
	}
	for _, m := range []string{"loop", "ext4"} {
		if out, err := exec.Command("/usr/sbin/modprobe", m).CombinedOutput(); err != nil {
			return fmt.Errorf("modprobe %s: %w: %s", m, err, out)
		}
	}
	if err := os.WriteFile("/proc/sys/kernel/hung_task_timeout_secs", []byte(hungAfter), 0); err != nil {
		return err
	}
	dev, err := attachLoop("/hang.ext4")
	if err != nil {
		return err
	}
	if err := unix.Mount(dev, "/mnt", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	mnt, err := os.Open("/mnt")
	if err != nil {
		return err
	}
	if err := unix.IoctlSetInt(int(mnt.Fd()), fifreeze, 0); err != nil {
		return fmt.Errorf("freeze /mnt: %w", err)
	}
	panics, _ := os.ReadFile("/proc/sys/kernel/hung_task_panic")
	fmt.Fprintf(os.Stderr, "sensord-hanginit: /mnt frozen; writing to it now hangs (hung_task_panic=%s, reported after %s s)\n", trim(panics), hungAfter)
	err = os.WriteFile("/mnt/never", []byte("x"), 0o644)
	// Not reached while the filesystem stays frozen.
	fmt.Fprintf(os.Stderr, "sensord-hanginit: the write returned (%v)\n", err)
	for {
		time.Sleep(time.Hour)
	}
}

// attachLoop puts file behind a free loop device and names the device.
func attachLoop(file string) (string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", fmt.Errorf("free loop device: %w", err)
	}
	dev := "/dev/loop" + strconv.Itoa(n)
	lo, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer lo.Close()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(lo.Fd()), unix.LOOP_SET_FD, int(f.Fd())); err != nil {
		return "", fmt.Errorf("%s on %s: %w", file, dev, err)
	}
	return dev, nil
}

func trim(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}

// mountOnce mounts fstype at dir unless marker shows it is there.
func mountOnce(marker, fstype, dir string) error {
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	return nil
}
