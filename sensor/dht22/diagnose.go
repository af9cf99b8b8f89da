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
	// clonePreambleMin and clonePreambleMax bound the preamble's period,
	// from the answer's fall to bit 0's fall (80 + 80 µs), with the 30 %
	// clock tolerance the decoder allows: outside them the frame runs on
	// another chip's clock. A fall-to-fall period is what a slow rise (a
	// weak pull-up) leaves alone: it only moves the rising edge between.
	clonePreambleMin = 112 * time.Microsecond
	clonePreambleMax = 208 * time.Microsecond
	// stuckLow is a low no frame has: longer than a whole answer.
	stuckLow = 6 * time.Millisecond
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
//	too few edges, the line still low after the capture       CauseStuckLow
//	one fall and nothing after (level not known)               CauseStuckLow
//	too few edges with a low longer than any answer (6 ms)     CauseStuckLow
//	a whole frame whose preamble period is outside 112..208 µs CauseWrongModel
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
	case len(edges) < minEdges && lv.EndKnown && lv.EndLow,
		len(edges) == 1 && !edges[0].Rising && !lv.EndKnown,
		len(edges) < minEdges && longLow(edges):
		// The line fell (the sensor's answer, or a short) and stayed low
		// past any answer: a sensor that hangs holding it low, or a short
		// to GND that the start pulse only seemed to drive.
		return sensor.CauseStuckLow
	}
	if p, ok := preamble(edges); ok && (p < clonePreambleMin || p > clonePreambleMax) {
		return sensor.CauseWrongModel
	}
	return sensor.CauseBadSignal
}

// longLow reports whether edges hold a low level longer than stuckLow.
func longLow(edges []Edge) bool {
	for i := 1; i < len(edges); i++ {
		if !edges[i-1].Rising && edges[i].Rising && edges[i].T-edges[i-1].T >= stuckLow {
			return true
		}
	}
	return false
}

// isDHT11 reports whether f, which passed its checksum, is laid out as a
// DHT11 sends it: whole humidity and temperature in the high bytes, a zero
// humidity fraction, values within a DHT11's range.
func isDHT11(f Frame) bool {
	return f.sum() == f[4] && f[1] == 0 && f[0] <= dht11MaxHumidity && f[2]&0x7f <= dht11MaxTemperature
}

// preamble returns the period of a whole frame's preamble, from the
// answer's fall to bit 0's fall. ok is false when edges do not end in a
// whole, alternating frame.
func preamble(edges []Edge) (time.Duration, bool) {
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
		return 0, false // the window must start at the answer's fall
	}
	return e[2].T - e[0].T, true
}
