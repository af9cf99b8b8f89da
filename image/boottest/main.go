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
//     cloud-init files, cmdline.txt changed as Imager changes it); takes
//     the kernel, initrd and cmdline.txt from the copy's boot partition
//     (mtools, no mounts);
//  2. boots it: qemu-system-aarch64 -M virt -cpu cortex-a72, the copy as a
//     virtio disk, user networking forwarding two free 127.0.0.1 ports to
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
//  6. Wi-Fi, over the console: loads mac80211_hwsim (two simulated radios
//     that hear each other; the virt board has none), turns the second into
//     an access point for the network sensord.conf names (wpa_supplicant in
//     AP mode, a DHCP server by systemd-networkd, all in /run), and checks
//     that the image's udev rule started sensord-wifi@ for the first, which
//     joins with the SSID and passphrase and gets a DHCP address;
//  7. waits for the simulated sensor to hang: systemd's watchdog kills
//     sensord (journal: "Watchdog timeout"), restarts it (NRestarts goes
//     up), and the WebSocket stream resumes; the broker's last will said
//     offline, and the restarted sensord online again;
//  8. kills its qemu by PID and prints where the time went.
//
// Exit status 0 when every check passed, 1 otherwise; the last line is
// "boottest: N passed, M failed".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"sensord/image/settings"
)

type options struct {
	image     string
	timeout   time.Duration
	hangAfter time.Duration
	keep      bool
	qemu      string
	smp       int
	board     string // board.go: boot as this Raspberry Pi instead of -M virt
	// imagerSeed: the directory of Raspberry Pi Imager's files (imager.go).
	imagerSeed string
	update     updateOptions // -update: the A/B update test (update.go)
}

func main() {
	var o options
	flag.StringVar(&o.image, "image", "", "the .img to boot (required)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	flag.DurationVar(&o.hangAfter, "hang-after", 100*time.Second, "SENSORD_SIM_HANG_AFTER in the test's settings file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (disk copy, console log)")
	flag.StringVar(&o.qemu, "qemu", "qemu-system-aarch64", "qemu binary")
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

	t := &test{opts: o, start: time.Now(), phaseStart: time.Now()}
	run := t.run
	switch {
	case o.board != "":
		run = t.runBoard
	case o.update.on:
		run = t.runUpdate
	}
	err := run(ctx)
	t.phase("")
	// The update test resets the guest through its watchdog on purpose
	// and checks that itself; anywhere else an expiry is PID 1 (or the
	// kernel) missing its 15 s, which on a Pi is a reboot.
	if !o.update.on && len(t.watchdog) > 0 {
		t.fail("the guest's hardware watchdog expired and reset it (%d times): PID 1 missed its 15 s", len(t.watchdog))
	}
	if err != nil {
		t.fail("fatal: %v", err)
	}
	t.report()
	if t.failed > 0 {
		os.Exit(1)
	}
}

// test is one boot test run: its checks, its phases and its qemu.
type test struct {
	opts options
	dir  string

	passed, failed int

	start, phaseStart time.Time
	curPhase          string
	phases            []phaseTime
	numbers           []string

	qemu    *exec.Cmd
	qemuErr chan error
	console *Console
	port    int // host port forwarded to the guest's port 80
	sshPort int // host port forwarded to the guest's port 22
	tlsPort int // host port forwarded to the guest's port 443

	// The per-run SSH key pairs (private key files): key is SSH_PUBKEY's
	// (the first of Imager's), key2 the second of Imager's (image-test
	// only), otherKey an unrelated one the guest must refuse.
	key, key2, otherKey string
	// The Wi-Fi network the appliance must join (wifi.go).
	wifiSSID   string
	wifiHidden bool

	mqtt *hostBroker // the host side's Mosquitto (mqtt.go)
	// watchdog gets the time since qemu started of each expiry of the
	// guest's hardware watchdog (qemu.go, watchQMP).
	watchdog chan time.Duration
	stick    string // a second, read-only disk (update.go's bundles), if set
	// pastClock boots the guest as a Pi without an RTC, its one time
	// server not yet answering (clock.go): the main scenario only.
	pastClock bool
}

type phaseTime struct {
	name string
	d    time.Duration
}

// phase closes the current phase and opens name ("" only closes).
func (t *test) phase(name string) {
	now := time.Now()
	if t.curPhase != "" {
		t.phases = append(t.phases, phaseTime{t.curPhase, now.Sub(t.phaseStart)})
	}
	t.curPhase, t.phaseStart = name, now
	if name != "" {
		t.logf("== %s", name)
	}
}

func (t *test) logf(format string, a ...any) {
	fmt.Printf("boottest: %6.1fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, a...))
}

func (t *test) pass(format string, a ...any) {
	t.passed++
	t.logf("PASS "+format, a...)
}

func (t *test) fail(format string, a ...any) {
	t.failed++
	t.logf("FAIL "+format, a...)
}

func (t *test) check(ok bool, format string, a ...any) bool {
	if ok {
		t.pass(format, a...)
	} else {
		t.fail(format, a...)
	}
	return ok
}

func (t *test) number(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	t.numbers = append(t.numbers, s)
	t.logf("%s", s)
}

func (t *test) report() {
	fmt.Println("boottest: where the time went:")
	for _, p := range t.phases {
		fmt.Printf("  %-34s %7.1fs\n", p.name, p.d.Seconds())
	}
	fmt.Printf("  %-34s %7.1fs\n", "total", time.Since(t.start).Seconds())
	if len(t.numbers) > 0 {
		fmt.Println("boottest: measured:")
		for _, n := range t.numbers {
			fmt.Println("  " + n)
		}
	}
	if t.dir != "" {
		fmt.Printf("boottest: console log: %s\n", filepath.Join(t.dir, "console.log"))
	}
	fmt.Printf("boottest: %d passed, %d failed\n", t.passed, t.failed)
}

func (t *test) run(ctx context.Context) (err error) {
	t.pastClock = true
	t.phase("prepare: copy image, settings, kernel")
	dir, err := os.MkdirTemp("", "sensord-boottest-")
	if err != nil {
		return err
	}
	t.dir = dir
	defer func() {
		t.stopQemu()
		t.stopBroker()
		if !t.opts.keep && t.failed == 0 && err == nil {
			os.RemoveAll(dir)
			t.dir = ""
		}
	}()
	// The key pairs get their own directory, removed whatever happens:
	// the work directory is kept after a failure, private keys need not be.
	keyDir, err := os.MkdirTemp("", "sensord-boottest-keys-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(keyDir)
	if t.key, err = newKeyPair(ctx, keyDir, "id_appliance"); err != nil {
		return err
	}
	if t.key2, err = newKeyPair(ctx, keyDir, "id_second"); err != nil {
		return err
	}
	if t.otherKey, err = newKeyPair(ctx, keyDir, "id_other"); err != nil {
		return err
	}
	kernel, initrd, cmdline, origRoot, err := t.prepare(ctx, true)
	if err != nil {
		return err
	}

	t.phase("boot: qemu start to shell on console")
	if err := t.startQemu(kernel, initrd, GuestCmdline(cmdline)); err != nil {
		return err
	}
	qemuStart := time.Now()
	bootCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	// Type nothing before the shell's prompt: bytes sent while the guest's
	// UART is not yet being read were seen to stall the line for good.
	if _, err := t.console.waitFor(bootCtx, 0, "root@"); err != nil {
		return fmt.Errorf("no shell prompt on the serial console: %w", err)
	}
	if err := t.console.Ready(bootCtx, func() <-chan struct{} { return t.poke(2 * time.Second) }); err != nil {
		return fmt.Errorf("no shell on the serial console: %w", err)
	}
	t.logf("shell on the serial console after %.0fs", time.Since(qemuStart).Seconds())
	if _, err := t.console.Run(ctx, "stty -echo; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb"); err != nil {
		return err
	}

	t.phase("boot: shell to dashboard over HTTP")
	if err := t.waitHTTP(bootCtx); err != nil {
		t.dumpGuest(ctx)
		return err
	}
	t.number("qemu start to dashboard served on the forwarded port: %.0f s", time.Since(qemuStart).Seconds())

	t.phase("checks: HTTP, WebSocket, systemd")
	stream := newStream(fmt.Sprintf("ws://127.0.0.1:%d/ws/sensors", t.port))
	go stream.run(ctx)
	t.checkDashboard(ctx)
	t.checkStream(ctx, stream)

	t.phase("checks: clock held, then set by NTP (clock.go)")
	t.checkClock(ctx, stream)

	t.phase("checks: systemd, TLS, MQTT")
	t.checkSystemd(ctx, origRoot)
	t.checkTLS(ctx)
	t.checkMQTT(ctx)

	t.phase("checks: Raspberry Pi Imager's settings imported")
	t.checkImager(ctx)

	t.phase("checks: HOSTNAME and SSH_PUBKEY")
	t.checkHostname(ctx)
	t.checkSSH(ctx, qemuStart)

	t.phase("checks: WIFI_* (two simulated radios)")
	t.checkWiFi(ctx)

	t.phase("watchdog: wait for the hang and the kill")
	t.checkWatchdog(ctx, stream)
	t.checkMQTTWill(ctx)

	t.phase("checks: gpio-sim on the image's kernel")
	t.checkGPIOSim(ctx)
	t.phase("")
	return nil
}

// prepare makes the disk copy with the test's settings file, and takes the
// kernel, initrd and command line out of its boot partition. With imager,
// sensord.conf sets only the SENSORD_* lines and the host name, Wi-Fi and
// SSH keys come from Raspberry Pi Imager's files (imager.go), with
// cmdline.txt changed as Imager changes it; without, sensord.conf sets
// them all (settings.BootTest).
func (t *test) prepare(ctx context.Context, imager bool) (kernel, initrd, cmdline string, rootBytes int64, err error) {
	t.wifiSSID = settings.BootTestWiFiSSID
	disk := filepath.Join(t.dir, "disk.img")
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", t.opts.image, disk).CombinedOutput(); err != nil {
		return "", "", "", 0, fmt.Errorf("copy image: %v: %s", err, out)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return "", "", "", 0, err
	}
	parts, err := ReadMBR(f)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			// A bigger card: the first boot must grow the root into it.
			err = f.Truncate(st.Size() + 1<<30)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", "", 0, err
	}
	if err := checkABLayout(parts); err != nil {
		return "", "", "", 0, err
	}
	t.pass("MBR: FAT32 boot partition at %d MiB, root slots A and B %d MiB each, data partition %d MiB", parts[0].Start>>20, parts[1].Length>>20, parts[3].Length>>20)
	fat := fmt.Sprintf("%s@@%d", disk, parts[0].Start)
	mtools := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
			}
		}
		return out, err
	}

	// The settings file: the image's own, plus the simulated sensor.
	orig, err := mtools("mtype", "-i", fat, "::/sensord.conf")
	if err != nil {
		return "", "", "", 0, err
	}
	var want strings.Builder
	if err := settings.Render(&want, settings.Appliance(), nil); err != nil {
		return "", "", "", 0, err
	}
	t.check(string(orig) == want.String(), "the image's sensord.conf is the one image/settings renders")
	pub, err := os.ReadFile(t.key + ".pub")
	if err != nil {
		return "", "", "", 0, err
	}
	var conf strings.Builder
	set := settings.BootTest(t.opts.hangAfter, strings.TrimSpace(string(pub)))
	var seed map[string][]byte
	var additions string
	if imager {
		set = settings.BootTestSensord(t.opts.hangAfter)
		pub2, err := os.ReadFile(t.key2 + ".pub")
		if err != nil {
			return "", "", "", 0, err
		}
		if seed, additions, err = imagerSeed(t.opts.imagerSeed, strings.TrimSpace(string(pub)), strings.TrimSpace(string(pub2))); err != nil {
			return "", "", "", 0, err
		}
		t.wifiSSID, t.wifiHidden = imagerSSID, true
	}
	if t.pastClock {
		// The only time server, answered later by checkClock (clock.go).
		set["NTP_SERVER"] = qemuHost
	}
	if err := t.startBroker(set); err != nil {
		return "", "", "", 0, err
	}
	if err := settings.Render(&conf, settings.Appliance(), set); err != nil {
		return "", "", "", 0, err
	}
	confPath := filepath.Join(t.dir, "sensord.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return "", "", "", 0, err
	}
	if _, err := mtools("mcopy", "-o", "-i", fat, confPath, "::/sensord.conf"); err != nil {
		return "", "", "", 0, err
	}
	t.logf("settings: SENSORD_SENSOR=sim SENSORD_SIM_HANG_AFTER=%s HOSTNAME=%s WIFI_COUNTRY=%s WIFI_SSID=%q SSH_PUBKEY=%s",
		t.opts.hangAfter, set["HOSTNAME"], set["WIFI_COUNTRY"], set["WIFI_SSID"], set["SSH_PUBKEY"])
	for name, b := range seed {
		p := filepath.Join(t.dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", "", "", 0, err
		}
		if _, err := mtools("mcopy", "-i", fat, p, "::/"+name); err != nil {
			return "", "", "", 0, err
		}
	}

	cfg, err := mtools("mtype", "-i", fat, "::/config.txt")
	if err != nil {
		return "", "", "", 0, err
	}
	k, i, err := BootFiles(string(cfg))
	if err != nil {
		return "", "", "", 0, err
	}
	kernel, initrd = filepath.Join(t.dir, "kernel"), filepath.Join(t.dir, "initrd")
	for _, c := range [][2]string{{k, kernel}, {i, initrd}} {
		if _, err := mtools("mcopy", "-i", fat, "::/"+c[0], c[1]); err != nil {
			return "", "", "", 0, err
		}
	}
	cl, err := mtools("mtype", "-i", fat, "::/cmdline.txt")
	if err != nil {
		return "", "", "", 0, err
	}
	if imager {
		cl = []byte(imagerCmdline(string(cl), additions))
		p := filepath.Join(t.dir, "cmdline.txt")
		if err := os.WriteFile(p, cl, 0o644); err != nil {
			return "", "", "", 0, err
		}
		if _, err := mtools("mcopy", "-o", "-i", fat, p, "::/cmdline.txt"); err != nil {
			return "", "", "", 0, err
		}
		t.logf("Raspberry Pi Imager 2.0.11's files on the boot partition (%s, the run's two keys in place of the golden's); sensord.conf sets no HOSTNAME, WIFI_* or SSH_PUBKEY", t.opts.imagerSeed)
	}
	t.logf("boot partition: kernel %s, initrd %s, cmdline.txt %q", k, i, strings.TrimSpace(string(cl)))
	return kernel, initrd, strings.TrimSpace(string(cl)), parts[3].Length, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 for qemu to
// forward. All n listeners stay open until every port is chosen, so the
// kernel cannot hand out the same port twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (t *test) startQemu(kernel, initrd, cmdline string) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	t.port, t.sshPort, t.tlsPort = ports[0], ports[1], ports[2]
	sock := filepath.Join(t.dir, "console.sock")
	args := []string{
		"-M", "virt", "-cpu", "cortex-a72", "-smp", strconv.Itoa(t.opts.smp), "-m", "1024",
		"-accel", "tcg,thread=multi",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-drive", "file=" + filepath.Join(t.dir, "disk.img") + ",format=raw,if=none,id=hd0,cache=unsafe",
		"-device", "virtio-blk-pci,drive=hd0",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:80,hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=tcp:127.0.0.1:%d-:443", t.port, t.sshPort, t.tlsPort),
		"-device", "virtio-net-pci,netdev=n0,romfile=",
		// A hardware watchdog for systemd's RuntimeWatchdogSec= to arm, as
		// bcm2835_wdt is on a Pi.
		"-device", "i6300esb",
		"-chardev", "socket,id=ser0,path=" + sock + ",server=on,wait=off",
		"-serial", "chardev:ser0",
		"-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot",
	}
	if t.pastClock {
		args = append(args, "-rtc", "base="+guestRTCBase)
	}
	if t.stick != "" {
		args = append(args, "-drive", "file="+t.stick+",format=raw,if=none,id=hd1,readonly=on",
			"-device", "virtio-blk-pci,drive=hd1")
	}
	return t.startQemuArgs(args, sock)
}

// poke returns a channel closed after d, or at once if qemu has exited.
func (t *test) poke(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-time.After(d):
		case err := <-t.qemuErr:
			t.qemuErr <- err
		}
		close(c)
	}()
	return c
}

// stopQemu ends our qemu, by its PID: SIGTERM, then SIGKILL.
func (t *test) stopQemu() {
	if t.qemu == nil || t.qemu.Process == nil {
		return
	}
	pid := t.qemu.Process.Pid
	// Stopped once: a second call (the update test's deferred one) finds
	// no qemu rather than waiting for an exit already taken.
	defer func() { t.qemu = nil }()
	select {
	case err := <-t.qemuErr:
		t.logf("qemu (pid %d) had exited: %v", pid, err)
		return
	default:
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-t.qemuErr:
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-t.qemuErr
	}
	t.logf("qemu (pid %d) stopped", pid)
}

func (t *test) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", t.port, path) }

// waitHTTP waits until the dashboard answers on the forwarded port.
func (t *test) waitHTTP(ctx context.Context) error {
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
		case err := <-t.qemuErr:
			t.qemuErr <- err
			return fmt.Errorf("qemu exited: %v", err)
		case <-time.After(2 * time.Second):
		}
	}
}

func (t *test) checkDashboard(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", t.url("/"), nil)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.fail("GET /: %v", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	t.check(resp.StatusCode == 200 && strings.HasPrefix(ct, "text/html") && strings.Contains(strings.ToLower(string(body)), "<html"),
		"GET / is the dashboard: %d %s, %d bytes of HTML", resp.StatusCode, ct, len(body))
	resp, err = (&http.Client{Timeout: 20 * time.Second}).Get(t.url("/healthz"))
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.logf("GET /healthz: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
}

func (t *test) checkStream(ctx context.Context, s *stream) {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	frames, err := s.waitFrames(wctx, time.Time{}, 3)
	if !t.check(err == nil, "/ws/sensors streams sensor_update frames (%d received)", len(frames)) {
		t.logf("stream: %v", err)
		return
	}
	t.logf("first frame: %s", frames[0].raw)
	span := frames[len(frames)-1].at.Sub(frames[0].at)
	t.number("WebSocket: 3 frames in %.1f s", span.Seconds())
}

// checkSystemd asks systemd over the serial console.
func (t *test) checkSystemd(ctx context.Context, origRoot int64) {
	run := func(cmd string) Result { r, _ := t.guest(ctx, cmd); return r }
	r := run("systemctl is-active sensord")
	t.check(r.Has("active"), "systemctl is-active sensord: %q", strings.Join(r.Lines(), " "))
	r = run("systemctl show -p WatchdogUSec sensord")
	t.check(r.Has("WatchdogUSec=30s") || strings.Contains(r.Out, "WatchdogUSec=") && !r.Has("WatchdogUSec=0") && !r.Has("WatchdogUSec=infinity"),
		"systemctl show -p WatchdogUSec sensord: %q", strings.Join(r.Lines(), " "))
	r = run("systemctl --failed --no-legend --plain")
	t.check(len(r.Lines()) == 0, "systemctl --failed lists no unit (%q)", strings.Join(r.Lines(), "; "))
	r = run("systemctl is-system-running; systemctl list-jobs --no-legend --plain | head -n 8")
	t.logf("systemctl is-system-running, jobs: %s", strings.Join(r.Lines(), " | "))

	// Boot to READY, by systemd's own clock: monotonic microseconds since
	// the kernel started, when sensord.service became active (READY=1).
	r = run("systemctl show -p ActiveEnterTimestampMonotonic -p ExecMainStartTimestampMonotonic sensord")
	vals := map[string]int64{}
	for _, l := range r.Lines() {
		if k, v, ok := strings.Cut(l, "="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			vals[k] = n
		}
	}
	if us := vals["ActiveEnterTimestampMonotonic"]; us > 0 {
		t.number("boot to sensord READY (guest kernel start to READY=1): %.1f s", float64(us)/1e6)
		if st := vals["ExecMainStartTimestampMonotonic"]; st > 0 {
			t.number("sensord exec to READY: %.2f s", float64(us-st)/1e6)
		}
	} else {
		t.fail("no ActiveEnterTimestampMonotonic for sensord: %q", r.Out)
	}
	r = run("systemd-analyze time 2>&1 | head -n 3")
	t.logf("systemd-analyze: %s", strings.Join(r.Lines(), " | "))

	r = run("systemctl show -p RuntimeWatchdogUSec; journalctl -b -o cat --no-pager | grep -i -m 3 'hardware watchdog'")
	t.check(r.Has("RuntimeWatchdogUSec=15s"), "systemd arms the hardware watchdog: %q", strings.Join(r.Lines(), " | "))

	r = run("id sensord; ls -l /dev/gpiochip* 2>&1 | head -n 2")
	t.logf("users, devices: %s", strings.Join(r.Lines(), " | "))
	t.check(strings.Contains(r.Out, "(gpio)"), "user sensord is in group gpio")

	r = run("findmnt -rno OPTIONS /; findmnt -rno FSTYPE,OPTIONS /boot/firmware; swapon --show --noheadings | wc -l; journalctl --header 2>/dev/null | grep -c '/run/log/journal'")
	lines := r.Lines()
	t.check(len(lines) >= 4 && strings.Contains(lines[0], "noatime") && strings.HasPrefix(lines[1], "vfat") && lines[2] == "0" && lines[3] != "0",
		"root noatime, /boot/firmware vfat, no swap, journal in /run: %q", strings.Join(lines, " | "))

	// The first boot grew the data partition into the extra 1 GiB.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		r, err := t.console.Run(wctx, "systemctl is-active sensord-growroot.service; df -B1 --output=size /data | tail -n 1")
		if err != nil {
			t.fail("data partition growth: %v", err)
			break
		}
		l := r.Lines()
		if len(l) == 2 && l[0] != "activating" {
			size, _ := strconv.ParseInt(l[1], 10, 64)
			if !t.check(size > origRoot, "first boot grew the data partition into the bigger disk: partition %d MiB in the image, filesystem now %d MiB (growroot %s)",
				origRoot>>20, size>>20, l[0]) {
				t.explain(ctx, "journalctl -b -u sensord-growroot -o cat --no-pager | tail -n 15")
			}
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
}

// checkWatchdog waits for the hung sensor to be caught by systemd's watchdog.
func (t *test) checkWatchdog(ctx context.Context, s *stream) {
	wctx, cancel := context.WithTimeout(ctx, t.opts.hangAfter+5*time.Minute)
	defer cancel()
	var restarts int
	var killed time.Time
	for killed.IsZero() {
		r, err := t.console.Run(wctx, "systemctl show -p NRestarts --value sensord; journalctl -u sensord -o cat --no-pager | grep -c -i 'watchdog timeout'")
		if err != nil {
			t.fail("watchdog never fired: %v", err)
			t.dumpGuest(ctx)
			return
		}
		l := r.Lines()
		if len(l) >= 2 {
			restarts, _ = strconv.Atoi(l[0])
			if n, _ := strconv.Atoi(l[1]); n > 0 && restarts > 0 {
				killed = time.Now()
				break
			}
		}
		select {
		case <-wctx.Done():
			t.fail("watchdog never fired within %s", t.opts.hangAfter+5*time.Minute)
			t.dumpGuest(ctx)
			return
		case <-time.After(5 * time.Second):
		}
	}
	t.phase("watchdog: restart and stream resume")
	// systemd's own lines about the unit, and sensord's watchdog warnings; not
	// the goroutine dump (GOTRACEBACK=all) that the SIGABRT printed.
	r, _ := t.console.Run(ctx, "journalctl -u sensord -o short-monotonic --no-pager | grep -i -E 'systemd\\[1\\]|watchdog' | grep -v -E '[.]go:[0-9]|sensord/systemd[.]' | tail -n 12")
	for _, l := range r.Lines() {
		t.logf("journal: %s", l)
	}
	t.check(strings.Contains(strings.ToLower(r.Out), "watchdog timeout"), "journal shows systemd's watchdog timeout for sensord")
	t.check(restarts >= 1, "NRestarts went up to %d", restarts)
	frames, err := s.waitFrames(wctx, killed, 2)
	if t.check(err == nil, "the WebSocket stream resumed after the restart (%d frames since the kill)", len(frames)) {
		t.number("longest silence on the WebSocket stream (sensor hang + watchdog + restart): %.0f s", s.maxGap().Seconds())
		t.logf("stream: %d reconnects in all", s.reconnects())
	}
	r, _ = t.console.Run(ctx, "systemctl is-active sensord; systemctl --failed --no-legend --plain")
	t.check(len(r.Lines()) >= 1 && r.Lines()[0] == "active", "sensord active again after the restart: %q", strings.Join(r.Lines(), " | "))
}

// dumpGuest logs what the guest says about sensord, to explain a failure.
func (t *test) dumpGuest(ctx context.Context) {
	if t.console == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := t.console.Run(cctx, "systemctl status sensord sensord.socket --no-pager -l | head -n 40; journalctl -b --no-pager -p warning | tail -n 30")
	if err != nil {
		return
	}
	for _, l := range r.Lines() {
		t.logf("guest: %s", l)
	}
}

// frame is one message the stream received.
type frame struct {
	at  time.Time
	raw string
}

// stream keeps a WebSocket client on the sensor stream, reconnecting after
// any error (a restart of sensord drops the connection), and records every
// sensor_update frame.
type stream struct {
	url string

	mu     sync.Mutex
	frames []frame
	conns  int
	errs   []string
	wake   chan struct{}
}

func newStream(url string) *stream { return &stream{url: url, wake: make(chan struct{})} }

func (s *stream) run(ctx context.Context) {
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	for ctx.Err() == nil {
		c, _, err := d.DialContext(ctx, s.url, nil)
		if err != nil {
			s.note(err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go func() { <-ctx.Done(); c.Close() }()
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			_, msg, err := c.ReadMessage()
			if err != nil {
				s.note(err)
				c.Close()
				break
			}
			var m struct {
				Type        string   `json:"type"`
				Temperature *float64 `json:"temperature"`
				Humidity    *float64 `json:"humidity"`
				Timestamp   int64    `json:"timestamp"`
			}
			if json.Unmarshal(msg, &m) != nil || m.Type != "sensor_update" || m.Temperature == nil || m.Humidity == nil || m.Timestamp == 0 {
				s.note(fmt.Errorf("not a sensor_update: %.200s", msg))
				continue
			}
			s.mu.Lock()
			s.frames = append(s.frames, frame{time.Now(), string(msg)})
			close(s.wake)
			s.wake = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

func (s *stream) note(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 100 {
		s.errs = append(s.errs, err.Error())
	}
}

func (s *stream) reconnects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns - 1
}

// maxGap is the longest time between two consecutive frames.
func (s *stream) maxGap() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g time.Duration
	for i := 1; i < len(s.frames); i++ {
		g = max(g, s.frames[i].at.Sub(s.frames[i-1].at))
	}
	return g
}

// waitFrames waits for n frames received after since.
func (s *stream) waitFrames(ctx context.Context, since time.Time, n int) ([]frame, error) {
	for {
		s.mu.Lock()
		var got []frame
		for _, f := range s.frames {
			if f.at.After(since) {
				got = append(got, f)
			}
		}
		wake := s.wake
		var lastErr string
		if len(s.errs) > 0 {
			lastErr = s.errs[len(s.errs)-1]
		}
		s.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d frames: %w (last error: %s)", len(got), n, ctx.Err(), lastErr)
		case <-wake:
		}
	}
}
