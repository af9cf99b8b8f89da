package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"sensord/image/boottest/harness"
	"sensord/image/setupap"
)

// The setup access point's checks: the home network and the phone.
const (
	homeSSID       = "boottest-home"
	homePassphrase = "home sweet home"
	// phoneBinary is the phone's helper on the boot partition
	// (image/boottest/phone, built for the guest by prepare).
	phoneBinary = "boottest-phone"
	// phone is where the guest runs it: /run and /tmp are noexec.
	phone = "/root/boottest-phone"
	// setupWait bounds each wait on the appliance's side: a scan, the
	// access point, a try (setupap.DefaultTiming.TryWait) and a second
	// scan under emulation.
	setupWait = 4 * time.Minute
)

// setupRun is the setup access point checks' state.
type setupRun struct {
	*rig
	sta, home, phone string // the three radios
	eth              string
	apSSID           string
	start            time.Time
}

// setupStep proves the setup access point with the three simulated radios
// of the WIFI_* checks: the appliance's, a home network on the second
// (WPA2, DHCP by networkd, as the WIFI_* checks run it) and a phone on the
// third, moved into a network namespace of its own so that its traffic
// to the appliance goes over the air. The appliance forgets the Wi-Fi
// Imager gave it and loses its cable's carrier (the virtio link set
// down): with no usable network it must open sensord-XXXX, give the phone
// an address with itself as router and DNS, answer every name with its
// own address, redirect the phone's captive-portal check to the setup
// page, list the home network there, refuse a wrong passphrase with the
// reason on the page, and with the right one join the home network, say
// where it went and close the access point. The cable comes back after.
func (t *rig) setupStep() harness.Step {
	s := &setupRun{rig: t}
	g := harness.Group("setup access point",
		harness.Do("the home network, the phone, no Wi-Fi and no cable", s.prepare),
		harness.Do("the access point opens", s.opens),
		harness.Do("the phone joins it and gets address, router and DNS", s.phoneJoins),
		harness.Do("every name is the Pi; the captive check is redirected", s.captive),
		harness.Do("a wrong passphrase: the access point comes back with the reason", s.wrong),
		harness.Do("the right passphrase: joined, and the access point closes", s.right),
	)
	return harness.Do(g.Name, func(ctx context.Context) error {
		failedBefore := t.Failed()
		defer func() {
			if t.Failed() > failedBefore {
				t.explain(ctx, "journalctl -b -o cat --no-pager -u sensord-setup | tail -n 25; cat /run/sensord-setup/state; echo; tail -n 15 /run/boottest-phone.log; tail -n 8 /run/boottest-home.log")
			}
			t.guest(ctx, "kill $(cat /run/boottest-phone.pid) $(cat /run/boottest-home.pid); ip link set "+s.eth+" up")
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			t.Check(t.waitHTTP(wctx) == nil, "the cable is back: the dashboard answers on the forwarded port again")
		}()
		return g.Run(ctx)
	})
}

func (s *setupRun) prepare(ctx context.Context) error {
	if s.wifiRadios[2] == "" {
		s.Fail("no radios from the WIFI_* checks")
		return harness.ErrSkip
	}
	s.sta, s.home, s.phone = s.wifiRadios[0], s.wifiRadios[1], s.wifiRadios[2]
	r, ok := s.guest(ctx, "for n in /sys/class/net/*; do [ -e $n/device ] && [ ! -e $n/phy80211 ] && [ \"$(cat $n/type)\" = 1 ] && basename $n; done | head -n 1; "+
		"cat /sys/class/net/"+s.sta+"/address /sys/class/net/"+s.phone+"/phy80211/name")
	if l := r.Lines(); ok && len(l) == 3 {
		s.eth, s.apSSID = l[0], setupap.APName(l[1])
		home := []string{
			"ctrl_interface=/run/boottest-home", "network={", "ssid=" + hex.EncodeToString([]byte(homeSSID)),
			"mode=2", "frequency=2437", "key_mgmt=WPA-PSK", "proto=RSN", "pairwise=CCMP", "group=CCMP",
			`psk="` + homePassphrase + `"`, "}",
		}
		cmd := strings.Join([]string{
			"install -m 0755 /boot/firmware/" + phoneBinary + " " + phone,
			"printf '%s\\n' " + shellWords(home) + " > /run/boottest-home.conf",
			"wpa_supplicant -B -D nl80211 -i " + s.home + " -c /run/boottest-home.conf -P /run/boottest-home.pid -f /run/boottest-home.log",
			"systemctl stop sensord-wifi@" + s.phone + ".service",
			"ip netns add phone", phone + " netns " + l[2] + " phone",
			// The Pi forgets Imager's Wi-Fi (sensord-settings removes its
			// wpa_supplicant configuration) and its cable.
			"sed -i -E 's/^(WIFI_SSID|WIFI_PASSPHRASE|WIFI_PSK)=/#&/' /boot/firmware/sensord.conf",
			"/usr/local/sbin/sensord-settings 2>/dev/null",
			"systemctl stop sensord-wifi@" + s.sta + ".service",
			"ip link set " + s.eth + " down",
			"test ! -e /etc/wpa_supplicant/sensord-wifi.conf",
		}, " && ")
		r, ok = s.guest(ctx, cmd)
		s.start = time.Now()
		if s.Check(ok && r.Status == 0, "home network %q on %s, the phone's radio %s in its own namespace, the appliance without Wi-Fi settings and with %s down: %q",
			homeSSID, s.home, s.phone, s.eth, strings.Join(r.Lines(), " | ")) {
			return nil
		}
		return harness.ErrSkip
	}
	s.Fail("radios and cable: %q", r.Out)
	return harness.ErrSkip
}

// poll runs cmd on the console until done says its output is what was
// waited for, or within passes; it returns the last output.
func (s *setupRun) poll(ctx context.Context, within time.Duration, cmd string, done func(string) bool) (string, bool) {
	deadline := time.Now().Add(within)
	for {
		r, ok := s.guest(ctx, cmd)
		out := strings.TrimSpace(strings.ReplaceAll(r.Out, "\r", ""))
		if !ok {
			return out, false
		}
		if done(out) {
			return out, true
		}
		if time.Now().After(deadline) {
			return out, false
		}
		select {
		case <-ctx.Done():
			return r.Out, false
		case <-time.After(3 * time.Second):
		}
	}
}

func (s *setupRun) opens(ctx context.Context) error {
	out, ok := s.poll(ctx, setupWait, "cat /run/sensord-setup/state", func(o string) bool { return strings.Contains(o, `"active":true`) })
	if !s.Check(ok, "with no Wi-Fi settings and no cable, sensord-setup opened the access point: %s", out) {
		return harness.ErrSkip
	}
	s.Number("no network to setup access point open (grace, scan, AP): %.0f s", time.Since(s.start).Seconds())
	s.Check(strings.Contains(out, `"ssid":"`+s.apSSID+`"`) && strings.Contains(out, `"address":"192.168.4.1"`) && strings.Contains(out, `"interface":"`+s.sta+`"`),
		"the state names the access point %s on %s at 192.168.4.1", s.apSSID, s.sta)
	s.Check(strings.Contains(out, `"ssid":"`+homeSSID+`"`), "its scan found the home network %q", homeSSID)
	return nil
}

// inPhone runs a command in the phone's namespace.
func inPhone(cmd string) string { return "ip netns exec phone " + cmd }

var leaseRE = regexp.MustCompile(`address=(192\.168\.4\.\d+/\d+)\s+router=(\S+)\s+dns=(\S+)`)

func (s *setupRun) phoneJoins(ctx context.Context) error {
	conf := []string{"ctrl_interface=/run/boottest-phone-ctrl", "network={", "ssid=" + hex.EncodeToString([]byte(s.apSSID)), "key_mgmt=NONE", "}"}
	r, ok := s.guest(ctx, "printf '%s\\n' "+shellWords(conf)+" > /run/boottest-phone.conf && "+
		inPhone("wpa_supplicant -B -D nl80211 -i "+s.phone+" -c /run/boottest-phone.conf -P /run/boottest-phone.pid -f /run/boottest-phone.log"))
	if !s.Check(ok && r.Status == 0, "the phone's wpa_supplicant started: %q", r.Out) {
		return harness.ErrSkip
	}
	joined := time.Now()
	out, ok := s.poll(ctx, 2*time.Minute, inPhone("cat /sys/class/net/"+s.phone+"/operstate")+"; grep -c CTRL-EVENT-CONNECTED /run/boottest-phone.log",
		func(o string) bool { return strings.HasPrefix(o, "up") })
	if !s.Check(ok, "the phone found the access point %s by its beacons and joined it (open): %q", s.apSSID, out) {
		return harness.ErrSkip
	}
	s.Number("phone: access point joined in %.0f s", time.Since(joined).Seconds())
	r, ok = s.guest(ctx, inPhone(phone+" dhcp "+s.phone))
	m := leaseRE.FindStringSubmatch(r.Out)
	if !s.Check(ok && r.Status == 0 && m != nil && m[2] == "192.168.4.1" && m[3] == "192.168.4.1",
		"the phone got an address by DHCP, with the Pi (192.168.4.1) as router and DNS server: %q", r.Out) {
		return harness.ErrSkip
	}
	r, ok = s.guest(ctx, inPhone("ip addr add "+m[1]+" dev "+s.phone)+" && "+inPhone("ip route add default via 192.168.4.1"))
	if !s.Check(ok && r.Status == 0, "the phone uses its lease %s: %q", m[1], r.Out) {
		return harness.ErrSkip
	}
	return nil
}

func (s *setupRun) captive(ctx context.Context) error {
	r, _ := s.guest(ctx, inPhone(phone+" dns 192.168.4.1 connectivitycheck.gstatic.com captive.apple.com"))
	s.Check(strings.Contains(r.Out, "connectivitycheck.gstatic.com [192.168.4.1]") && strings.Contains(r.Out, "captive.apple.com [192.168.4.1]"),
		"connectivitycheck.gstatic.com and captive.apple.com resolve to the Pi: %q", r.Out)
	r, _ = s.guest(ctx, inPhone(phone+" get 192.168.4.1 http://connectivitycheck.gstatic.com/generate_204"))
	s.Check(strings.Contains(r.Out, "status=302") && strings.Contains(r.Out, "location=http://192.168.4.1/setup"),
		"GET http://connectivitycheck.gstatic.com/generate_204 is redirected to the setup page, not 204: %q", firstLines(r.Out, 2))
	r, _ = s.guest(ctx, inPhone(phone+" get 192.168.4.1 http://captive.apple.com/hotspot-detect.html"))
	s.Check(strings.Contains(r.Out, "status=302") && !strings.Contains(r.Out, "Success"),
		"Apple's hotspot-detect.html is redirected too, never \"Success\": %q", firstLines(r.Out, 2))
	r, _ = s.guest(ctx, inPhone(phone+" get 192.168.4.1 http://192.168.4.1/setup"))
	s.Check(strings.Contains(r.Out, "status=200") && strings.Contains(r.Out, "Set up your sensord"), "the setup page is served on the access point: %q", firstLines(r.Out, 1))
	r, _ = s.guest(ctx, inPhone(phone+" get 192.168.4.1 http://192.168.4.1/setup/status"))
	s.Check(strings.Contains(r.Out, `"ssid":"`+homeSSID+`"`), "the page lists the home network %q: %q", homeSSID, firstLines(r.Out, 3))
	return nil
}

// submit posts the setup form from the phone.
func (s *setupRun) submit(ctx context.Context, passphrase string) bool {
	form := url.Values{"ssid": {homeSSID}, "passphrase": {passphrase}, "country": {"GB"}}.Encode()
	r, _ := s.guest(ctx, inPhone(phone+" post http://192.168.4.1/setup "+shellWords([]string{form})))
	return s.Check(strings.Contains(r.Out, "status=202"), "the phone posted the form (passphrase %q): %q", passphrase, firstLines(r.Out, 3))
}

// status polls the page's status from the phone until it contains want.
func (s *setupRun) status(ctx context.Context, want string) (string, bool) {
	return s.poll(ctx, setupWait, inPhone(phone+" get 192.168.4.1 http://192.168.4.1/setup/status 2>&1"),
		func(o string) bool { return strings.Contains(o, want) })
}

func (s *setupRun) wrong(ctx context.Context) error {
	if !s.submit(ctx, "not the passphrase") {
		return harness.ErrSkip
	}
	start := time.Now()
	out, ok := s.status(ctx, `"failure":"wrong-passphrase"`)
	if !s.Check(ok && strings.Contains(out, "refused the passphrase"), "the access point came back, the phone rejoined it, and the page says the passphrase was refused: %q", firstLines(out, 3)) {
		return harness.ErrSkip
	}
	s.Number("wrong passphrase: posted to the reason on the page again %.0f s", time.Since(start).Seconds())
	return nil
}

func (s *setupRun) right(ctx context.Context) error {
	if !s.submit(ctx, homePassphrase) {
		return harness.ErrSkip
	}
	start := time.Now()
	out, ok := s.status(ctx, `"phase":"joined"`)
	s.Check(ok && strings.Contains(out, `"ssid":"`+homeSSID+`"`) && strings.Contains(out, `"address":"192.168.77.`),
		"the page says where the Pi went (the home network, its address there, its name): %q", firstLines(out, 3))
	cmd := "cat /run/sensord-setup/state; echo; cat /sys/class/net/" + s.sta + "/operstate; ip -color=never -4 -o addr show dev " + s.sta +
		"; grep -c '^WIFI_SSID=" + homeSSID + "$' /boot/firmware/sensord.conf"
	out, ok = s.poll(ctx, setupWait, cmd, func(o string) bool {
		return strings.Contains(o, `"phase":"station"`) && strings.Contains(o, "\nup\n") && strings.Contains(o, "inet 192.168.77.")
	})
	if s.Check(ok && !strings.Contains(out, "192.168.4.1/24") && !strings.Contains(out, `"active":true`),
		"the appliance joined the home network with a lease, its access point closed: %q", out) {
		s.Number("right passphrase: posted to joined with the access point closed %.0f s", time.Since(start).Seconds())
	}
	s.Check(strings.HasSuffix(strings.TrimSpace(out), "1"), "sensord.conf now says WIFI_SSID=%s (written through settings.Edit)", homeSSID)
	r, _ := s.guest(ctx, inPhone("cat /sys/class/net/"+s.phone+"/operstate"))
	s.Check(!r.Has("up"), "the phone lost the access point (it is gone): %q", r.Out)
	return nil
}

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[:n]
	}
	return fmt.Sprint(strings.Join(l, " | "))
}
