package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/settings"
)

// The access point's network, made by the test in /run (gone at the next
// boot): a private /24 that no host network here uses.
const (
	apAddress = "192.168.77.1/24"
	apPrefix  = "192.168.77."
	// apFrequency is channel 1, allowed in every country.
	apFrequency = 2412
	// wifiWait bounds association plus DHCP on the emulated CPU (seen
	// here: see the number the test prints).
	wifiWait = 2 * time.Minute
)

// wifiRun is the Wi-Fi checks' state: the radios, when they came up,
// whether the access point runs.
type wifiRun struct {
	*rig
	sta, ap string
	up      time.Time
	apUp    bool
}

// wifiStep proves WIFI_COUNTRY, WIFI_SSID and WIFI_PASSPHRASE on a real
// boot. qemu's virt board has no radio, so the test loads the image's own
// kernel's mac80211_hwsim with two radios that hear each other. The first
// is the appliance's: the image's udev rule must start
// sensord-wifi@<it>.service, whose wpa_supplicant must find and join the
// network sensord.conf names, and systemd-networkd must get it an address
// by DHCP. The second becomes that network's access point: the test stops
// the appliance's wpa_supplicant on it and runs one in AP mode with the
// same SSID and passphrase, and a DHCP server (systemd-networkd's) on it.
//
// Each step ends the checks when it fails; once the access point is up, a
// failure is explained and the access point stopped after the last.
func (t *rig) wifiStep() harness.Step {
	w := &wifiRun{rig: t}
	g := harness.Group("WIFI_*",
		harness.Do("two simulated radios", w.radios),
		harness.Do("the access point", w.accessPoint),
		harness.Do("the appliance joins", w.joins),
	)
	return harness.Do(g.Name, func(ctx context.Context) error {
		failedBefore := t.Failed()
		defer func() {
			if !w.apUp {
				return
			}
			if t.Failed() > failedBefore {
				t.explain(ctx, fmt.Sprintf("journalctl -b -o cat --no-pager -u sensord-wifi@%s | tail -n 15; tail -n 15 /run/boottest-ap.log; networkctl status %s --no-pager | head -n 20", w.sta, w.sta))
			}
			t.guest(ctx, "kill $(cat /run/boottest-ap.pid)")
		}()
		return g.Run(ctx)
	})
}

// radios loads mac80211_hwsim and checks that udev started the
// appliance's sensord-wifi@ for the first radio.
func (w *wifiRun) radios(ctx context.Context) error {
	// The third radio is the phone of the setup access point's checks
	// (setupap.go).
	r, ok := w.guest(ctx, "modprobe mac80211_hwsim radios=3 && udevadm settle -t 30; ls -1 /sys/class/net")
	var radios []string
	for _, l := range r.Lines() {
		if strings.HasPrefix(l, "wl") {
			radios = append(radios, l)
		}
	}
	slices.Sort(radios)
	if !w.Check(ok && r.Status == 0 && len(radios) == 3, "three simulated Wi-Fi radios (mac80211_hwsim): %q", strings.Join(r.Lines(), " ")) {
		return harness.ErrSkip
	}
	w.sta, w.ap = radios[0], radios[1]
	w.wifiRadios = [3]string(radios)
	w.up = time.Now()
	err := w.waitActive(ctx, "sensord-wifi@"+w.sta+".service", time.Minute)
	w.Check(err == nil, "udev started sensord-wifi@%s.service for the new radio (%v)", w.sta, err)
	return nil
}

// accessPoint turns the second radio into the network's access point.
func (w *wifiRun) accessPoint(ctx context.Context) error {
	// The access point holds the passphrase; the appliance (image-test)
	// only the key Imager computed from it.
	ssid := w.wifiSSID
	apConf := []string{
		"ctrl_interface=/run/boottest-ap", "network={", "ssid=" + hex.EncodeToString([]byte(ssid)),
		"mode=2", fmt.Sprintf("frequency=%d", apFrequency), "key_mgmt=WPA-PSK", "proto=RSN",
		"pairwise=CCMP", "group=CCMP", `psk="` + settings.BootTestWiFiPassphrase + `"`,
	}
	if w.wifiHidden {
		// Beacons without the name: only a station that asks for it by
		// name (scan_ssid=1) finds the network.
		apConf = append(apConf, "ignore_broadcast_ssid=1")
	}
	apConf = append(apConf, "}")
	network := []string{"[Match]", "Name=" + w.ap, "[Network]", "Address=" + apAddress, "DHCPServer=yes"}
	cmd := strings.Join([]string{
		"systemctl stop sensord-wifi@" + w.ap + ".service",
		"printf '%s\\n' " + shellWords(apConf) + " > /run/boottest-ap.conf",
		"mkdir -p /run/systemd/network",
		"printf '%s\\n' " + shellWords(network) + " > /run/systemd/network/10-boottest-ap.network",
		"networkctl reload",
		"wpa_supplicant -B -D nl80211 -i " + w.ap + " -c /run/boottest-ap.conf -P /run/boottest-ap.pid -f /run/boottest-ap.log",
	}, " && ")
	r, ok := w.guest(ctx, cmd)
	if !w.Check(ok && r.Status == 0, "access point %q on %s (wpa_supplicant in AP mode, DHCP server by systemd-networkd): %q", ssid, w.ap, strings.Join(r.Lines(), " | ")) {
		return harness.ErrSkip
	}
	w.apUp = true
	return nil
}

// joins polls the appliance's side: the kernel's view of the link
// (operstate goes up only once wpa_supplicant has finished the WPA
// handshake, which needs the passphrase), the address networkd got it,
// and what its wpa_supplicant logged. (ip colours its output on a terminal
// even with TERM=dumb, hence -color=never.)
func (w *wifiRun) joins(ctx context.Context) error {
	sta, ssid := w.sta, w.wifiSSID
	status := fmt.Sprintf("cat /sys/class/net/%s/operstate; ip -color=never -4 -o addr show dev %s; "+
		"journalctl -b -o cat --no-pager -u sensord-wifi@%s | grep -E 'Trying to associate|Key negotiation completed|CTRL-EVENT-CONNECTED' | tail -n 3",
		sta, sta, sta)
	var lines []string
	var addr string
	for deadline := time.Now().Add(wifiWait); ; {
		r, ok := w.guest(ctx, status)
		lines, addr = r.Lines(), inet(r.Out)
		if !ok || len(lines) > 0 && lines[0] == "up" && strings.HasPrefix(addr, apPrefix) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return harness.ErrSkip
		case <-time.After(3 * time.Second):
		}
	}
	log := strings.Join(lines, "\n")
	w.Check(len(lines) > 0 && lines[0] == "up" && strings.Contains(log, "(SSID='"+wpaEscape(ssid)+"'") &&
		strings.Contains(log, "Key negotiation completed") && strings.Contains(log, "CTRL-EVENT-CONNECTED"),
		"%s joined WIFI_SSID %q (hidden: %v) with its key (link up after the WPA handshake): %q", sta, ssid, w.wifiHidden, strings.Join(lines, " | "))
	if w.Check(strings.HasPrefix(addr, apPrefix), "systemd-networkd got %s an address by DHCP from the access point: %q", sta, addr) {
		w.Number("simulated radios up to Wi-Fi joined with a DHCP address: %.0f s", time.Since(w.up).Seconds())
	}
	r, _ := w.guest(ctx, fmt.Sprintf("grep -c '^country=%s$' /etc/wpa_supplicant/sensord-wifi.conf", settings.BootTestWiFiCountry))
	w.Check(r.Has("1"), "WIFI_COUNTRY=%s is in the appliance's wpa_supplicant configuration", settings.BootTestWiFiCountry)
	return nil
}

// shellWords quotes each word for sh, in single quotes.
func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

var inetRE = regexp.MustCompile(`\binet (\d+\.\d+\.\d+\.\d+)/`)

// inet returns the first IPv4 address in `ip -4 -o addr` output, or "".
func inet(out string) string {
	if m := inetRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}
