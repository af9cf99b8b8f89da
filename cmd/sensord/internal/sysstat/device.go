package sysstat

import (
	"bytes"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Device is the dashboard's device panel: where to reach the Pi and how
// it is doing.
type Device struct {
	Hostname  string   `json:"hostname"`
	Addresses []string `json:"addresses"`
	Cores     int      `json:"cores"`
	// SoCTemp is the SoC's temperature in degrees C, absent on a board
	// without a thermal zone.
	SoCTemp *float64 `json:"soc_temp,omitempty"`
	WiFi    *WiFi    `json:"wifi,omitempty"` // absent without Wi-Fi
}

// WiFi is the wireless link the Pi is on.
type WiFi struct {
	Interface string  `json:"interface"`
	SignalDBm float64 `json:"signal_dbm"`
}

// thermalZone is where Linux reports the SoC's temperature (millidegrees).
const thermalZone = "/sys/class/thermal/thermal_zone0/temp"

// ReadDevice looks the device up: host name, the addresses of the
// interfaces that are up (not loopback, not link-local), cores, the SoC's
// temperature and the Wi-Fi signal where the board has them.
func ReadDevice() Device {
	d := Device{Cores: runtime.NumCPU(), Addresses: []string{}}
	d.Hostname, _ = os.Hostname()
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, _ := i.Addrs()
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
					d.Addresses = append(d.Addresses, n.IP.String())
				}
			}
		}
	}
	if b, err := os.ReadFile(thermalZone); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			c := v / 1000
			d.SoCTemp = &c
		}
	}
	if b, err := os.ReadFile("/proc/net/wireless"); err == nil {
		d.WiFi = ParseWireless(b)
	}
	return d
}

// ParseWireless reads /proc/net/wireless: two header lines, then one line
// per interface, "wlan0: 0000   70.  -40.  -256 ...", link quality then
// signal level in dBm. It returns the first interface, nil for none.
func ParseWireless(b []byte) *WiFi {
	lines := bytes.Split(b, []byte("\n"))
	for _, l := range lines[min(2, len(lines)):] {
		name, rest, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) < 3 {
			continue
		}
		lvl, err := strconv.ParseFloat(strings.TrimSuffix(f[2], "."), 64)
		if err != nil || math.IsNaN(lvl) || math.IsInf(lvl, 0) {
			continue // JSON has no NaN: /healthz would fail to encode
		}
		return &WiFi{Interface: strings.TrimSpace(string(name)), SignalDBm: lvl}
	}
	return nil
}
