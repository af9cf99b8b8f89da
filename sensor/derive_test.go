package sensor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Reference values from published psychrometric tables (dew point) and the
// saturation vapour density table of water (absolute humidity), not from
// this formula: the Magnus approximation must stay within tol of them.
func TestDewPointMatchesPsychrometricTables(t *testing.T) {
	for _, tc := range []struct {
		name  string
		t, rh Deci
		want  Deci
	}{
		{"room air: 20 C at 50 %", 200, 500, 93},
		{"a warm day: 25 C at 60 %", 250, 600, 167},
		{"humid summer: 30 C at 70 %", 300, 700, 239},
		{"saturated air is at its dew point", 150, 1000, 150},
		{"freezing and saturated", 0, 1000, 0},
		{"below zero: -10 C at 80 %", -100, 800, -128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := DewPoint(tc.t, tc.rh)
			if !ok || got < tc.want-1 || got > tc.want+1 {
				t.Fatalf("DewPoint(%s C, %s %%) = %s, %v; want %s +- 0.1", tc.t, tc.rh, got, ok, tc.want)
			}
		})
	}
	if _, ok := DewPoint(200, 0); ok {
		t.Fatal("DewPoint at 0 % RH reported a value; dry air has none")
	}
}

func TestAbsoluteHumidityMatchesSaturationVapourDensity(t *testing.T) {
	for _, tc := range []struct {
		name  string
		t, rh Deci
		want  Deci // tenths of g/m³
	}{
		{"saturated at 0 C", 0, 1000, 48},
		{"saturated at 10 C", 100, 1000, 94},
		{"saturated at 20 C", 200, 1000, 173},
		{"saturated at 30 C", 300, 1000, 304},
		{"half saturated at 20 C", 200, 500, 86},
		{"dry air", 200, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AbsoluteHumidity(tc.t, tc.rh)
			if got < tc.want-2 || got > tc.want+2 {
				t.Fatalf("AbsoluteHumidity(%s C, %s %%) = %s g/m³, want %s +- 0.2", tc.t, tc.rh, got, tc.want)
			}
		})
	}
}

type fixed struct {
	r   Reading
	err error
}

func (f fixed) Read(context.Context) (Reading, error) { return f.r, f.err }
func (f fixed) String() string                        { return "fixed" }
func (f fixed) Halt() error                           { return nil }

func TestCalibrationOffsetsApplyOnceAndHumidityStaysWithin0To100(t *testing.T) {
	now := time.Unix(1763856000, 0)
	for _, tc := range []struct {
		name      string
		in        Reading
		o         Offsets
		wantT, wH Deci
	}{
		{"both offsets add", Reading{Temperature: 214, Humidity: 482}, Offsets{-5, 30}, 209, 512},
		{"humidity clamps at 100", Reading{Temperature: 214, Humidity: 990}, Offsets{0, 50}, 214, 1000},
		{"humidity clamps at 0", Reading{Temperature: 214, Humidity: 20}, Offsets{0, -50}, 214, 0},
		{"temperature may cross zero", Reading{Temperature: 3, Humidity: 500}, Offsets{-10, 0}, -7, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Time = now
			s := Calibrated(fixed{r: tc.in}, tc.o)
			got, err := s.Read(context.Background())
			if err != nil || got.Temperature != tc.wantT || got.Humidity != tc.wH || !got.Time.Equal(now) {
				t.Fatalf("got %+v, %v; want %s C, %s %%", got, err, tc.wantT, tc.wH)
			}
			if s.String() != "fixed" {
				t.Fatalf("String() = %q, want the wrapped sensor's", s.String())
			}
		})
	}
	if s := Calibrated(fixed{}, Offsets{}); s != (fixed{}) {
		t.Fatal("zero offsets should return the sensor itself")
	}
	if _, err := Calibrated(fixed{err: ErrTimeout}, Offsets{Temperature: 1}).Read(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a failed read's error is lost: %v", err)
	}
}

func TestDeriveCarriesTheReadingAndItsDerivedValues(t *testing.T) {
	now := time.Unix(1763856000, 0)
	t.Run("moist air has a dew point", func(t *testing.T) {
		r := Reading{Temperature: 214, Humidity: 482, Time: now}
		got := Derive(r)
		dp, _ := DewPoint(214, 482)
		want := Derived{Reading: r, DewPoint: dp, HasDewPoint: true, AbsoluteHumidity: AbsoluteHumidity(214, 482)}
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("dry air has none", func(t *testing.T) {
		if got := Derive(Reading{Temperature: 214, Time: now}); got.HasDewPoint || got.AbsoluteHumidity != 0 {
			t.Fatalf("got %+v, want no dew point and 0 g/m³", got)
		}
	})
}
