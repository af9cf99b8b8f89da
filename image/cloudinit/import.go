package cloudinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sensord/image/settings"
	"sensord/internal/atomicfile"
)

// Seed files on the boot partition, and what Import renames them to once
// it has carried them over, so that the next boot does not import again
// and a later edit of sensord.conf is the one that counts.
const (
	UserDataFile      = "user-data"
	NetworkConfigFile = "network-config"
	MetaDataFile      = "meta-data"
	CmdlineFile       = "cmdline.txt"
	DoneSuffix        = ".imported"
)

// Report says what an Import did, one line each, for the journal.
type Report struct {
	Found    []string // the seed files there were
	Imported []string // what went into sensord.conf, in words
	Ignored  []string // what did not, and why
	Renamed  []string // "user-data -> user-data.imported"
}

// Lines is the report in words.
func (r Report) Lines() []string {
	if len(r.Found) == 0 {
		return []string{"no Raspberry Pi Imager settings (user-data, network-config) on the boot partition"}
	}
	var out []string
	for _, l := range r.Imported {
		out = append(out, "imported: "+l)
	}
	for _, l := range r.Ignored {
		out = append(out, "ignored: "+l)
	}
	return append(out, "marked done: "+strings.Join(r.Renamed, ", "))
}

// Import carries the settings of the seed in dir (the boot partition)
// over into the settings file conf, once: it reads and checks every file
// first, writes conf whole (or not at all), then renames the seed files
// with DoneSuffix. With no user-data and no network-config it does
// nothing. A seed that does not read (*Error) leaves conf and the files
// as they were.
func Import(dir, conf string) (Report, error) {
	var r Report
	var s Seed
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{UserDataFile, &s.UserData}, {NetworkConfigFile, &s.NetworkConfig}, {MetaDataFile, &s.MetaData}} {
		b, err := readBounded(filepath.Join(dir, f.name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return r, err
		}
		*f.dst = b
		r.Found = append(r.Found, f.name)
	}
	if s.UserData == nil && s.NetworkConfig == nil {
		r.Found = nil
		return r, nil
	}
	if b, err := readBounded(filepath.Join(dir, CmdlineFile)); err == nil {
		s.Cmdline = string(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	st, err := Parse(s)
	if err != nil {
		return r, err
	}
	set, unset, imported, ignored := changes(st)
	r.Imported, r.Ignored = imported, append(ignored, st.Ignored...)

	old, err := readBounded(conf)
	if errors.Is(err, os.ErrNotExist) {
		var b strings.Builder
		if err := settings.Render(&b, settings.Appliance(), nil); err != nil {
			return r, err
		}
		old, err = []byte(b.String()), nil
	}
	if err != nil {
		return r, err
	}
	edited, err := settings.Edit(old, settings.Appliance(), set, unset)
	if err != nil {
		return r, fmt.Errorf("cloudinit: %w", err)
	}
	if err := atomicfile.WriteFile(conf, edited, 0o600); err != nil {
		return r, err
	}
	for _, name := range r.Found {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, name+DoneSuffix)); err != nil {
			return r, fmt.Errorf("cloudinit: marking %s done: %w", name, err)
		}
		r.Renamed = append(r.Renamed, name+" -> "+name+DoneSuffix)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return r, fmt.Errorf("cloudinit: sync %s: %w", dir, err)
		}
	}
	return r, nil
}

// readBounded reads a file of at most MaxFileBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cloudinit: %w", err)
	}
	if len(b) > MaxFileBytes {
		return nil, &Error{File: filepath.Base(path), Msg: fmt.Sprintf("more than the %d bytes this reader takes", MaxFileBytes), Kind: ErrTooLarge}
	}
	return b, nil
}

// changes turns the settings into sensord.conf's variables: those to set,
// those to clear (the other half of the Wi-Fi password, SSH key slots
// Imager's keys do not fill), and the report's lines.
func changes(st Settings) (set map[string]string, unset, imported, ignored []string) {
	set = map[string]string{}
	if st.Hostname != "" {
		set["HOSTNAME"] = st.Hostname
		imported = append(imported, "HOSTNAME="+st.Hostname)
	}
	if st.Country != "" {
		set["WIFI_COUNTRY"] = st.Country
		imported = append(imported, "WIFI_COUNTRY="+st.Country)
	}
	if w := st.WiFi; w != nil {
		set["WIFI_SSID"] = w.SSID
		what := fmt.Sprintf("WIFI_SSID=%q", w.SSID)
		if w.Hidden {
			what += " (a hidden network: the appliance always asks for it by name)"
		}
		imported = append(imported, what)
		switch {
		case w.PSK != "":
			set["WIFI_PSK"] = w.PSK
			unset = append(unset, "WIFI_PASSPHRASE")
			imported = append(imported, "WIFI_PSK (the key Imager computed from the passphrase; WPA2 only: a network that allows WPA3 only needs WIFI_PASSPHRASE in sensord.conf)")
		case w.Passphrase != "":
			set["WIFI_PASSPHRASE"] = w.Passphrase
			unset = append(unset, "WIFI_PSK")
			imported = append(imported, "WIFI_PASSPHRASE")
		default:
			unset = append(unset, "WIFI_PASSPHRASE", "WIFI_PSK")
			imported = append(imported, "an open network (no password)")
		}
	}
	if len(st.SSHKeys) > 0 {
		for i := 1; i <= settings.SSHKeySlots; i++ {
			if i <= len(st.SSHKeys) {
				set[settings.SSHKeyName(i)] = st.SSHKeys[i-1]
				imported = append(imported, fmt.Sprintf("%s: SSH key %q for root", settings.SSHKeyName(i), keyLabel(st.SSHKeys[i-1])))
			} else {
				unset = append(unset, settings.SSHKeyName(i))
			}
		}
		for _, k := range st.SSHKeys[min(len(st.SSHKeys), settings.SSHKeySlots):] {
			ignored = append(ignored, fmt.Sprintf("SSH key %q: sensord.conf holds %d keys", keyLabel(k), settings.SSHKeySlots))
		}
	}
	if st.TimeZone != "" {
		set["TIMEZONE"] = st.TimeZone
		imported = append(imported, "TIMEZONE="+st.TimeZone)
	}
	return set, unset, imported, ignored
}

// keyLabel names a key by its type and comment, not its bits.
func keyLabel(k string) string {
	f := strings.Fields(k)
	if len(f) > 2 {
		return f[0] + " " + strings.Join(f[2:], " ")
	}
	return f[0]
}
