package flagenv

import (
	"math"
	"strconv"
	"testing"
)

// FuzzTenths: what Tenths accepts is a plain decimal within its bounds,
// stored as the nearest tenth (strconv's reading of the same text, to
// within float64's error), and its String sets back to the same tenths.
func FuzzTenths(f *testing.F) {
	for _, s := range []string{"21.4", "-0.05", "+3.", ".5", "80", "-40.04", "1e1", "NaN", "0x10", "1_0", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got deci
		v := Tenths[deci]{P: &got, Min: -400, Max: 800}
		if err := v.Set(s); err != nil {
			return
		}
		if got < v.Min || got > v.Max {
			t.Fatalf("%q: %d is outside the bounds", s, got)
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q: accepted, but it is no number: %v", s, err)
		}
		if math.Abs(x*10-float64(got)) > 0.5+1e-9 {
			t.Fatalf("%q: stored %d tenths, the number is %v", s, got, x)
		}
		var back deci
		if err := (Tenths[deci]{P: &back, Min: -400, Max: 800}).Set(v.String()); err != nil || back != got {
			t.Fatalf("%q: String %q sets back to %d (%v), want %d", s, v.String(), back, err, got)
		}
	})
}
