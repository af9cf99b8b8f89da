package setupap

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The access point's network: the address ESPHome's and Tasmota's setup
// access points use, so a person who knows one knows ours.
var (
	APPrefix  = netip.MustParsePrefix("192.168.4.1/24")
	APAddress = APPrefix.Addr()
)

// APFrequency is channel 1 (2412 MHz), allowed in every country.
const APFrequency = 2412

// APName is the access point's name for the Wi-Fi interface's MAC
// address: sensord- and its last four hex digits, so two Pis set up side
// by side tell apart.
func APName(mac string) string {
	h := strings.ToUpper(strings.ReplaceAll(mac, ":", ""))
	if len(h) < 4 {
		return "sensord-0000"
	}
	return "sensord-" + h[len(h)-4:]
}

// APConfig is wpa_supplicant's configuration for the access point:
// open, or WPA2 with password (8 to 63 characters) when it is set.
func APConfig(ctrlDir, ssid, password, country string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ctrl_interface=%s\n", ctrlDir)
	if countryRE.MatchString(country) {
		fmt.Fprintf(&b, "country=%s\n", strings.ToUpper(country))
	}
	fmt.Fprintf(&b, "network={\n\tssid=%s\n\tmode=2\n\tfrequency=%d\n", hex.EncodeToString([]byte(ssid)), APFrequency)
	if password != "" {
		fmt.Fprintf(&b, "\tkey_mgmt=WPA-PSK\n\tproto=RSN\n\tpairwise=CCMP\n\tgroup=CCMP\n\tpsk=\"%s\"\n", password)
	} else {
		b.WriteString("\tkey_mgmt=NONE\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// StationConfig is wpa_supplicant's configuration to try r's network, as
// sensord-settings writes it for sensord.conf (the SSID in hex, the
// passphrase between the first and last quote), with a control socket
// in ctrlDir for scans.
func StationConfig(ctrlDir string, r Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ctrl_interface=%s\nupdate_config=0\n", ctrlDir)
	if r.Country != "" {
		fmt.Fprintf(&b, "country=%s\n", strings.ToUpper(r.Country))
	}
	if r.SSID == "" {
		return b.String() // scan only
	}
	fmt.Fprintf(&b, "network={\n\tssid=%s\n\tscan_ssid=1\n", hex.EncodeToString([]byte(r.SSID)))
	if r.Passphrase != "" {
		fmt.Fprintf(&b, "\tkey_mgmt=WPA-PSK WPA-PSK-SHA256 SAE\n\tieee80211w=1\n\tpsk=\"%s\"\n", r.Passphrase)
	} else {
		b.WriteString("\tkey_mgmt=NONE\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// APNetwork is systemd-networkd's .network for the access point's
// interface: the Pi's address, and a DHCP server that hands out that
// address as router and DNS server (so every name a phone looks up comes
// to the captive DNS responder).
func APNetwork(iface string) string {
	return fmt.Sprintf(`# written by sensorctl setup while the setup access point is open
[Match]
Name=%s

[Network]
Address=%s
DHCPServer=yes
MulticastDNS=no
LLMNR=no
IPv6AcceptRA=no
LinkLocalAddressing=no

[DHCPServer]
PoolOffset=10
PoolSize=40
EmitRouter=yes
EmitDNS=yes
DNS=%s
DefaultLeaseTimeSec=300
`, iface, APPrefix, APAddress)
}

// Event is what a line of wpa_supplicant's output means to a try.
type Event int

// The events of a try.
const (
	EventNone Event = iota
	// EventConnected: associated, and the WPA handshake (if any) done.
	EventConnected
	// EventWrongKey: the network refused the passphrase.
	EventWrongKey
)

// ParseEvent classifies one line of wpa_supplicant's output (what it
// prints; some events, such as CTRL-EVENT-NETWORK-NOT-FOUND and
// CTRL-EVENT-SCAN-RESULTS, go to its control socket only).
func ParseEvent(line string) Event {
	switch {
	case strings.Contains(line, "CTRL-EVENT-CONNECTED"):
		return EventConnected
	case strings.Contains(line, "CTRL-EVENT-SSID-TEMP-DISABLED") && strings.Contains(line, "reason=WRONG_KEY"),
		strings.Contains(line, "WPA: 4-Way Handshake failed"):
		return EventWrongKey
	}
	return EventNone
}

// MaxScanBytes bounds the scan results read from wpa_cli.
const MaxScanBytes = 64 << 10

// ParseScan parses `wpa_cli scan_results` (a header line, then bssid,
// frequency, signal level, flags and SSID separated by tabs, the SSID
// escaped as wpa_supplicant prints it): each network once (its strongest
// access point), strongest first, hidden ones left out, at most
// MaxNetworks.
func ParseScan(out string) []Network {
	if len(out) > MaxScanBytes {
		out = out[:MaxScanBytes]
	}
	best := map[string]Network{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(strings.TrimRight(line, "\r"), "\t", 5)
		if len(f) != 5 {
			continue
		}
		sig, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		ssid, ok := unescapeSSID(f[4])
		if !ok || ssid == "" {
			continue
		}
		n := Network{SSID: ssid, Signal: sig, Secured: strings.Contains(f[3], "WPA") || strings.Contains(f[3], "WEP") || strings.Contains(f[3], "SAE")}
		if old, seen := best[ssid]; !seen || n.Signal > old.Signal {
			best[ssid] = n
		}
	}
	list := make([]Network, 0, len(best))
	for _, n := range best {
		list = append(list, n)
	}
	slices.SortFunc(list, func(a, b Network) int {
		if a.Signal != b.Signal {
			return b.Signal - a.Signal
		}
		return strings.Compare(a.SSID, b.SSID)
	})
	if len(list) > MaxNetworks {
		list = list[:MaxNetworks]
	}
	return list
}

// unescapeSSID undoes wpa_supplicant's printf_encode: \\, \", \e, \n,
// \r, \t and \xNN. It reports false for a name that is not a valid
// network name (too long, a bad escape).
func unescapeSSID(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '\\', '"':
			b = append(b, s[i])
		case 'e':
			b = append(b, 0x1b)
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'x':
			if i+2 >= len(s) {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			b = append(b, byte(v))
			i += 2
		default:
			return "", false
		}
	}
	if len(b) > MaxSSIDBytes {
		return "", false
	}
	return string(b), true
}
