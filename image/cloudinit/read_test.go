package cloudinit

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Public halves of the throw-away keys in the golden files.
const (
	key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0AZ4siAdkN/lZJJs4vwTQL9txH6Nm9+UglAx1OSzeF me@laptop-1"
	key2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF2n/O8AGsGqHhQpGwAptkQ6G/1tyUBj/VjeoDdWrmw2 me@laptop-2"
	key3 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIInQqdN0zI0fXxokqEhC3fCIFpq5uTs/iO2SfO205brd me@laptop-3"
	// goldenSSID and goldenPSK: the hidden network of the golden files,
	// its key PBKDF2-SHA1("correct horse battery staple", SSID, 4096, 32).
	goldenSSID = "sensord Café ☕ Wi-Fi"
	goldenPSK  = "7b15c054497b0052b1bb5d7f02e0f61a3b137fdc0ee286bc6a2ca15b8ddfa308"
)

// readSeed reads a golden directory as Import would find it.
func readSeed(t testing.TB, dir string) Seed {
	t.Helper()
	var s Seed
	for name, dst := range map[string]*[]byte{"user-data": &s.UserData, "network-config": &s.NetworkConfig, "meta-data": &s.MetaData} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			*dst = b
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	c, err := os.ReadFile(filepath.Join(dir, "cmdline.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s.Cmdline = string(c)
	return s
}

func TestParseReadsWhatEachImagerWrites(t *testing.T) {
	userPi := `user "pi" and its password: not used; SSH logs in as root, with keys only`
	for _, tc := range []struct {
		dir  string
		want Settings
	}{
		{"imager-2.0.11/hidden", Settings{
			Generation: Imager2, InstanceID: "rpi-imager-1765000000000",
			Hostname: "sensord-boottest", TimeZone: "Europe/London", Country: "GB",
			WiFi:    &WiFi{SSID: goldenSSID, PSK: goldenPSK, Hidden: true},
			SSHKeys: []string{key1, key2},
			Ignored: []string{
				"manage_resolv_conf: the appliance manages this itself",
				"manage_etc_hosts: the appliance manages this itself",
				"packages (avahi-daemon): not installed; the image carries what it needs",
				"apt: the appliance manages this itself",
				"keyboard layout: the appliance has no keyboard console",
				userPi,
				"ssh_pwauth: SSH password logins stay off; root logs in with a key",
				"runcmd (1 command): never run",
			},
		}},
		{"imager-2.0.11/open", Settings{
			Generation: Imager2, InstanceID: "rpi-imager-1765000123456",
			Hostname: "kitchen", Country: "DE",
			WiFi:    &WiFi{SSID: "Gäste"},
			SSHKeys: []string{key3},
			Ignored: []string{
				"manage_resolv_conf: the appliance manages this itself",
				"manage_etc_hosts: the appliance manages this itself",
				"packages (avahi-daemon): not installed; the image carries what it needs",
				"apt: the appliance manages this itself",
				`user "anna": not used; SSH logs in as root, with keys only`,
				"ssh_pwauth: SSH password logins stay off; root logs in with a key",
				"runcmd (1 command): never run",
			},
		}},
		{"imager-1.9.6/hidden", Settings{
			Generation: Imager1,
			Hostname:   "sensord-boottest", TimeZone: "Europe/London", Country: "GB",
			WiFi:    &WiFi{SSID: goldenSSID, PSK: goldenPSK, Hidden: true},
			SSHKeys: []string{key1, key2},
			Ignored: []string{
				"manage_etc_hosts: the appliance manages this itself",
				"packages (avahi-daemon): not installed; the image carries what it needs",
				"apt: the appliance manages this itself",
				userPi,
				"keyboard layout: the appliance has no keyboard console",
			},
		}},
		{"imager-1.9.6/open", Settings{
			Generation: Imager1, Country: "DE",
			WiFi:    &WiFi{SSID: "Gäste"},
			SSHKeys: []string{key3},
			Ignored: []string{`user "pi": not used; SSH logs in as root, with keys only`},
		}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			got, err := Parse(readSeed(t, filepath.Join("testdata", tc.dir)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwifi %+v\nwant %+v\nwifi %+v", got, got.WiFi, tc.want, tc.want.WiFi)
			}
		})
	}
}

// Imager 2 escapes every octet of a name outside printable ASCII; the
// golden's key is the one PBKDF2 gives for the UTF-8 bytes of the name,
// so reading the escapes as code points would hand wpa_supplicant a name
// the key does not fit.
func TestImager2EscapedNameIsItsOctets(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`"Caf\xc3\xa9"`, "Café"},
		{`"\xe2\x98\x95 tea"`, "☕ tea"},
		{`"plain"`, "plain"},
		{`"Caf\xe9"`, "Café"}, // one Latin-1 octet is not UTF-8: kept as YAML read it
	} {
		nc := "network:\n  version: 2\n  wifis:\n    wlan0:\n      access-points:\n        " + tc.yaml + ":\n          password: \"" + goldenPSK + "\"\n"
		got, err := Parse(Seed{NetworkConfig: []byte(nc)})
		if err != nil {
			t.Fatal(err)
		}
		if got.WiFi == nil || got.WiFi.SSID != tc.want {
			t.Errorf("%s: got %+v, want SSID %q", tc.yaml, got.WiFi, tc.want)
		}
	}
}

func TestParseRefusesBrokenFiles(t *testing.T) {
	ud := func(s string) Seed { return Seed{UserData: []byte("#cloud-config\n" + s)} }
	nc := func(s string) Seed { return Seed{NetworkConfig: []byte(s)} }
	ap := func(s string) Seed {
		return nc("version: 2\nwifis:\n  wlan0:\n    access-points:\n      \"Home\":\n" + s)
	}
	for _, tc := range []struct {
		name string
		seed Seed
		kind error
		want string
	}{
		{"user-data that does not parse", ud("hostname: [kitchen\n"), ErrSyntax, "cloudinit: user-data: "},
		{"network-config that does not parse", nc("wifis:\n  wlan0: {\n"), ErrSyntax, "cloudinit: network-config: "},
		{"meta-data that does not parse", Seed{MetaData: []byte("instance-id: [\n")}, ErrSyntax, "cloudinit: meta-data: "},
		{"a tab where YAML wants spaces", ud("user:\n\tname: pi\n"), ErrSyntax, "cloudinit: user-data: "},
		{"user-data without #cloud-config", Seed{UserData: []byte("hostname: kitchen\n")}, ErrValue, "does not start with #cloud-config"},
		{"user-data that is a script", Seed{UserData: []byte("#!/bin/sh\nrm -rf /\n")}, ErrValue, "never runs"},
		{"user-data that is a list", ud("- hostname\n"), ErrType, "the file is a list, want a mapping"},
		{"a host name that is a list", ud("hostname:\n  - a\n"), ErrType, "user-data line 3: hostname is a list, want text"},
		{"a host name that is not one", ud("hostname: my_pi!\n"), ErrValue, `hostname "my_pi!" is not a host name`},
		{"a time zone that is a path", ud("timezone: ../../etc/passwd\n"), ErrValue, "not a time zone name"},
		{"keys that are text", ud("user:\n  name: pi\n  ssh_authorized_keys: ssh-ed25519 AAAA\n"), ErrType, "ssh_authorized_keys is text, want a list"},
		{"a key that is not one", ud("users:\n- name: pi\n  ssh_authorized_keys:\n    - hello world\n"), ErrValue, "SSH key 1 is not an SSH public key"},
		{"a key that is not base64", ud("user:\n  ssh_authorized_keys:\n    - ssh-ed25519 AA!A me\n"), ErrValue, "not base64"},
		{"a key that is a mapping", ud("user:\n  ssh_authorized_keys:\n    - {a: b}\n"), ErrType, "SSH key 1 is a mapping, want text"},
		{"users that is a mapping", ud("users:\n  name: pi\n"), ErrType, "users is a mapping, want a list"},
		{"an alias where a name belongs", ud("x: &h kitchen\nhostname: *h\n"), ErrType, "hostname is an alias (*h), want text"},
		{"version 1 network-config", nc("version: 1\nconfig: []\n"), ErrValue, "only version 2"},
		{"wifis that is a list", nc("version: 2\nwifis:\n  - wlan0\n"), ErrType, "wifis is a list, want a mapping"},
		{"a password that is a list", ap("        password: [a]\n"), ErrType, "password is a list, want text"},
		{"hidden that is text", ap("        hidden: \"yes please\"\n"), ErrType, "hidden is text, want true or false"},
		{"a password too short", ap("        password: \"short\"\n"), ErrValue, "neither a passphrase"},
		{"64 characters that are not hex", ap("        password: \"" + strings.Repeat("z", 64) + "\"\n"), ErrValue, "neither a passphrase"},
		{"enterprise Wi-Fi", ap("        auth:\n          key-management: eap\n"), ErrValue, "only none, psk and sae"},
		{"a name too long", nc("version: 2\nwifis:\n  wlan0:\n    access-points:\n      \"" + strings.Repeat("n", 33) + "\": {}\n"), ErrValue, "want 1 to 32 bytes"},
		{"a country that is not one", Seed{Cmdline: "root=x cfg80211.ieee80211_regdom=GBR"}, ErrValue, "cloudinit: cmdline.txt: Wi-Fi country \"GBR\""},
		{"a huge user-data", Seed{UserData: []byte("#cloud-config\n" + strings.Repeat("# padding\n", MaxFileBytes/10+1))}, ErrTooLarge, "more than the 65536 this reader takes"},
		{"a huge network-config", nc(strings.Repeat(" ", MaxFileBytes+1)), ErrTooLarge, "network-config: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.seed)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Parse: %v, want an error of kind %v (got %+v)", err, tc.kind, got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "cloudinit: ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting cloudinit: and holding %q", msg, tc.want)
			}
			if !reflect.DeepEqual(got, Settings{}) {
				t.Errorf("with an error, Parse also returned settings: %+v", got)
			}
		})
	}
}

// A seed with more than one network keeps the first and says so.
func TestParseKeepsOneNetwork(t *testing.T) {
	got, err := Parse(Seed{NetworkConfig: []byte("version: 2\nwifis:\n  wlan0:\n    access-points:\n      \"One\": {password: \"" + goldenPSK + "\"}\n      \"Two\": {}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got.WiFi == nil || got.WiFi.SSID != "One" || len(got.Ignored) != 1 || !strings.Contains(got.Ignored[0], `"Two"`) {
		t.Errorf("got %+v, wifi %+v", got, got.WiFi)
	}
}
