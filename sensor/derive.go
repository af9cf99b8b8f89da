package sensor

import (
	"context"
	"math"
)

// Magnus formula constants for saturation vapour pressure over water,
// e_s(T) = c * exp(a*T / (b + T)) with T in degrees C, as given by Sonntag
// (1990) and used by the WMO's guide: within 0.4 % of the exact curve from
// -45 to 60 C, wider than a DHT22's -40..80 needs where it matters.
const (
	magnusA = 17.62
	magnusB = 243.12 // degrees C
	magnusC = 6.112  // hPa
)

// specificGasConstantVapour is R_v, J/(kg K), for absolute humidity.
const specificGasConstantVapour = 461.5

// DewPoint returns the dew point of air at temperature t (tenths of a
// degree C) and relative humidity rh (tenths of a percent), in tenths of a
// degree C, by inverting the Magnus formula. ok is false for rh <= 0, where
// no dew point exists.
func DewPoint(t, rh Deci) (dp Deci, ok bool) {
	if rh <= 0 {
		return 0, false
	}
	tc := t.Float()
	g := math.Log(min(rh.Float(), 100)/100) + magnusA*tc/(magnusB+tc)
	return roundDeci(magnusB * g / (magnusA - g)), true
}

// AbsoluteHumidity returns the mass of water vapour in a cubic metre of air
// at temperature t (tenths of a degree C) and relative humidity rh (tenths
// of a percent), in tenths of a gram per cubic metre: the vapour pressure
// rh * e_s(T) over R_v * T (the ideal gas law).
func AbsoluteHumidity(t, rh Deci) Deci {
	if rh <= 0 {
		return 0
	}
	tc := t.Float()
	e := min(rh.Float(), 100) / 100 * magnusC * 100 * math.Exp(magnusA*tc/(magnusB+tc)) // Pa
	return roundDeci(e / (specificGasConstantVapour * (tc + 273.15)) * 1000)            // g/m³
}

func roundDeci(v float64) Deci { return Deci(math.Round(v * 10)) }

// Derived is a reading with the values computed from it: the poller's
// consumers get it with DewPoint and AbsoluteHumidity worked out once, so
// none of them computes them again.
type Derived struct {
	Reading
	// DewPoint is the dew point in tenths of a degree C; HasDewPoint is
	// false in dry air (0 %RH), where none exists.
	DewPoint    Deci
	HasDewPoint bool
	// AbsoluteHumidity is in tenths of a gram per cubic metre.
	AbsoluteHumidity Deci
}

// Derive returns r with its derived values.
func Derive(r Reading) Derived {
	dp, ok := DewPoint(r.Temperature, r.Humidity)
	return Derived{Reading: r, DewPoint: dp, HasDewPoint: ok, AbsoluteHumidity: AbsoluteHumidity(r.Temperature, r.Humidity)}
}

// Offsets are calibration corrections added to every reading, the way
// Tasmota's TempOffset/HumOffset and ESPHome's offset filter do it.
type Offsets struct {
	Temperature Deci // tenths of a degree C
	Humidity    Deci // tenths of a percent RH
}

// Apply returns r corrected by o, humidity held within 0..100 %.
func (o Offsets) Apply(r Reading) Reading {
	r.Temperature += o.Temperature
	r.Humidity = min(max(r.Humidity+o.Humidity, 0), 1000)
	return r
}

// Calibrated returns s with o applied to every reading it returns, so every
// consumer downstream (the Poller's filter, publishers, the history) sees
// corrected values and no one applies them twice. With zero offsets it
// returns s itself.
func Calibrated(s Sensor, o Offsets) Sensor {
	if o == (Offsets{}) {
		return s
	}
	return &calibrated{Sensor: s, o: o}
}

type calibrated struct {
	Sensor
	o Offsets
}

func (c *calibrated) Read(ctx context.Context) (Reading, error) {
	r, err := c.Sensor.Read(ctx)
	if err != nil {
		return r, err
	}
	return c.o.Apply(r), nil
}
