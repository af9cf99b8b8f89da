package cloudinit

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds the reader arbitrary files: it must never panic, every
// refusal must be a one-line *Error, and whatever it accepts must be what
// sensord.conf and wpa_supplicant can take.
// The seed corpus is in testdata/fuzz/FuzzParse (the golden files and
// broken variants of them).
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"imager-2.0.11/hidden", "imager-2.0.11/open", "imager-1.9.6/hidden", "imager-1.9.6/open"} {
		s := readSeed(f, filepath.Join("testdata", dir))
		f.Add(s.UserData, s.NetworkConfig, s.MetaData, s.Cmdline)
	}
	f.Fuzz(func(t *testing.T, ud, nc, md []byte, cmd string) {
		st, err := Parse(Seed{UserData: ud, NetworkConfig: nc, MetaData: md, Cmdline: cmd})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("refusal %q is not a one-line *Error", err)
			}
			return
		}
		if st.Hostname != "" && !hostnameRE.MatchString(st.Hostname) {
			t.Fatalf("accepted host name %q", st.Hostname)
		}
		if st.Country != "" && !countryRE.MatchString(st.Country) {
			t.Fatalf("accepted country %q", st.Country)
		}
		if len(st.SSHKeys) > MaxSSHKeys {
			t.Fatalf("%d keys", len(st.SSHKeys))
		}
		for _, k := range st.SSHKeys {
			if strings.ContainsAny(k, "\r\n") {
				t.Fatalf("accepted key %q", k)
			}
		}
		if w := st.WiFi; w != nil {
			if w.SSID == "" || len(w.SSID) > maxSSIDBytes || !utf8.ValidString(w.SSID) {
				t.Fatalf("accepted SSID %q", w.SSID)
			}
			if w.PSK != "" && (w.Passphrase != "" || !hexKeyRE.MatchString(w.PSK)) {
				t.Fatalf("accepted key %q with passphrase %q", w.PSK, w.Passphrase)
			}
		}
	})
}
