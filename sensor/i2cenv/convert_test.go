package i2cenv

import (
	"testing"

	"periph.io/x/conn/v3/physic"

	"sensord/sensor"
)

func TestTenthsRoundHalfAwayFromZero(t *testing.T) {
	tests := []struct {
		name  string
		milli int64 // milli-degrees Celsius
		want  sensor.Deci
	}{
		{"21.449 C rounds down", 21449, 214},
		{"21.45 C rounds up", 21450, 215},
		{"-5.15 C rounds away from zero", -5150, -52},
		{"-5.149 C rounds towards zero", -5149, -51},
		{"-0.05 C is -0.1", -50, -1},
		{"-0.049 C is 0", -49, 0},
		{"0 C is 0", 0, 0},
		{"-40 C exactly", -40000, -400},
		{"85 C exactly", 85000, 850},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			temp := physic.ZeroCelsius + physic.Temperature(tt.milli)*physic.MilliCelsius
			if got := tenthsCelsius(temp); got != tt.want {
				t.Errorf("tenthsCelsius(%s) = %d, want %d", temp, got, tt.want)
			}
		})
	}
	// 48.25 %RH and 48.2499 %RH.
	if got := tenthsRH(48250 * physic.MilliRH / 100); got != 483 {
		t.Errorf("tenthsRH(48.25%%) = %d, want 483", got)
	}
	if got := tenthsRH(482499 * physic.MicroRH); got != 482 {
		t.Errorf("tenthsRH(48.2499%%) = %d, want 482", got)
	}
}

// The driver computes ZeroCelsius + int16(word) × 0.1 °C.
func TestAM2320SignMagnitude(t *testing.T) {
	asDriver := func(word uint16) physic.Temperature {
		return physic.ZeroCelsius + (physic.Celsius/10)*physic.Temperature(int16(word))
	}
	tests := []struct {
		word uint16
		want sensor.Deci
	}{
		{0x0000, 0},
		{0x00D6, 214},
		{0x7FFF, 32767},
		{0x8000, 0}, // minus zero
		{0x8001, -1},
		{0x8065, -101},
		{0x8190, -400},
		{0xFFFF, -32767},
	}
	for _, tt := range tests {
		if got := tenthsCelsius(am2320SignMagnitude(asDriver(tt.word))); got != tt.want {
			t.Errorf("word %#04x: got %d, want %d", tt.word, got, tt.want)
		}
	}
}
