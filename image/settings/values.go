package settings

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxFileBytes bounds a settings file read from outside (an upload on the
// dashboard, a spooled change): the rendered Appliance file is about
// 12 KiB, and every value at its own bound fits well inside 64 KiB.
const MaxFileBytes = 64 << 10

// MaxValueBytes bounds one value: the longest real ones are an SSH key
// (an RSA-4096 key line is about 750 bytes) and a list of alert rules.
const MaxValueBytes = 4 << 10

// ErrValue marks a value that sensord.conf's readers would refuse or
// read differently; the message says which and why, in a user's words.
var ErrValue = errors.New("settings: bad value")

// Parse returns the active (not commented-out) values of a settings file
// of f's variables, as both of its readers see them: KEY=value lines, the
// last assignment of a name winning, one pair of double or single quotes
// around a value removed, trailing blanks dropped, CRLF read as LF.
// Names f does not list are errors (an upload with a typo must not
// silently do nothing), as are lines longer than MaxValueBytes and files
// over MaxFileBytes.
func Parse(conf []byte, f File) (map[string]string, error) {
	if len(conf) > MaxFileBytes {
		return nil, fmt.Errorf("%w: the file has more than %d bytes", ErrValue, MaxFileBytes)
	}
	known := f.names()
	vals := map[string]string{}
	for i, l := range strings.Split(strings.ReplaceAll(string(conf), "\r\n", "\n"), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d is not NAME=value", ErrValue, i+1)
		}
		if !known[k] {
			return nil, fmt.Errorf("%w: line %d: %s is not a setting of sensord.conf", ErrValue, i+1, clip(k))
		}
		if len(v) > MaxValueBytes {
			return nil, fmt.Errorf("%w: %s has more than %d bytes", ErrValue, k, MaxValueBytes)
		}
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		vals[k] = v
	}
	return vals, nil
}

// clip shortens what a message quotes from outside input.
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return fmt.Sprintf("%q...", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

func (f File) names() map[string]bool {
	known := make(map[string]bool)
	for _, s := range f.Sections {
		for _, v := range s.Vars {
			known[v.Name] = true
		}
	}
	return known
}

// Secret reports whether a variable's value is a secret: never shown by
// the dashboard (only whether it is set), left out of a settings download
// unless the owner asks. SENSORD_URL may carry user:password, and an
// alert webhook's URL is often the secret itself (an ntfy topic).
func Secret(name string) bool {
	switch name {
	case "WIFI_PASSPHRASE", "WIFI_PSK", "SENSORD_TOKEN", "SENSORD_OWNER_TOKEN",
		"SENSORD_MQTT_PASSWORD", "SENSORD_URL", "SENSORD_ALERT_WEBHOOK":
		return true
	}
	return false
}

// Restarts is what a change of the named variables needs restarted to
// take effect on the appliance.
type Restarts struct {
	// Appliance: sensord-settings.service applies HOSTNAME, WIFI_*,
	// SSH_PUBKEY*, TIMEZONE and NTP_SERVER again.
	Appliance bool
	// Hostname: avahi-daemon announces the new <HOSTNAME>.local.
	Hostname bool
	// WiFi: wpa_supplicant reads the new network.
	WiFi bool
	// NTP: systemd-timesyncd reads its drop-in at start.
	NTP bool
	// Sensord reads its SENSORD_* settings at start; it restarts after
	// every change, so the settings page shows what it runs with.
	Sensord bool
}

// RestartsFor is what changing names needs restarted; Sensord is
// always true.
func RestartsFor(names []string) Restarts {
	r := Restarts{Sensord: true}
	for _, n := range names {
		switch {
		case n == "HOSTNAME":
			r.Appliance, r.Hostname = true, true
		case strings.HasPrefix(n, "WIFI_"):
			r.Appliance, r.WiFi = true, true
		case n == "NTP_SERVER":
			r.Appliance, r.NTP = true, true
		case !strings.HasPrefix(n, "SENSORD_"):
			r.Appliance = true
		}
	}
	return r
}

// The rules of the appliance's own settings, as sensord-settings applies
// them at boot (image/rootfs/usr/local/sbin/sensord-settings; at boot a
// bad value is skipped with a journal line, here it is refused before it
// is written). A change to one is a change to the other.
var (
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	countryRE  = regexp.MustCompile(`^[A-Za-z]{2}$`)
	pskRE      = regexp.MustCompile(`^[0-9A-Fa-f]{64}$`)
	ntpRE      = regexp.MustCompile(`^[A-Za-z0-9.:-]+( [A-Za-z0-9.:-]+)*$`)
	tzRE       = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}$`)
)

// CheckAppliance checks the appliance's own settings in vals (HOSTNAME,
// WIFI_*, SSH_PUBKEY*, TIMEZONE, NTP_SERVER) and every value's form; the
// error (wrapping ErrValue) names the first bad one and never shows a
// secret's value.
func CheckAppliance(vals map[string]string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrValue}, a...)...)
	}
	for _, k := range sortedKeys(vals) {
		v := vals[k]
		if err := checkValue(v); err != nil {
			if Secret(k) {
				return bad("%s: no double quotes, backslashes or line breaks", k)
			}
			return bad("%s=%s: no double quotes, backslashes or line breaks", k, clip(v))
		}
		if len(v) > MaxValueBytes {
			return bad("%s has more than %d bytes", k, MaxValueBytes)
		}
	}
	if h := vals["HOSTNAME"]; h != "" && !hostnameRE.MatchString(h) {
		return bad("HOSTNAME=%s is not a host name: letters, digits and dashes, at most 63, not starting or ending with a dash", clip(h))
	}
	if c := vals["WIFI_COUNTRY"]; c != "" && !countryRE.MatchString(c) {
		return bad("WIFI_COUNTRY=%s is not a two-letter country code such as GB", clip(c))
	}
	ssid, pass, psk := vals["WIFI_SSID"], vals["WIFI_PASSPHRASE"], vals["WIFI_PSK"]
	if len(ssid) > 32 {
		return bad("WIFI_SSID has %d bytes; a Wi-Fi network's name has at most 32", len(ssid))
	}
	if n := len(pass); pass != "" && (n < 8 || n > 63) {
		return bad("WIFI_PASSPHRASE has %d characters; WPA needs 8 to 63 (empty: an open network)", n)
	}
	if psk != "" && !pskRE.MatchString(psk) {
		return bad("WIFI_PSK is not 64 hex digits")
	}
	for i := 1; i <= SSHKeySlots; i++ {
		k := vals[SSHKeyName(i)]
		if k != "" && !strings.HasPrefix(k, "ssh-") && !strings.HasPrefix(k, "ecdsa-") && !strings.HasPrefix(k, "sk-") {
			return bad("%s does not look like a public key (ssh-ed25519 AAAA...)", SSHKeyName(i))
		}
	}
	if tz := vals["TIMEZONE"]; tz != "" && !tzRE.MatchString(tz) {
		return bad("TIMEZONE=%s is not a time zone name such as Europe/London", clip(tz))
	}
	if ntp := vals["NTP_SERVER"]; ntp != "" && !ntpRE.MatchString(ntp) {
		return bad("NTP_SERVER=%s is not host names or addresses separated by spaces", clip(ntp))
	}
	return nil
}
