package sysstat

import (
	"testing"
)

const meminfo = `MemTotal:        3884436 kB
MemFree:          123456 kB
MemAvailable:    2913327 kB
Buffers:           10000 kB
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		loadavg string
		meminfo string
		want    Stats
		wantErr bool
	}{
		{"a normal sample gives load and used percent", "0.52 0.40 0.31 2/301 4242\n", meminfo, Stats{Load1: 0.52, MemUsedPercent: 25}, false},
		{"an idle machine has zero load", "0.00 0.00 0.00 1/100 1\n", "MemTotal: 1000 kB\nMemAvailable: 1000 kB\n", Stats{Load1: 0, MemUsedPercent: 0}, false},
		{"empty loadavg is an error", "", meminfo, Stats{}, true},
		{"a word for the load is an error", "busy 0 0", meminfo, Stats{}, true},
		{"a negative load is an error", "-1 0 0", meminfo, Stats{}, true},
		{"missing MemAvailable is an error", "0.1", "MemTotal: 1000 kB\n", Stats{}, true},
		{"available above total is an error", "0.1", "MemTotal: 10 kB\nMemAvailable: 20 kB\n", Stats{}, true},
		{"zero total is an error", "0.1", "MemTotal: 0 kB\nMemAvailable: 0 kB\n", Stats{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.loadavg), []byte(tt.meminfo))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadOnThisMachine(t *testing.T) {
	s, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.MemUsedPercent <= 0 || s.MemUsedPercent > 100 {
		t.Errorf("memory used %v%% is not a percentage of a running machine", s.MemUsedPercent)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("0.52 0.40 0.31 2/301 4242\n"), []byte(meminfo))
	f.Add([]byte("NaN"), []byte("MemTotal: 1 kB\nMemAvailable: 0 kB"))
	f.Fuzz(func(t *testing.T, la, mi []byte) {
		s, err := Parse(la, mi)
		if err != nil {
			return
		}
		if s.Load1 < 0 || s.MemUsedPercent < 0 || s.MemUsedPercent > 100 {
			t.Fatalf("Parse accepted %q / %q as %+v", la, mi, s)
		}
	})
}
