// Command boottest boots the sensord SD-card image under qemu (software
// emulation of a 64-bit Arm machine, qemu's "virt" board) and proves from
// outside that the appliance works: `make image-test` runs it.
//
//	go run ./image/boottest -image build/sensord-<version>-arm64.img
//
// What it does, in order (each phase is timed and reported):
//
//  1. makes three fresh ed25519 key pairs with ssh-keygen (in a temporary
//     directory removed at the end); copies the image (sparse), grows the
//     copy by 1 GiB as a bigger card would be, and replaces the boot
//     partition's sensord.conf with one that selects the simulated sensor
//     and makes it hang after -hang-after (settings.BootTestSensord); the
//     host name, a hidden Wi-Fi network and the first two public keys come
//     as Raspberry Pi Imager 2 writes them (imager.go: its golden
//     cloud-init files, cmdline.txt changed as Imager changes it); turns
//     the copy's cmdline.txt into one for the virt board (vm.GuestCmdline;
//     mtools, no mounts);
//  2. boots it: qemu-system-aarch64 -M virt -cpu cortex-a72 with Debian's
//     U-Boot for that board as its firmware (-bios, u-boot-qemu's
//     qemu_arm64), which runs the card's boot.scr: the slot chooser loads
//     slot A's kernel, initramfs and cmdline.txt from the FAT
//     (image/uboot/README.md; checked on the console, checkUBoot); the
//     copy as a virtio disk, user networking forwarding two free 127.0.0.1 ports to
//     the guest's ports 80 and 22; the serial console on a unix socket
//     carries a root shell (systemd.debug_shell on the test's kernel command
//     line);
//  3. from outside: GET / is the dashboard, a WebSocket client on
//     /ws/sensors receives sensor_update frames; a Mosquitto on the host
//     (SENSORD_MQTT_URL=mqtt://10.0.2.2:<port> in the copy's sensord.conf)
//     holds the readings, online and the Home Assistant device discovery config,
//     retained (mqtt.go);
//  4. the clock (clock.go): the guest's RTC says 2000 and its one time
//     server (NTP_SERVER=10.0.2.2) does not answer: readings stream live
//     but are held (/healthz, the dashboard's banner, nothing written);
//     then the test answers SNTP on the host's 127.0.0.1:123 and every
//     reading seen while held is in history at its real time;
//  5. over the console: Imager's files were imported into sensord.conf
//     before it was applied, once, and marked done (imager.go);
//     sensord is active, has a watchdog, no unit failed,
//     the root filesystem grew; boot-to-READY from systemd's own timestamps;
//     hostname and /etc/hostname are the HOSTNAME set, and avahi announces
//     it as <name>.local; ssh.service is
//     active (started for SSH_PUBKEY, not enabled); sshd -T says keys only,
//     root by key only; then from outside, with the OpenSSH client: the
//     first key logs in as root and sees the set hostname, sensord active
//     and the console's machine ID; the second key is refused, with public
//     keys the only method the server offers;
//  6. Wi-Fi, over the console: loads mac80211_hwsim (three simulated radios
//     that hear each other; the virt board has none), turns the second into
//     an access point for the network sensord.conf names (wpa_supplicant in
//     AP mode, a DHCP server by systemd-networkd, all in /run), and checks
//     that the image's udev rule started sensord-wifi@ for the first, which
//     joins with the SSID and passphrase and gets a DHCP address;
//     then the setup access point (setupap.go): the appliance forgets its
//     Wi-Fi and loses its cable's carrier, opens sensord-XXXX; a phone
//     (the third radio, in a network namespace) joins it, gets address,
//     router and DNS, sees every name resolve to the Pi and its captive
//     check redirected to the setup page, which lists the home network; a
//     wrong passphrase brings the access point back with the reason, the
//     right one joins the home network with a lease and closes it;
//  7. waits for the simulated sensor to hang: systemd's watchdog kills
//     sensord (journal: "Watchdog timeout"), restarts it (NRestarts goes
//     up), and the WebSocket stream resumes; the broker's last will said
//     offline, and the restarted sensord online again;
//  8. the settings page's API (settings_page.go): the owner sets
//     SENSORD_NAME; the image's path unit and root helper write it into
//     sensord.conf and restart sensord, whose /healthz then says the name;
//  9. stops its qemu and Mosquitto by PID and prints where the time went.
//
// Exit status 0 when every check passed, 1 otherwise; the last line is
// "boottest: N passed, M failed".
//
// Each scenario is a list of named steps over a harness library, as
// gokrazy's integration tests are: scenario_image.go (the steps above),
// scenario_board.go (-board), scenario_update.go (-update). The plumbing
// lives in packages of its own: harness (steps, phases, checks, the
// report, and the cleanups that stop every process a scenario started,
// pass or fail), vm (qemu, its serial console, the disk copy and its FAT,
// the OpenSSH client) and mosquitto (the host's broker). A new scenario is
// a new file: its steps, and one case in main.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sensord/image/boottest/harness"
)

type options struct {
	image     string
	timeout   time.Duration
	hangAfter time.Duration
	keep      bool
	qemu      string
	// uboot is the firmware of -M virt: U-Boot for qemu's virt board,
	// which runs the card's boot.scr.
	uboot string
	smp   int
	board string // scenario_board.go: boot as this Raspberry Pi instead of -M virt
	// imagerSeed: the directory of Raspberry Pi Imager's files (imager.go).
	imagerSeed string
	update     updateOptions // -update: the A/B update test (scenario_update.go)
}

func main() {
	var o options
	flag.StringVar(&o.image, "image", "", "the .img to boot (required)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	flag.DurationVar(&o.hangAfter, "hang-after", 100*time.Second, "SENSORD_SIM_HANG_AFTER in the test's settings file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (disk copy, console log)")
	flag.StringVar(&o.qemu, "qemu", "qemu-system-aarch64", "qemu binary")
	flag.StringVar(&o.uboot, "uboot", "/usr/lib/u-boot/qemu_arm64/u-boot.bin", "U-Boot for -M virt (u-boot-qemu), qemu's -bios: it runs the card's boot.scr")
	flag.IntVar(&o.smp, "smp", 2, "guest CPUs")
	flag.StringVar(&o.imagerSeed, "imager-seed", imagerSeedDir, "Raspberry Pi Imager's files put on the boot partition (image-test)")
	flag.StringVar(&o.board, "board", "", "boot as this Raspberry Pi (qemu -M raspi3b, raspi4b) the way its firmware would, and check the board (board.go), instead of the appliance checks under -M virt")
	o.update.flags()
	flag.Parse()
	if o.image == "" {
		fmt.Fprintln(os.Stderr, "boottest: -image is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	t := harness.New(os.Stdout, o.keep)
	if failed := run(ctx, t, o); failed {
		os.Exit(1)
	}
}

// run runs the scenario o asks for and reports; it says whether a check
// failed.
func run(ctx context.Context, t *harness.T, o options) bool {
	var steps []harness.Step
	var watchdog chan time.Duration
	switch {
	case o.board != "":
		b := &boardRun{T: t, opts: o, watchdog: make(chan time.Duration, 16)}
		steps, watchdog = b.steps(), b.watchdog
	case o.update.on && o.update.field:
		// No reset is on purpose here: each counts as a failure.
		r := &updateRun{rig: newRig(t, o)}
		steps, watchdog = r.fieldSteps(), r.watchdog
	case o.update.on:
		// The update test resets the guest through its watchdog on
		// purpose and checks that itself.
		steps = (&updateRun{rig: newRig(t, o)}).steps()
	default:
		r := newRig(t, o)
		steps, watchdog = imageSteps(r), r.watchdog
	}
	err := t.Run(ctx, steps...)
	// An expiry is PID 1 (or the kernel) missing its 15 s, which on a Pi
	// is a reboot.
	if n := len(watchdog); n > 0 {
		t.Fail("the guest's hardware watchdog expired and reset it (%d times): PID 1 missed its 15 s", n)
	}
	if err != nil {
		t.Fail("fatal: %v", err)
	}
	t.Report()
	return t.Failed() > 0
}
