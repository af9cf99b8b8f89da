package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/boottest/mosquitto"
	"sensord/image/boottest/vm"
	"sensord/image/update"
)

// rig is the appliance a -M virt scenario (image, update) boots: the work
// directory, the disk copy and its boot files, the machine running now
// and its forwarded ports, the run's SSH keys and the host's broker.
type rig struct {
	*harness.T
	opts options
	dir  string

	disk      *vm.Disk
	dataBytes int64 // the data partition's size in the image

	m                      *vm.Machine
	port, sshPort, tlsPort int // host ports forwarded to the guest's 80, 22, 443

	// The per-run SSH key pairs (private key files): key is SSH_PUBKEY's
	// (the first of Imager's), key2 the second of Imager's (image-test
	// only), otherKey an unrelated one the guest must refuse.
	key, key2, otherKey string
	// The Wi-Fi network the appliance must join (wifi.go).
	wifiSSID   string
	wifiHidden bool
	// radios are the simulated Wi-Fi interfaces: the appliance's, the
	// access point's and the phone's (wifi.go, setupap.go).
	wifiRadios [3]string
	// imagerCmdline is what Imager adds to cmdline.txt (image-test).
	imagerCmdline string

	mqtt   *mosquitto.Broker // mqtt.go
	stream *stream           // a client on /ws/sensors (image-test)
	// mqttMark is how many messages the broker's watcher had seen before
	// the watchdog phase.
	mqttMark int
	// watchdog gets the time since qemu started of each expiry of the
	// guest's hardware watchdog, across boots.
	watchdog chan time.Duration
	stick    string // a second, read-only disk (update.go's bundles), if set
	// pastClock boots the guest as a Pi without an RTC, its one time
	// server not yet answering (clock.go): the image scenario only.
	pastClock bool
}

func newRig(t *harness.T, o options) *rig {
	return &rig{T: t, opts: o, watchdog: make(chan time.Duration, 16)}
}

// workDirs makes the work directory (pattern) and a key directory removed
// whatever happens: the work directory is kept after a failure, private
// keys need not be. It returns a new key pair's private key file for
// each name, in order.
func (t *rig) workDirs(ctx context.Context, pattern string, names ...string) ([]string, error) {
	dir, err := t.WorkDir(pattern)
	if err != nil {
		return nil, err
	}
	t.dir = dir
	keyDir, err := t.TempDir(pattern + "keys-")
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(names))
	for i, name := range names {
		if keys[i], err = vm.NewKeyPair(ctx, keyDir, name); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// startQemu boots the disk copy under -M virt as the Pi's firmware
// would (firmware): through U-Boot (the card's boot.scr chooses the slot
// and loads its kernel, initramfs and cmdline.txt from the FAT): three free host ports
// forwarded to the guest's 80, 22 and 443, a hardware watchdog, the
// stick (if any) as a second, read-only disk.
func (t *rig) startQemu() error {
	ports, err := vm.FreePorts(3)
	if err != nil {
		return err
	}
	t.port, t.sshPort, t.tlsPort = ports[0], ports[1], ports[2]
	boot, err := t.firmware()
	if err != nil {
		return err
	}
	args := append([]string{
		"-M", "virt", "-cpu", "cortex-a72", "-smp", strconv.Itoa(t.opts.smp), "-m", "1024",
		"-accel", "tcg,thread=multi"}, boot...)
	args = append(args,
		"-drive", "file="+t.disk.Path+",format=raw,if=none,id=hd0,cache=unsafe",
		"-device", "virtio-blk-pci,drive=hd0",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:80,hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=tcp:127.0.0.1:%d-:443", t.port, t.sshPort, t.tlsPort),
		"-device", "virtio-net-pci,netdev=n0,romfile=",
		// A hardware watchdog for systemd's RuntimeWatchdogSec= to arm, as
		// bcm2835_wdt is on a Pi.
		"-device", "i6300esb",
		"-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot",
	)
	if t.pastClock {
		args = append(args, "-rtc", "base="+guestRTCBase)
	}
	if t.stick != "" {
		args = append(args, "-drive", "file="+t.stick+",format=raw,if=none,id=hd1,readonly=on",
			"-device", "virtio-blk-pci,drive=hd1")
	}
	m, err := vm.Start(t.T, vm.Options{Qemu: t.opts.qemu, Dir: t.dir, Args: args,
		Serials: []vm.Serial{vm.SerialConsole}, Watchdog: t.watchdog})
	if m != nil {
		t.m = m
	}
	if err != nil {
		return err
	}
	t.Logf("qemu pid %d, guest port 80 on 127.0.0.1:%d, port 22 on 127.0.0.1:%d", m.Pid(), t.port, t.sshPort)
	return nil
}

// firmware is what the Pi's firmware does with the card, as qemu
// options: config.txt's kernel= is U-Boot (every card this tree makes),
// so U-Boot for the virt board starts; or, on a card made before U-Boot
// chose the slot, the kernel and initramfs config.txt names, from the
// FAT, with cmdline.txt.
func (t *rig) firmware() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fat := t.disk.FAT()
	cfg, err := fat.Read(ctx, "config.txt")
	if err != nil {
		return nil, err
	}
	kernel, initrd, err := vm.BootFiles(string(cfg))
	if err != nil {
		return nil, err
	}
	if kernel == update.UBootName {
		return []string{"-bios", t.opts.uboot}, nil
	}
	cl, err := fat.Read(ctx, "cmdline.txt")
	if err != nil {
		return nil, err
	}
	k, rd := filepath.Join(t.dir, "firmware-kernel"), filepath.Join(t.dir, "firmware-initrd")
	if err := fat.Get(ctx, kernel, k); err != nil {
		return nil, err
	}
	if err := fat.Get(ctx, initrd, rd); err != nil {
		return nil, err
	}
	t.Logf("config.txt loads %s and %s, not U-Boot: qemu starts them, as the firmware would", kernel, initrd)
	return []string{"-kernel", k, "-initrd", rd, "-append", strings.TrimSpace(string(cl))}, nil
}

func (t *rig) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", t.port, path) }

// waitHTTP waits until the dashboard answers on the forwarded port.
func (t *rig) waitHTTP(ctx context.Context) error {
	c := &http.Client{Timeout: 10 * time.Second}
	for {
		resp, err := c.Get(t.url("/"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dashboard never answered on 127.0.0.1:%d: %v", t.port, err)
		case <-t.m.Exited():
			return fmt.Errorf("qemu exited: %v", t.m.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// guest runs cmd on the console, bounded by 90 s; a console error is a
// failed check (the guest or the console is in trouble).
func (t *rig) guest(ctx context.Context, cmd string) (vm.Result, bool) {
	return t.guestWithin(ctx, 90*time.Second, cmd)
}

// guestLong is guest with room for a whole install under emulation.
func (t *rig) guestLong(ctx context.Context, cmd string) (vm.Result, bool) {
	return t.guestWithin(ctx, 10*time.Minute, cmd)
}

func (t *rig) guestWithin(ctx context.Context, d time.Duration, cmd string) (vm.Result, bool) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	r, err := t.m.Console.Run(cctx, cmd)
	if err != nil {
		t.Fail("console: %s: %v", cmd, err)
	}
	return r, err == nil
}

// explain runs cmd on the console and logs its output, to explain a failed
// check.
func (t *rig) explain(ctx context.Context, cmd string) {
	r, _ := t.guest(ctx, cmd)
	for _, l := range r.Lines() {
		t.Logf("guest: %s", l)
	}
}

// dumpGuest logs what the guest says about sensord, to explain a failure.
func (t *rig) dumpGuest(ctx context.Context) {
	if t.m == nil || t.m.Console == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := t.m.Console.Run(cctx, "systemctl status sensord sensord.socket --no-pager -l | head -n 40; journalctl -b --no-pager -p warning | tail -n 30")
	if err != nil {
		return
	}
	for _, l := range r.Lines() {
		t.Logf("guest: %s", l)
	}
}

// waitGuest runs cmd until a line of its output is want, or d passes.
func (t *rig) waitGuest(ctx context.Context, d time.Duration, cmd, want string) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		r, err := t.m.Console.Run(wctx, cmd)
		if err != nil {
			return err
		}
		if r.Has(want) {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%q never printed %q (last: %q)", cmd, want, r.Out)
		case <-time.After(2 * time.Second):
		}
	}
}

// waitActive polls until unit is active, has failed, or d has passed.
func (t *rig) waitActive(ctx context.Context, unit string, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for {
		r, err := t.m.Console.Run(wctx, "systemctl is-active "+unit)
		if err != nil {
			return fmt.Errorf("not active after %.0f s: %w", time.Since(start).Seconds(), err)
		}
		if r.Has("active") {
			t.Logf("%s active after %.0f s more", unit, time.Since(start).Seconds())
			return nil
		}
		if r.Has("failed") {
			return errors.New("failed")
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("not active after %.0f s: %q", time.Since(start).Seconds(), r.Out)
		case <-time.After(3 * time.Second):
		}
	}
}

// ssh runs cmd on the guest as root over the forwarded port with key. A
// login under emulation takes seconds (sshd execs a session process per
// connection, the key exchange runs on an emulated CPU); a minute and a
// half bounds a stuck one without failing a slow one.
func (t *rig) ssh(ctx context.Context, key, cmd string) (stdout, stderr string, err error) {
	return t.sshWithin(ctx, 90*time.Second, key, cmd)
}

// sshWithin is ssh with room for a longer command (an install).
func (t *rig) sshWithin(ctx context.Context, d time.Duration, key, cmd string) (stdout, stderr string, err error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return vm.SSH(cctx, t.sshPort, key, cmd)
}

// consoleLog is the path of the running boot's console log.
func (t *rig) consoleLog() string { return filepath.Join(t.dir, "console.log") }
