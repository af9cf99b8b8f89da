package dht22

import (
	"errors"
	"time"

	"sensord/sensor"
)

// Diagnosis limits: how far a whole frame's timing may stray before it is
// not a DHT22's.
const (
	// frameEdges is a whole answer: the response's falling edge, the
	// preamble's two, 40 bits of two and the release.
	frameEdges = 84
	// cloneLowMin and cloneLowMax bound the mean bit low of a DHT22
	// (50 µs nominal) with the 30 % clock tolerance the decoder allows;
	// a whole frame outside them is another chip's timing.
	cloneLowMin = 35 * time.Microsecond
	cloneLowMax = 65 * time.Microsecond
	// dht11MaxHumidity and dht11MaxTemperature bound a DHT11 frame's whole
	// bytes: 20-90 %RH and 0-50 °C by its datasheet, with room for clones.
	dht11MaxHumidity    = 100
	dht11MaxTemperature = 80
)

// Levels is what a capture saw of the line's level besides its edges. A
// capture fills in what its line can tell: the busy loop reads the pin; the
// edge capture reads it when its line implements LevelReader.
type Levels struct {
	// HeldHigh: the line read high while the host drove it low, so
	// something else holds it high.
	HeldHigh bool
	// EndKnown and EndLow: the line's level after a capture that saw too
	// few edges.
	EndKnown, EndLow bool
}

// LevelReader is implemented by an EdgeLine that can read the line's level
// (the GPIO character device can); the capture uses it to tell a line
// stuck low or high from one where nothing answers.
type LevelReader interface {
	Level() (high bool, err error)
}

// Diagnose tells the likely cause of a failed read from the edges its
// capture saw, the read's error and the levels the capture read. It is
// pure; the first row that matches wins:
//
//	err is none of the sensor kinds (a line error, too soon)  CauseUnknown
//	the capture lost its timing (ErrLostTiming)               CauseUnknown
//	the line read high while driven low                       CauseStuckHigh
//	no edge, the line low after                               CauseStuckLow
//	no edge                                                   CauseNoAnswer
//	a checksum mismatch                                       CauseNoise
//	out of range, and the frame has a DHT11's layout          CauseWrongModel
//	out of range otherwise                                    CauseUnknown
//	at most the answer's first fall, then nothing             CauseStuckLow
//	a whole frame whose mean bit low is outside 35..65 µs     CauseWrongModel
//	anything else (edges missing, lost pulses, ambiguous)     CauseBadSignal
func Diagnose(edges []Edge, err error, lv Levels) sensor.Cause {
	if !errors.Is(err, sensor.ErrTimeout) && !errors.Is(err, sensor.ErrShortFrame) &&
		!errors.Is(err, sensor.ErrChecksum) && !errors.Is(err, sensor.ErrOutOfRange) ||
		errors.Is(err, ErrLostTiming) {
		return sensor.CauseUnknown
	}
	switch {
	case lv.HeldHigh:
		return sensor.CauseStuckHigh
	case len(edges) == 0 && lv.EndKnown && lv.EndLow:
		return sensor.CauseStuckLow
	case len(edges) == 0:
		return sensor.CauseNoAnswer
	case errors.Is(err, sensor.ErrChecksum):
		return sensor.CauseNoise
	case errors.Is(err, sensor.ErrOutOfRange):
		if f, ferr := DecodeFrame(edges); ferr == nil && isDHT11(f) {
			return sensor.CauseWrongModel
		}
		return sensor.CauseUnknown
	case len(edges) == 1 && !edges[0].Rising:
		// The line fell (the sensor's answer, or a short) and never rose:
		// a sensor that hangs holding it low, or a short to GND that the
		// start pulse only seemed to drive.
		return sensor.CauseStuckLow
	}
	if low, ok := meanBitLow(edges); ok && (low < cloneLowMin || low > cloneLowMax) {
		return sensor.CauseWrongModel
	}
	return sensor.CauseBadSignal
}

// isDHT11 reports whether f, which passed its checksum, is laid out as a
// DHT11 sends it: whole humidity and temperature in the high bytes, a zero
// humidity fraction, values within a DHT11's range.
func isDHT11(f Frame) bool {
	return f.sum() == f[4] && f[1] == 0 && f[0] <= dht11MaxHumidity && f[2]&0x7f <= dht11MaxTemperature
}

// meanBitLow returns the mean width of the 40 bit lows of a whole frame:
// the last 80 levels before the release alternate low/high. ok is false
// when edges do not make a whole, alternating frame.
func meanBitLow(edges []Edge) (time.Duration, bool) {
	if len(edges) < frameEdges {
		return 0, false
	}
	e := edges[len(edges)-frameEdges:]
	for i := 1; i < len(e); i++ {
		if e[i].Rising == e[i-1].Rising || e[i].T < e[i-1].T {
			return 0, false
		}
	}
	if e[0].Rising {
		return 0, false // the window must start at the response's fall
	}
	// e[2] is bit 0's falling edge; bit j's low runs e[2+2j]..e[3+2j].
	var sum time.Duration
	for j := range 40 {
		sum += e[3+2*j].T - e[2+2*j].T
	}
	return sum / 40, true
}
