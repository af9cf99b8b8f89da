package systemd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// systemdAnalyze is Debian's, from the systemd package. The tests need it:
// a unit file systemd rejects is a broken appliance.
const systemdAnalyze = "/usr/bin/systemd-analyze"

// offlineRoot builds a directory tree systemd-analyze can load our units
// from with --root: the host's own system units (so sockets.target,
// multi-user.target and modprobe@.service resolve as on the Pi), our unit
// files in /etc/systemd/system, where the image installs them, and, at /usr/local/bin/sensord, a stand-in: a shell script.
// verify checks that ExecStart names an executable file and nothing more;
// the real binary is what the image installs there.
func offlineRoot(t *testing.T, edit func(name string, b []byte) []byte) string {
	t.Helper()
	if _, err := os.Stat(systemdAnalyze); err != nil {
		t.Fatalf("%s: %v (install Debian's systemd package)", systemdAnalyze, err)
	}
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "usr/lib/systemd/system"), os.DirFS("/usr/lib/systemd/system")); err != nil {
		t.Fatalf("copying the host's system units: %v", err)
	}
	etc := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sensord.service", "sensord.socket"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b = edit(name, b)
		}
		if err := os.WriteFile(filepath.Join(etc, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, "usr/local/bin/sensord")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// analyze runs systemd-analyze with a time bound and returns its combined
// output.
func analyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(systemdAnalyze, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.String(), err
}

func TestUnitFilesPassSystemdAnalyzeVerify(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(name string, b []byte) []byte
		wantOK   bool
		wantLine []string // all in the output when !wantOK
	}{
		{
			name:   "the units as shipped load with no message at all",
			wantOK: true,
		},
		// The control: proves verify reads our files from the root and that
		// an empty output is not an accident of how it is run.
		{
			name: "a misspelt directive is reported",
			edit: func(name string, b []byte) []byte {
				return bytes.Replace(b, []byte("WatchdogSec=30s"), []byte("WatchdogSec=30s\nWatchDogSec=30s"), 1)
			},
			// systemd 252 says "Unknown key 'WatchDogSec' in section [Service]",
			// later ones "Unknown key name ...": match what both say.
			wantLine: []string{"/etc/systemd/system/sensord.service:", "Unknown key", "'WatchDogSec'"},
		},
		{
			name: "a missing binary is reported",
			edit: func(name string, b []byte) []byte {
				return bytes.Replace(b, []byte("ExecStart=/usr/local/bin/sensord"), []byte("ExecStart=/usr/local/bin/sensord-missing"), 1)
			},
			wantLine: []string{"sensord.service: Command /usr/local/bin/sensord-missing is not executable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := offlineRoot(t, tt.edit)
			out, err := analyze(t, "verify", "--root="+root, "--man=no", "sensord.socket", "sensord.service")
			if tt.wantOK {
				// Warnings leave the exit status 0, so the output must be empty too.
				if err != nil || out != "" {
					t.Errorf("systemd-analyze verify: %v\n%s", err, out)
				}
				return
			}
			for _, want := range tt.wantLine {
				if !strings.Contains(out, want) {
					t.Errorf("output does not contain %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestServiceSandboxExposure(t *testing.T) {
	root := offlineRoot(t, nil)
	out, err := analyze(t, "security", "--offline=yes", "--root="+root, "--no-pager", "sensord.service")
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for sensord.service: ([0-9.]+) (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	exposure, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f %s (0 = fully sandboxed, 10 = unprotected)", exposure, m[2])
	// 1.5 as shipped; what is left open is what the daemon needs: the GPIO
	// and I2C devices, the network, the gpio group, /proc for the dashboard.
	if exposure > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0; what got worse:\n%s", exposure, out)
	}
}

// directives parses a unit file into section -> key -> values, in order.
func directives(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	units := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			units[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot parse %q", name, line)
			}
			units[section][k] = append(units[section][k], v)
		}
	}
	return units
}

// TestUnitFilesKeepTheContract pins what other parts of sensord rely on:
// the image (paths, user, group), the daemon (flags, notify, activation) and
// the boot test (watchdog).
func TestUnitFilesKeepTheContract(t *testing.T) {
	svc := directives(t, "sensord.service")
	sock := directives(t, "sensord.socket")
	tests := []struct {
		unit         map[string]map[string][]string
		section, key string
		want         string // one of the key's values
		why          string
	}{
		{svc, "Unit", "Requires", "sensord.socket", "port 80 always comes from the socket"},
		{svc, "Unit", "After", "sensord.socket", "the fd exists when sensord starts"},
		{svc, "Unit", "StartLimitIntervalSec", "300", "start limits belong in [Unit]"},
		{svc, "Unit", "StartLimitBurst", "10", "start limits belong in [Unit]"},
		{svc, "Service", "Type", "notify", "sensord sends READY=1"},
		{svc, "Service", "NotifyAccess", "main", "only the daemon notifies"},
		{svc, "Service", "ExecStart", "/usr/local/bin/sensord -env-errors=warn", "the image installs the binary there; bad settings must not stop it"},
		{svc, "Service", "EnvironmentFile", "-/boot/firmware/sensord.conf", "the settings file on the boot partition, optional"},
		{svc, "Service", "WatchdogSec", "30s", "the health-gated watchdog"},
		{svc, "Service", "Restart", "on-failure", "a watchdog timeout restarts"},
		{svc, "Service", "User", "sensord", "the image creates this user"},
		{svc, "Service", "SupplementaryGroups", "gpio", "the image's udev rule gives this group the GPIO devices"},
		{svc, "Service", "LimitNOFILE", "16384", "room for the daemon's connection bound (15,000) and its own descriptors"},
		{svc, "Service", "LimitRTPRIO", "40", "the busy-loop capture raises only its own thread, to dht22's rtPriority"},
		{svc, "Service", "Environment", "SENSORD_TLS_AUTO=/var/lib/sensord/tls", "a self-signed certificate at the first start"},
		{svc, "Service", "StateDirectory", "sensord", "where that certificate is kept"},
		{svc, "Service", "DevicePolicy", "closed", "only the listed devices"},
		{svc, "Service", "DeviceAllow", "char-gpiochip rw", "the GPIO character device"},
		{svc, "Service", "DeviceAllow", "/dev/gpiomem rw", "periph's memory-mapped GPIO on Raspberry Pi OS"},
		{svc, "Service", "DeviceAllow", "char-i2c rw", "the I2C sensors"},
		{svc, "Service", "ProtectSystem", "strict", "hardening"},
		{svc, "Service", "NoNewPrivileges", "yes", "hardening"},
		{svc, "Install", "WantedBy", "multi-user.target", "sensord starts at boot, not on the first connection"},
		{sock, "Socket", "ListenStream", "80", "the dashboard's port"},
		{sock, "Socket", "ListenStream", "443", "HTTPS, the second socket"},
		{sock, "Socket", "Accept", "no", "one daemon takes the listening socket"},
		{sock, "Install", "WantedBy", "sockets.target", "the image enables the socket"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("[%s] %s=%s because %s", tt.section, tt.key, tt.want, tt.why), func(t *testing.T) {
			if got := tt.unit[tt.section][tt.key]; !slices.Contains(got, tt.want) {
				t.Errorf("got %q, want %q among them", got, tt.want)
			}
		})
	}
	t.Run("no RestartPreventExitStatus, since Go exits 2 after the watchdog's SIGABRT", func(t *testing.T) {
		if got := svc["Service"]["RestartPreventExitStatus"]; got != nil {
			t.Errorf("RestartPreventExitStatus=%q would keep a watchdog restart from happening", got)
		}
	})
	t.Run("no real-time scheduling for the whole daemon: only the capture's own thread", func(t *testing.T) {
		for _, k := range []string{"CPUSchedulingPolicy", "CPUSchedulingPriority", "RestrictRealtime"} {
			if got := svc["Service"][k]; got != nil {
				t.Errorf("%s=%q", k, got)
			}
		}
	})
	t.Run("plain HTTP first, then HTTPS: the daemon takes them in that order", func(t *testing.T) {
		if got := sock["Socket"]["ListenStream"]; !slices.Equal(got, []string{"80", "443"}) {
			t.Errorf("ListenStream=%q, want 80 then 443", got)
		}
	})
}
