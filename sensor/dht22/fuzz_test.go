package dht22

import (
	"errors"
	"testing"
	"time"

	"sensord/sensor"
)

// edgesFrom turns fuzz bytes into a capture: the first byte's low bit is the
// first edge's direction, every byte after it is the width in µs of the
// pulse before the next edge, so any pulse train can be expressed.
func edgesFrom(data []byte) []Edge {
	if len(data) == 0 {
		return nil
	}
	e := make([]Edge, 0, len(data))
	rising := data[0]&1 == 1
	var t time.Duration
	e = append(e, Edge{T: t, Rising: rising})
	for _, w := range data[1:] {
		t += time.Duration(w) * time.Microsecond
		rising = !rising
		e = append(e, Edge{T: t, Rising: rising})
	}
	return e
}

// FuzzDecode feeds arbitrary pulse trains to the decoder and Diagnose:
// neither may panic, must fail only with the error kinds callers branch on, and a frame
// it accepts must satisfy its own checks.
func FuzzDecode(f *testing.F) {
	// Seeds: a clean frame, a frame with a glitch, a short one.
	for _, o := range []waveOpts{{}, {glitchLow: 5}, {keep: 50}, {drop: 1, release: true}} {
		e := wave(Encode(-101, 652), o)
		b := []byte{0}
		if e[0].Rising {
			b[0] = 1
		}
		for i := 1; i < len(e); i++ {
			b = append(b, byte((e[i].T-e[i-1].T)/time.Microsecond))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		edges := edgesFrom(data)
		tt, h, err := Decode(edges)
		if c := Diagnose(edges, err, Levels{}); c > sensor.CauseNoise || (err == nil && c != sensor.CauseUnknown) {
			t.Fatalf("Diagnose = %v for %v", c, err)
		}
		if err != nil {
			if !errors.Is(err, sensor.ErrShortFrame) && !errors.Is(err, sensor.ErrChecksum) && !errors.Is(err, sensor.ErrOutOfRange) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if tt < MinTemperature || tt > MaxTemperature || h < MinHumidity || h > MaxHumidity {
			t.Fatalf("accepted %s °C %s %%RH out of range", tt, h)
		}
	})
}

// FuzzRoundTrip encodes any 4 data bytes as a waveform with up to ±5 µs
// jitter, a clock 20 % fast to 25 % slow and optional capture faults, and
// checks the decoder gets the exact frame back.
func FuzzRoundTrip(f *testing.F) {
	f.Add(byte(0x02), byte(0x8c), byte(0x80), byte(0x65), uint64(1), byte(5), byte(100), byte(0))
	f.Add(byte(0), byte(0), byte(0), byte(0), uint64(2), byte(0), byte(125), byte(1))
	f.Add(byte(0xff), byte(0xff), byte(0xff), byte(0xff), uint64(3), byte(5), byte(80), byte(2))
	f.Fuzz(func(t *testing.T, a, b, c, d byte, seed uint64, jitter, scale, fault byte) {
		fr := framed(a, b, c, d)
		o := waveOpts{
			jitter: time.Duration(jitter%6) * time.Microsecond,
			seed:   seed,
			scale:  0.8 + float64(scale%46)/100,
		}
		switch fault % 5 {
		case 1:
			o.drop = 1
		case 2:
			o.release = true
		case 3:
			o.glitchLow = 1 + int(seed%40)
		case 4:
			o.drop = 2
		}
		got, err := DecodeFrame(wave(fr, o))
		if err != nil || got != fr {
			t.Fatalf("frame %x with %+v: got %x, %v", fr, o, got, err)
		}
	})
}
