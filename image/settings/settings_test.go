package settings

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"sensord/image/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in image/testdata")

func TestApplianceFileMatchesGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Appliance(), nil); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "settings", "sensord.conf", b.Bytes(), *update)
}

// The boot test's key pair is made fresh on every run, so the golden file
// holds a fixed placeholder in its place; the second half checks that the
// real key changes that one line and nothing else.
const bootTestPlaceholderKey = "ssh-ed25519 AAAA-a-fresh-key-each-run boottest"

func TestBootTestSettingsMatchGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Appliance(), BootTest(100*time.Second, bootTestPlaceholderKey)); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "settings", "sensord-boottest.conf", b.Bytes(), *update)

	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOtherKey sensord-boottest"
	var k bytes.Buffer
	if err := Render(&k, Appliance(), BootTest(100*time.Second, key)); err != nil {
		t.Fatal(err)
	}
	got, want := strings.Split(k.String(), "\n"), strings.Split(b.String(), "\n")
	if len(got) != len(want) {
		t.Fatalf("a real key changed the line count: %d lines, golden %d", len(got), len(want))
	}
	var diff []string
	for i := range got {
		if got[i] != want[i] {
			diff = append(diff, got[i])
		}
	}
	if line := `SSH_PUBKEY="` + key + `"`; len(diff) != 1 || diff[0] != line {
		t.Errorf("with a real key the lines that differ from the golden are %q, want only %q", diff, line)
	}
}

func TestRenderActivatesOnlyTheSetVariables(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Appliance(), map[string]string{"SENSORD_PERIOD": "5s", "WIFI_SSID": "My Home"}); err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			active = append(active, l)
		}
	}
	want := []string{`WIFI_SSID="My Home"`, "SENSORD_PERIOD=5s"}
	if strings.Join(active, "|") != strings.Join(want, "|") {
		t.Errorf("active lines = %q, want %q", active, want)
	}
}

func TestRenderRefusesUnknownNamesAndUnsafeValues(t *testing.T) {
	for name, set := range map[string]map[string]string{
		"a misspelt name":     {"SENSORD_PERIDO": "5s"},
		"a double quote":      {"WIFI_PASSPHRASE": `a"b`},
		"a backslash":         {"WIFI_PASSPHRASE": `a\b`},
		"a line break":        {"WIFI_SSID": "a\nSENSORD_TOKEN=x"},
		"a carriage return":   {"WIFI_SSID": "a\r"},
		"an unknown and more": {"X": "1", "Y": "2"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := Render(&bytes.Buffer{}, Appliance(), set); err == nil || !strings.HasPrefix(err.Error(), "settings: ") {
				t.Errorf("Render(%q) error = %v, want a settings: error", set, err)
			}
		})
	}
}

// The boot-time reader (sensord-settings --print) must see exactly the values
// Render wrote, including quoted ones and a file saved with CRLF line ends.
func TestSettingsScriptReadsWhatRenderWrites(t *testing.T) {
	set := map[string]string{
		"HOSTNAME":        "kitchen",
		"WIFI_COUNTRY":    "DE",
		"WIFI_SSID":       "Home # 2 'guest'",
		"WIFI_PASSPHRASE": "pa$$ `word` $(x) ;|&",
		"SSH_PUBKEY":      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@laptop",
		"SSH_PUBKEY_3":    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC me@desk",
		"WIFI_PSK":        strings.Repeat("0f", 32),
		"TIMEZONE":        "America/Argentina/Buenos_Aires",
		"SENSORD_PERIOD":  "5s",
	}
	var b bytes.Buffer
	if err := Render(&b, Appliance(), set); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join("..", "rootfs", "usr", "local", "sbin", "sensord-settings")
	for _, crlf := range []bool{false, true} {
		content := b.String()
		if crlf {
			content = strings.ReplaceAll(content, "\n", "\r\n")
		}
		path := filepath.Join(t.TempDir(), "sensord.conf")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sh", script, "--print", path).CombinedOutput()
		if err != nil {
			t.Fatalf("sensord-settings --print: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			k, v, _ := strings.Cut(l, "=")
			got[k] = v
		}
		for k, want := range set {
			if k == "SENSORD_PERIOD" {
				continue // not the script's business
			}
			if got[k] != want {
				t.Errorf("crlf=%v: %s = %q, want %q", crlf, k, got[k], want)
			}
		}
	}
}

// Every flag sensord has is documented in the file with sensord's own default,
// and the file documents no flag sensord lacks.
func TestApplianceListsEverySensordFlag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sensord")
	build := exec.Command("go", "build", "-o", bin, "sensord/cmd/sensord")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sensord: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero by design
	got := parseFlagUsage(string(out))
	if len(got) < 5 {
		t.Fatalf("sensord -h listed %d flags; output:\n%s", len(got), out)
	}
	doc := Appliance().Flags()
	for name, def := range got {
		v, ok := doc[name]
		if !ok {
			t.Errorf("sensord has -%s, sensord.conf does not document %s", name, EnvName(name))
			continue
		}
		if def == "" && !isZero(v.Default) || def != "" && def != v.Default {
			t.Errorf("%s: sensord's default is %q, sensord.conf says %q", v.Name, def, v.Default)
		}
	}
	for name := range doc {
		if _, ok := got[name]; !ok {
			t.Errorf("sensord.conf documents %s, sensord has no -%s", EnvName(name), name)
		}
	}
}

// parseFlagUsage reads the flag package's usage text: "  -name type" lines,
// each followed by indented help that ends in "(default x)" unless the
// default is the zero value.
func parseFlagUsage(usage string) map[string]string {
	flags := map[string]string{}
	nameRE := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	defRE := regexp.MustCompile(`\(default "?([^")]*)"?\)\s*$`)
	cur := ""
	for _, l := range strings.Split(usage, "\n") {
		if m := nameRE.FindStringSubmatch(l); m != nil {
			cur = m[1]
			flags[cur] = ""
		}
		if m := defRE.FindStringSubmatch(l); m != nil && cur != "" {
			flags[cur] = m[1]
		}
	}
	return flags
}

func isZero(s string) bool {
	switch s {
	case "", "0", "0s", "false":
		return true
	}
	return false
}

func TestEditChangesOnlyTheNamedVariables(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Appliance(), map[string]string{"WIFI_PASSPHRASE": "old passphrase", "SENSORD_PERIOD": "5s"}); err != nil {
		t.Fatal(err)
	}
	// A person's edits: CRLF, a duplicate active line (the last counts),
	// a variable the rendered file does not have active.
	person := strings.ReplaceAll(b.String(), "\n", "\r\n") + "HOSTNAME=first\r\nHOSTNAME=second\r\n"
	got, err := Edit([]byte(person), Appliance(), map[string]string{
		"HOSTNAME": "kitchen", "WIFI_SSID": "Home 2", "WIFI_PSK": strings.Repeat("ab", 32),
	}, []string{"WIFI_PASSPHRASE", "SSH_PUBKEY_2"})
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, l := range strings.Split(string(got), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			active = append(active, l)
		}
	}
	want := []string{`WIFI_SSID="Home 2"`, "WIFI_PSK=" + strings.Repeat("ab", 32), "SENSORD_PERIOD=5s", "HOSTNAME=kitchen"}
	if strings.Join(active, "|") != strings.Join(want, "|") {
		t.Errorf("active lines = %q, want %q", active, want)
	}
	if strings.Contains(string(got), "\r") || !strings.Contains(string(got), "\n#HOSTNAME=first\n") || !strings.Contains(string(got), `#WIFI_PASSPHRASE="old passphrase"`) {
		t.Errorf("edited file:\n%s", got)
	}
	// What sensord-settings reads from it.
	path := filepath.Join(t.TempDir(), "sensord.conf")
	if err := os.WriteFile(path, got, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", filepath.Join("..", "rootfs", "usr", "local", "sbin", "sensord-settings"), "--print", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "WIFI_SSID=Home 2\nWIFI_PSK=" + strings.Repeat("ab", 32) + "\nHOSTNAME=kitchen\n"; string(out) != want {
		t.Errorf("sensord-settings --print:\n%s\nwant\n%s", out, want)
	}

	for name, set := range map[string]map[string]string{
		"an unknown name": {"HOSTNAM": "x"},
		"a double quote":  {"WIFI_SSID": `a"b`},
	} {
		if out, err := Edit([]byte(person), Appliance(), set, nil); err == nil || out != nil {
			t.Errorf("%s: Edit = %q, %v; want an error and nothing", name, out, err)
		}
	}
}
