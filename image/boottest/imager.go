package main

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sensord/image/boottest/harness"
	"sensord/image/cloudinit"
	"sensord/image/settings"
)

// The Raspberry Pi Imager seed `make image-test` puts on its copy of the
// image: the golden files of Imager 2.0.11 (image/cloudinit/testdata,
// whose README cites the generator) with the run's two public keys in
// place of the golden's, and cmdline.txt changed the way Imager changes
// it. The image's sensord.conf keeps its defaults for everything Imager
// sets (host name, Wi-Fi, SSH keys, time zone).
const (
	imagerSeedDir = "image/cloudinit/testdata/imager-2.0.11/hidden"
	// The golden's network: hidden, a name that is not ASCII.
	imagerSSID = "sensord Café ☕ Wi-Fi"
	// The golden's keys, replaced by the run's.
	imagerGoldenKey1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0AZ4siAdkN/lZJJs4vwTQL9txH6Nm9+UglAx1OSzeF me@laptop-1"
	imagerGoldenKey2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF2n/O8AGsGqHhQpGwAptkQ6G/1tyUBj/VjeoDdWrmw2 me@laptop-2"
)

// imagerPSK is the key Imager stores for the boot test's passphrase on
// the golden's network: PBKDF2-SHA1, 4096 rounds, the SSID as salt
// (IEEE 802.11i; rpi-imager's CustomisationGenerator::pbkdf2).
func imagerPSK() string {
	k, err := pbkdf2.Key(sha1.New, settings.BootTestWiFiPassphrase, []byte(imagerSSID), 4096, 32)
	if err != nil {
		panic(err) // only for a key length SHA-1 cannot give
	}
	return hex.EncodeToString(k)
}

// imagerSeed reads the golden seed and puts pub1 and pub2 in place of its
// keys. It returns the files to put on the boot partition and Imager's
// additions to cmdline.txt.
func imagerSeed(dir, pub1, pub2 string) (files map[string][]byte, additions string, err error) {
	files = map[string][]byte{}
	for _, name := range []string{cloudinit.UserDataFile, cloudinit.NetworkConfigFile, cloudinit.MetaDataFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, "", err
		}
		files[name] = b
	}
	ud := string(files[cloudinit.UserDataFile])
	for _, k := range [][2]string{{imagerGoldenKey1, pub1}, {imagerGoldenKey2, pub2}} {
		if strings.Count(ud, k[0]) != 1 {
			return nil, "", fmt.Errorf("imager seed: %s/user-data does not hold the golden key %q once", dir, k[0])
		}
		ud = strings.Replace(ud, k[0], k[1], 1)
	}
	files[cloudinit.UserDataFile] = []byte(ud)
	if psk := imagerPSK(); !strings.Contains(string(files[cloudinit.NetworkConfigFile]), `password: "`+psk+`"`) {
		return nil, "", fmt.Errorf("imager seed: %s/network-config does not hold the key of the passphrase %q on %q (%s)", dir, settings.BootTestWiFiPassphrase, imagerSSID, psk)
	}
	cl, err := os.ReadFile(filepath.Join(dir, cloudinit.CmdlineFile))
	if err != nil {
		return nil, "", err
	}
	var add []string
	for _, f := range strings.Fields(string(cl)) {
		if strings.HasPrefix(f, "cfg80211.ieee80211_regdom=") || strings.HasPrefix(f, "ds=nocloud") {
			add = append(add, f)
		}
	}
	if len(add) != 2 {
		return nil, "", fmt.Errorf("imager seed: %s/cmdline.txt: want Imager's regdom and ds=nocloud additions, have %q", dir, add)
	}
	return files, strings.Join(add, " "), nil
}

// imagerCmdline is cmdline.txt as Imager leaves it: the image's line,
// trimmed, with its additions after one space each and no line end
// (rpi-imager downloadthread.cpp, _customizeImage).
func imagerCmdline(orig, additions string) string {
	return strings.TrimSpace(orig) + " " + additions
}

// wpaEscape is how wpa_supplicant prints an SSID in its log
// (printf_encode): bytes outside printable ASCII as \xHH.
func wpaEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 32 || c >= 127:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// imagerStep proves the import on the booted appliance: it ran before
// sensord-settings, carried the seed into sensord.conf (the Wi-Fi as the
// pre-computed key only, both keys), said in the journal what it took and
// what it left, marked the files done, and finds nothing on a second run.
// A failure is explained with the two units' journal.
func (t *rig) imagerStep() harness.Step {
	g := harness.Checks("Imager's files imported",
		t.checkImagerMarkedDone,
		t.checkImagerSettings,
		t.checkImagerJournal,
		t.checkImagerOrder,
		t.checkImagerSecondRun,
	)
	return harness.Do(g.Name, func(ctx context.Context) error {
		failedBefore := t.Failed()
		err := g.Run(ctx)
		if t.Failed() > failedBefore {
			t.explain(ctx, "journalctl -b -o cat --no-pager -u sensord-imager -u sensord-settings | tail -n 30")
		}
		return err
	})
}

func (t *rig) checkImagerMarkedDone(ctx context.Context) {
	r, ok := t.guest(ctx, "ls -1 /boot/firmware | grep -E '^(user-data|network-config|meta-data)'")
	got := strings.Join(r.Lines(), " ")
	t.Check(ok && got == "meta-data.imported network-config.imported user-data.imported",
		"the Imager files on the boot partition are marked done: %q", got)
}

// checkImagerSettings: sensord.conf holds Imager's settings, the Wi-Fi as
// the key only, here and in wpa_supplicant's configuration.
func (t *rig) checkImagerSettings(ctx context.Context) {
	r, _ := t.guest(ctx, "grep -E '^[A-Z]' /boot/firmware/sensord.conf | grep -v '^SENSORD_'")
	psk := imagerPSK()
	active := strings.Join(r.Lines(), "\n")
	want := []string{"HOSTNAME=" + settings.BootTestHostname, "WIFI_COUNTRY=GB", `WIFI_SSID="` + imagerSSID + `"`, "WIFI_PSK=" + psk,
		"TIMEZONE=Europe/London"}
	missing := []string{}
	for _, w := range want {
		if !strings.Contains(active, w) {
			missing = append(missing, w)
		}
	}
	t.Check(len(missing) == 0 && strings.Count(active, "SSH_PUBKEY") == 2 && !strings.Contains(active, "WIFI_PASSPHRASE"),
		"sensord.conf now holds Imager's settings (the Wi-Fi as the key the test computed from the passphrase, no passphrase; two SSH keys); missing %q in %q", missing, active)
	r, _ = t.guest(ctx, "grep -c '"+settings.BootTestWiFiPassphrase+"' /etc/wpa_supplicant/sensord-wifi.conf /boot/firmware/sensord.conf; grep -c 'psk="+psk+"$' /etc/wpa_supplicant/sensord-wifi.conf")
	t.Check(r.Has("/etc/wpa_supplicant/sensord-wifi.conf:0") && r.Has("/boot/firmware/sensord.conf:0") && r.Has("1"),
		"the appliance holds only the pre-computed key, never the passphrase: %q", strings.Join(r.Lines(), " | "))
	r, _ = t.guest(ctx, "readlink /etc/localtime; date +%Z")
	t.Check(r.Has("/usr/share/zoneinfo/Europe/London") && (r.Has("GMT") || r.Has("BST")),
		"Imager's time zone is the system's: %q", strings.Join(r.Lines(), " | "))
}

// checkImagerJournal: sensord-imager says what it took and what it left,
// never the key.
func (t *rig) checkImagerJournal(ctx context.Context) {
	r, _ := t.guest(ctx, "journalctl -b -o cat --no-pager -u sensord-imager")
	log := r.Out
	for _, w := range []string{
		"imported: HOSTNAME=" + settings.BootTestHostname,
		"imported: WIFI_PSK (the key Imager computed from the passphrase; WPA2 only",
		`ignored: user "pi" and its password: not used; SSH logs in as root, with keys only`,
		"ignored: runcmd (1 command): never run",
		"ignored: packages (avahi-daemon): not installed",
		"marked done: user-data -> user-data.imported",
	} {
		t.Check(strings.Contains(log, w), "journal of sensord-imager says %q", w)
	}
	t.Check(!strings.Contains(log, imagerPSK()), "the journal does not show the Wi-Fi key")
}

// checkImagerOrder: the import finished before sensord-settings applied
// sensord.conf, by systemd's clock, and the kernel booted with Imager's
// cmdline.txt.
func (t *rig) checkImagerOrder(ctx context.Context) {
	r, _ := t.guest(ctx, "systemctl show -p ExecMainExitTimestampMonotonic --value sensord-imager; systemctl show -p ExecMainStartTimestampMonotonic --value sensord-settings")
	l := r.Lines()
	t.Check(len(l) == 2 && l[0] != "0" && len(l[0]) > 0 && lessNum(l[0], l[1]),
		"sensord-imager finished before sensord-settings started (monotonic µs %q)", strings.Join(l, " < "))
	r, _ = t.guest(ctx, "tr ' ' '\\n' < /proc/cmdline | grep -E '^(cfg80211|ds=)'")
	t.Check(strings.Contains(r.Out, "cfg80211.ieee80211_regdom=GB") && strings.Contains(r.Out, "ds=nocloud;i=rpi-imager-"),
		"the kernel booted with Imager's cmdline.txt additions: %q", strings.Join(r.Lines(), " "))
}

// checkImagerSecondRun: a second boot's run finds nothing to import and
// leaves sensord.conf untouched.
func (t *rig) checkImagerSecondRun(ctx context.Context) {
	r, _ := t.guest(ctx, "a=$(sha256sum < /boot/firmware/sensord.conf); sensorctl imager-import; b=$(sha256sum < /boot/firmware/sensord.conf); [ \"$a\" = \"$b\" ] && echo unchanged")
	t.Check(r.Has("no Raspberry Pi Imager settings (user-data, network-config) on the boot partition") && r.Has("unchanged"),
		"a second import finds nothing and leaves sensord.conf alone: %q", strings.Join(r.Lines(), " | "))
}

// lessNum compares two decimal numbers of systemd's output.
func lessNum(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
