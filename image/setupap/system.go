package setupap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sensord/image/paths"
	"sensord/image/settings"
	"sensord/internal/atomicfile"
)

// Linux is the appliance's System: sysfs for the interfaces, the image's
// wpa_supplicant, wpa_cli, networkctl and systemctl for the rest.
type Linux struct {
	// Dir is the root side's runtime directory (paths.SetupDir).
	Dir string
	// Conf is sensord.conf (paths.Settings); Apply the script that
	// applies it (paths.SettingsApply).
	Conf, Apply string
	// WiFiConf is the configuration sensord-settings writes for
	// sensord-wifi@.service.
	WiFiConf string
	// NetworkFile is the access point's .network (in /run, so it is gone
	// after a reboot whatever happens).
	NetworkFile string
	Timing      Timing
	Log         *slog.Logger

	ap *supplicant // the access point's wpa_supplicant while it runs
}

// NewLinux is the appliance's Linux system.
func NewLinux(log *slog.Logger) *Linux {
	return &Linux{
		Dir: paths.SetupDir, Conf: paths.Settings, Apply: paths.SettingsApply,
		WiFiConf:    "/etc/wpa_supplicant/sensord-wifi.conf",
		NetworkFile: "/run/systemd/network/10-sensord-setup.network",
		Timing:      DefaultTiming, Log: log,
	}
}

const (
	sysNet = "/sys/class/net"
	// scanWait bounds a scan (a 2.4 and 5 GHz sweep takes a few seconds).
	scanWait = 20 * time.Second
	// scanPoll is how often a scan's state is asked for.
	scanPoll = 500 * time.Millisecond
	// notFoundAfter is how long a try scans before a network that no
	// scan saw is "not found" (several scans: one can miss a beacon).
	notFoundAfter = 30 * time.Second
	// dnsUnits is the captive DNS responder (socket-activated).
	dnsSocket  = "sensord-setup-dns.socket"
	dnsService = "sensord-setup-dns.service"
)

func readSys(iface, name string) string {
	b, err := os.ReadFile(filepath.Join(sysNet, iface, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Radio is the first Wi-Fi interface by name.
func (l *Linux) Radio() (Radio, bool) {
	ents, _ := os.ReadDir(sysNet)
	var names []string
	for _, e := range ents {
		if exists(filepath.Join(sysNet, e.Name(), "phy80211")) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return Radio{}, false
	}
	slices.Sort(names)
	return Radio{Interface: names[0], MAC: readSys(names[0], "address")}, true
}

// Cable reports a carrier on a physical wired interface.
func (l *Linux) Cable() bool {
	ents, _ := os.ReadDir(sysNet)
	for _, e := range ents {
		n := e.Name()
		if readSys(n, "type") != "1" || exists(filepath.Join(sysNet, n, "phy80211")) || !exists(filepath.Join(sysNet, n, "device")) {
			continue
		}
		if readSys(n, "carrier") == "1" {
			return true
		}
	}
	return false
}

// Configured reports whether sensord-settings wrote a Wi-Fi network.
func (l *Linux) Configured() bool { return exists(l.WiFiConf) }

// Joined: the kernel's link is up only after association and the WPA
// handshake.
func (l *Linux) Joined(iface string) bool { return readSys(iface, "operstate") == "up" }

// APSettings reads SETUP_AP_PASSWORD and WIFI_COUNTRY the way
// sensord-settings parses sensord.conf (its --print).
func (l *Linux) APSettings() (password, country string, err error) {
	out, err := exec.Command(l.Apply, "--print", l.Conf).Output()
	if err != nil {
		return "", "", fmt.Errorf("reading %s: %w", l.Conf, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "SETUP_AP_PASSWORD="); ok {
			password = v
		}
		if v, ok := strings.CutPrefix(line, "WIFI_COUNTRY="); ok {
			country = v
		}
	}
	if err := CheckAPPassword(password); err != nil {
		return "", "", err
	}
	return password, country, nil
}

// CheckAPPassword is nil for an empty password (an open access point)
// or one WPA2 takes.
func CheckAPPassword(p string) error {
	if p == "" {
		return nil
	}
	if n := len(p); n < MinPassphrase || n > MaxPassphrase {
		return fmt.Errorf("SETUP_AP_PASSWORD in sensord.conf has %d characters; WPA2 needs %d to %d: the setup access point stays closed", n, MinPassphrase, MaxPassphrase)
	}
	for _, c := range []byte(p) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return errors.New("SETUP_AP_PASSWORD in sensord.conf may hold printable ASCII characters only, no double quotes or backslashes: the setup access point stays closed")
		}
	}
	return nil
}

func (l *Linux) run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *Linux) ctrlDir() string { return filepath.Join(l.Dir, "wpa") }

// cli asks the wpa_supplicant on iface over its control socket.
func (l *Linux) cli(ctx context.Context, iface, cmd string) (string, error) {
	out, err := exec.CommandContext(ctx, "wpa_cli", "-p", l.ctrlDir(), "-i", iface, cmd).Output()
	return string(out), err
}

// Scan runs a wpa_supplicant without networks and asks it for a scan.
func (l *Linux) Scan(ctx context.Context, iface string) ([]Network, error) {
	ctx, cancel := context.WithTimeout(ctx, scanWait)
	defer cancel()
	_ = l.run(ctx, "systemctl", "stop", "sensord-wifi@"+iface+".service")
	s, err := l.start(ctx, iface, "scan.conf", StationConfig(l.ctrlDir(), Request{}))
	if err != nil {
		return nil, err
	}
	defer s.stop()
	cli := func(cmd string) (string, error) { return l.cli(ctx, iface, cmd) }
	// The control socket appears once wpa_supplicant has set up.
	for {
		if out, err := cli("scan"); err == nil && strings.Contains(out, "OK") {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("scan on %s: wpa_supplicant did not answer", iface)
		case <-time.After(scanPoll):
		}
	}
	// The scan's end is an event of the control socket only (not of
	// wpa_supplicant's output): poll the results, which a scan fills in
	// one go. Nothing in range is an empty list, not an error.
	for {
		out, err := cli("scan_results")
		if err == nil {
			if nets := ParseScan(out); len(nets) > 0 {
				return nets, nil
			}
		}
		select {
		case <-ctx.Done():
			return []Network{}, nil
		case <-time.After(scanPoll):
		}
	}
}

// OpenAP: the .network first (address, DHCP server), then wpa_supplicant
// in AP mode, then the DNS responder's socket.
func (l *Linux) OpenAP(ctx context.Context, iface, ssid, password, country string) error {
	_ = l.run(ctx, "systemctl", "stop", "sensord-wifi@"+iface+".service")
	if err := os.MkdirAll(filepath.Dir(l.NetworkFile), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(l.NetworkFile, []byte(APNetwork(iface)), 0o644); err != nil {
		return err
	}
	if err := l.run(ctx, "networkctl", "reload"); err != nil {
		return err
	}
	s, err := l.start(context.WithoutCancel(ctx), iface, "ap.conf", APConfig(l.ctrlDir(), ssid, password, country))
	if err != nil {
		return err
	}
	l.ap = s
	go func() {
		for line := range s.lines {
			l.Log.Debug("access point", "wpa_supplicant", line)
		}
	}()
	_ = l.run(ctx, "networkctl", "reconfigure", iface)
	return l.run(ctx, "systemctl", "start", dnsSocket)
}

// CloseAP undoes OpenAP; each part is tried whatever the others did.
func (l *Linux) CloseAP(ctx context.Context, iface string) error {
	var errs []error
	errs = append(errs, l.run(ctx, "systemctl", "stop", dnsSocket, dnsService))
	if l.ap != nil {
		l.ap.stop()
		l.ap = nil
	}
	if err := os.Remove(l.NetworkFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, l.run(ctx, "networkctl", "reload"))
	_ = l.run(ctx, "networkctl", "reconfigure", iface)
	return errors.Join(errs...)
}

// Try runs a wpa_supplicant with r's network and reads its events until
// it is joined and networkd's DHCP client has an address, or it fails.
func (l *Linux) Try(ctx context.Context, iface string, r Request) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.Timing.TryWait)
	defer cancel()
	s, err := l.start(ctx, iface, "try.conf", StationConfig(l.ctrlDir(), r))
	if err != nil {
		return "", err
	}
	defer s.stop()
	connected, start := false, time.Now()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			if connected {
				return "", &TryError{Failure: FailureNoAddress, Reason: fmt.Sprintf("joined %q but got no address from its DHCP server within %s", r.SSID, l.Timing.TryWait)}
			}
			return "", &TryError{Failure: FailureNotFound, Reason: fmt.Sprintf("the network %q did not answer within %s: check its name and that it is in range", r.SSID, l.Timing.TryWait)}
		case line, ok := <-s.lines:
			if !ok {
				return "", fmt.Errorf("wpa_supplicant stopped while joining %q", r.SSID)
			}
			switch ParseEvent(line) {
			case EventConnected:
				connected = true
			case EventWrongKey:
				return "", &TryError{Failure: FailureWrongPassphrase, Reason: fmt.Sprintf("the network %q refused the passphrase: check it and try again", r.SSID)}
			}
		case <-poll.C:
			if connected {
				if a := ipv4(iface); a != "" {
					return a, nil
				}
				continue
			}
			// "Not found" is an event of the control socket only: ask
			// for the scan results instead once scans have had time.
			if time.Since(start) < notFoundAfter {
				continue
			}
			if out, err := l.cli(ctx, iface, "scan_results"); err == nil && !slices.ContainsFunc(ParseScan(out), func(n Network) bool { return n.SSID == r.SSID }) {
				return "", &TryError{Failure: FailureNotFound, Reason: fmt.Sprintf("the network %q was not found: check its name and that it is in range", r.SSID)}
			}
		}
	}
}

// ipv4 is iface's first IPv4 address other than the access point's, "".
func ipv4(iface string) string {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return ""
	}
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.Equal(APAddress.AsSlice()) {
			return n.IP.String()
		}
	}
	return ""
}

// keep writes r's settings into sensord.conf under the settings file's
// lock.
func (l *Linux) keep(r Request) error {
	unlock, err := settings.Lock(l.Conf)
	if err != nil {
		return err
	}
	defer unlock()
	old, err := os.ReadFile(l.Conf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	set, unset := r.Settings()
	edited, err := settings.Edit(old, settings.Appliance(), set, unset)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(l.Conf, edited, 0o600)
}

// Keep edits sensord.conf as `sensorctl imager-import` does
// (settings.Edit keeps everything else a person wrote) and runs
// sensord-settings, which writes the Wi-Fi configuration and the host
// name from it.
func (l *Linux) Keep(ctx context.Context, r Request) error {
	if err := l.keep(r); err != nil {
		return err
	}
	host, _ := os.Hostname()
	if err := l.run(ctx, l.Apply); err != nil {
		return err
	}
	if h, _ := os.Hostname(); h != host {
		// avahi publishes <name>.local under the name it started with,
		// and sensord (ProtectHostname=) shows the name it started with.
		// The phone is off the access point while the network is tried,
		// so sensord's restart is over before the page is asked again.
		_ = l.run(ctx, "systemctl", "try-restart", "avahi-daemon.service", "sensord.service")
	}
	return nil
}

// Station (re)starts sensord-wifi@iface.
func (l *Linux) Station(ctx context.Context, iface string) error {
	return l.run(ctx, "systemctl", "restart", "sensord-wifi@"+iface+".service")
}

// TakeRequest reads and removes paths.SetupJoin (written by
// `sensorctl setup-request`, already checked; checked again here).
func (l *Linux) TakeRequest() (Request, bool, error) {
	p := filepath.Join(l.Dir, filepath.Base(paths.SetupJoin))
	b, err := readBounded(p, MaxRequestBytes)
	if errors.Is(err, os.ErrNotExist) {
		return Request{}, false, nil
	}
	os.Remove(p)
	if err != nil {
		return Request{}, false, err
	}
	r, err := ParseRequest(b)
	return r, err == nil, err
}

// readBounded reads a regular file (not a link) of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// TakeSpooled is `sensorctl setup-request`: it moves sensord's spooled
// request out of sensord's reach, checks it, and leaves it for the
// runner at join. Whatever the outcome the spool file is gone, so the
// path unit does not start it again.
func TakeSpooled(spooled, join string) (Request, error) {
	taken := join + ".taken"
	if err := os.Rename(spooled, taken); err != nil {
		os.Remove(spooled)
		return Request{}, fmt.Errorf("take the setup request (is sensord-setup.service running?): %w", err)
	}
	defer os.Remove(taken)
	b, err := readBounded(taken, MaxRequestBytes)
	if err != nil {
		return Request{}, err
	}
	r, err := ParseRequest(b)
	if err != nil {
		return Request{}, err
	}
	return r, atomicfile.WriteFile(join, r.Encode(), 0o600)
}

// supplicant is a wpa_supplicant run as a child, its output as lines.
type supplicant struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

// maxLines bounds the lines buffered from wpa_supplicant; the reader
// drops lines nobody reads rather than block the child.
const maxLines = 256

// start writes conf (it may hold a passphrase: 0600, in RAM) and runs
// wpa_supplicant on iface with it.
func (l *Linux) start(ctx context.Context, iface, name, conf string) (*supplicant, error) {
	path := filepath.Join(l.Dir, name)
	if err := atomicfile.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "wpa_supplicant", "-c", path, "-D", "nl80211,wext", "-i", iface)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wpa_supplicant on %s: %w", iface, err)
	}
	s := &supplicant{cmd: cmd, lines: make(chan string, maxLines), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
		close(s.lines)
		// Wait only after the last read: it closes the pipe.
		_ = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// stop ends the child and waits for it, so the interface is free.
func (s *supplicant) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
