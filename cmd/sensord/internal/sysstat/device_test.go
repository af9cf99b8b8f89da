package sysstat

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestParseWirelessFindsTheFirstInterfacesSignal(t *testing.T) {
	const header = "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n" +
		" face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
	tests := []struct {
		name string
		in   string
		want *WiFi
	}{
		{"one interface", header + " wlan0: 0000   70.  -40.  -256        0      0      0      0      0        0\n", &WiFi{Interface: "wlan0", SignalDBm: -40}},
		{"the first of two", header + " wlan0: 0000   70.  -52.  -256 0 0 0 0 0 0\n wlan1: 0000 10. -90. -256 0 0 0 0 0 0\n", &WiFi{Interface: "wlan0", SignalDBm: -52}},
		{"headers only: no Wi-Fi", header, nil},
		{"a line cut short", header + " wlan0: 0000 70.\n", nil},
		{"a level that is not a number", header + " wlan0: 0000 70. strong -256\n", nil},
		{"a level of NaN, which JSON cannot carry", header + " wlan0: 0000 70. NaN -256\n wlan1: 0000 10. -90. -256\n", &WiFi{Interface: "wlan1", SignalDBm: -90}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseWireless([]byte(tt.in))
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Errorf("ParseWireless = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseWireless(f *testing.F) {
	f.Add([]byte("h\nh\n wlan0: 0000   70.  -40.  -256 0 0\n"))
	f.Add([]byte("\n\n:::"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w := ParseWireless(b)
		if w == nil {
			return
		}
		// What /healthz encodes must be JSON: a finite level, and a name
		// taken from the input.
		if _, err := json.Marshal(w); err != nil || !bytes.Contains(b, []byte(w.Interface)) {
			t.Errorf("ParseWireless(%q) = %+v (%v)", b, w, err)
		}
	})
}

func TestHeapBytesIsTheLiveHeap(t *testing.T) {
	if HeapBytes() == 0 {
		t.Error("HeapBytes = 0 in a running Go program")
	}
}

func TestReadDeviceAlwaysListsAddressesAndCores(t *testing.T) {
	d := ReadDevice()
	if d.Addresses == nil || d.Cores < 1 {
		t.Errorf("ReadDevice = %+v: want a non-nil address list (JSON [] not null) and at least one core", d)
	}
}
