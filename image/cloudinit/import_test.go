package cloudinit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sensord/image/settings"
)

// card makes a boot partition: the image's sensord.conf and the golden
// seed in dir (empty: none).
func card(t *testing.T, golden string) (dir, conf string, defaults []byte) {
	t.Helper()
	dir = t.TempDir()
	var b bytes.Buffer
	if err := settings.Render(&b, settings.Appliance(), nil); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "sensord.conf")
	if err := os.WriteFile(conf, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if golden != "" {
		ents, err := os.ReadDir(filepath.Join("testdata", golden))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join("testdata", golden, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, conf, b.Bytes()
}

func active(t *testing.T, conf string) []string {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return strings.Join(n, " ")
}

func TestImportCarriesImagerSettingsOverOnce(t *testing.T) {
	dir, conf, _ := card(t, "imager-2.0.11/hidden")
	r, err := Import(dir, conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"WIFI_COUNTRY=GB", `WIFI_SSID="sensord Café ☕ Wi-Fi"`, "WIFI_PSK=" + goldenPSK,
		`SSH_PUBKEY="` + key1 + `"`, `SSH_PUBKEY_2="` + key2 + `"`, "TIMEZONE=Europe/London",
	}
	// HOSTNAME is the first variable of the file.
	want = append([]string{"HOSTNAME=sensord-boottest"}, want...)
	if got := active(t, conf); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sensord.conf's active lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := dirNames(t, dir), "cmdline.txt meta-data.imported network-config.imported sensord.conf user-data.imported"; got != want {
		t.Errorf("boot partition holds %s, want %s", got, want)
	}
	lines := strings.Join(r.Lines(), "\n")
	for _, w := range []string{
		"imported: WIFI_PSK (the key Imager computed from the passphrase; WPA2 only: a network that allows WPA3 only needs WIFI_PASSPHRASE",
		`imported: SSH_PUBKEY_2: SSH key "ssh-ed25519 me@laptop-2" for root`,
		`ignored: user "pi" and its password: not used; SSH logs in as root, with keys only`,
		"ignored: runcmd (1 command): never run",
		"marked done: user-data -> user-data.imported, network-config -> network-config.imported, meta-data -> meta-data.imported",
	} {
		if !strings.Contains(lines, w) {
			t.Errorf("report lacks %q:\n%s", w, lines)
		}
	}
	if strings.Contains(lines, goldenPSK) {
		t.Errorf("the report shows the Wi-Fi key:\n%s", lines)
	}

	// A person edits sensord.conf afterwards: the next boot's import finds
	// nothing and leaves the edit alone.
	b, _ := os.ReadFile(conf)
	edited := strings.Replace(string(b), "HOSTNAME=sensord-boottest", "HOSTNAME=greenhouse", 1)
	if err := os.WriteFile(conf, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = Import(dir, conf)
	if err != nil || len(r.Found) != 0 {
		t.Fatalf("second import: %+v, %v; want nothing found", r, err)
	}
	if b, _ := os.ReadFile(conf); string(b) != edited {
		t.Errorf("the second boot's import changed the edited sensord.conf")
	}
}

func TestImportOpenNetworkClearsThePassword(t *testing.T) {
	dir, conf, _ := card(t, "imager-1.9.6/open")
	b, _ := os.ReadFile(conf)
	old := string(b) + "WIFI_PASSPHRASE=\"an old passphrase\"\nSSH_PUBKEY_4=\"" + key1 + "\"\n"
	if err := os.WriteFile(conf, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(dir, conf); err != nil {
		t.Fatal(err)
	}
	want := "WIFI_COUNTRY=DE|WIFI_SSID=Gäste|SSH_PUBKEY=\"" + key3 + "\""
	if got := strings.Join(active(t, conf), "|"); got != want {
		t.Errorf("active lines %s, want %s", got, want)
	}
}

func TestImportOfBrokenFilesWritesNothing(t *testing.T) {
	for name, seed := range map[string]map[string]string{
		"YAML that does not parse":        {"user-data": "#cloud-config\nhostname: [x\n"},
		"a wrong type":                    {"network-config": "network:\n  version: 2\n  wifis: [wlan0]\n"},
		"a huge file":                     {"user-data": "#cloud-config\n" + strings.Repeat("#", MaxFileBytes)},
		"a name sensord.conf cannot hold": {"network-config": "version: 2\nwifis:\n  wlan0:\n    access-points:\n      'a\"b':\n        password: \"" + goldenPSK + "\"\n"},
	} {
		t.Run(name, func(t *testing.T) {
			dir, conf, defaults := card(t, "")
			for f, content := range seed {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := dirNames(t, dir)
			_, err := Import(dir, conf)
			if err == nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "cloudinit: ") {
				t.Fatalf("Import: %v; want a one-line cloudinit: error", err)
			}
			t.Log(err)
			if b, _ := os.ReadFile(conf); !bytes.Equal(b, defaults) {
				t.Errorf("sensord.conf changed")
			}
			if after := dirNames(t, dir); after != before {
				t.Errorf("files %s became %s", before, after)
			}
		})
	}
	_, err := Import(t.TempDir(), filepath.Join(t.TempDir(), "sensord.conf"))
	if err != nil {
		t.Errorf("no seed: %v", err)
	}
	var e *Error
	dir, conf, _ := card(t, "")
	os.WriteFile(filepath.Join(dir, "user-data"), []byte(strings.Repeat("x", MaxFileBytes+1)), 0o644)
	if _, err := Import(dir, conf); !errors.As(err, &e) || !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge user-data: %v", err)
	}
}
