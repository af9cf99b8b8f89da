package dht22

import (
	"testing"
	"time"

	"sensord/sensor"
)

func TestDiagnose(t *testing.T) {
	good := Encode(214, 482)
	dht11 := Frame{45, 0, 21, 0, 66}
	tests := []struct {
		name  string
		edges []Edge
		err   error
		lv    Levels
		want  sensor.Cause
	}{
		{"a read too soon has no cause on the line", nil, errorf(sensor.ErrTooSoon, "x"), Levels{}, sensor.CauseUnknown},
		{"a capture that lost its timing is the host's, not the wiring's", wave(good, waveOpts{}), &dhtError{kind: sensor.ErrTimeout, msg: "x", lost: true}, Levels{}, sensor.CauseUnknown},
		{"no edge and the line high is no answer", nil, errorf(sensor.ErrTimeout, "x"), Levels{EndKnown: true}, sensor.CauseNoAnswer},
		{"no edge and the line low is stuck low", nil, errorf(sensor.ErrTimeout, "x"), Levels{EndKnown: true, EndLow: true}, sensor.CauseStuckLow},
		{"high while driven low is stuck high", nil, errorf(sensor.ErrTimeout, "x"), Levels{HeldHigh: true}, sensor.CauseStuckHigh},
		{"one fall and nothing after is stuck low", wave(good, waveOpts{keep: 1}), errorf(sensor.ErrTimeout, "x"), Levels{}, sensor.CauseStuckLow},
		{"a few edges and the line low after is stuck low", wave(good, waveOpts{keep: 3}), errorf(sensor.ErrTimeout, "x"), Levels{EndKnown: true, EndLow: true}, sensor.CauseStuckLow},
		{"a fall and a rise 20 ms later is stuck low", []Edge{{T: 400 * time.Microsecond}, {T: 20400 * time.Microsecond, Rising: true}}, errorf(sensor.ErrTimeout, "x"), Levels{EndKnown: true}, sensor.CauseStuckLow},
		{"a few edges, then the line high, is a bad signal", wave(good, waveOpts{keep: 3}), errorf(sensor.ErrTimeout, "x"), Levels{EndKnown: true}, sensor.CauseBadSignal},
		{"slow rises that keep the preamble's period are a bad signal", slowed(wave(good, waveOpts{}), 24*time.Microsecond), errorf(sensor.ErrShortFrame, "x"), Levels{}, sensor.CauseBadSignal},
		{"a checksum mismatch is noise", wave(good, waveOpts{}), errorf(sensor.ErrChecksum, "x"), Levels{}, sensor.CauseNoise},
		{"a DHT11's frame out of range is the wrong model", wave(dht11, waveOpts{}), errorf(sensor.ErrOutOfRange, "x"), Levels{}, sensor.CauseWrongModel},
		{"another frame out of range is not told", wave(Frame{0xff, 0xff, 0, 0, 0xfe}, waveOpts{}), errorf(sensor.ErrOutOfRange, "x"), Levels{}, sensor.CauseUnknown},
		{"half a frame is a bad signal", wave(good, waveOpts{keep: 40}), errorf(sensor.ErrShortFrame, "x"), Levels{}, sensor.CauseBadSignal},
		{"a whole frame on a clock 45 % slow is another model", wave(good, waveOpts{scale: 1.45}), errorf(sensor.ErrShortFrame, "x"), Levels{}, sensor.CauseWrongModel},
		{"a whole frame on a clock 35 % fast is another model", wave(good, waveOpts{scale: 0.65}), errorf(sensor.ErrShortFrame, "x"), Levels{}, sensor.CauseWrongModel},
		{"a whole frame at DHT22 timing that failed is a bad signal", wave(good, waveOpts{jitter: 2 * time.Microsecond, seed: 1}), errorf(sensor.ErrShortFrame, "x"), Levels{}, sensor.CauseBadSignal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Diagnose(tt.edges, tt.err, tt.lv); got != tt.want {
				t.Errorf("Diagnose = %v, want %v", got, tt.want)
			}
		})
	}
}

// slowed delays every rising edge by d, as a weak pull-up does.
func slowed(e []Edge, d time.Duration) []Edge {
	out := make([]Edge, len(e))
	for i, x := range e {
		if x.Rising {
			x.T += d
		}
		out[i] = x
	}
	return out
}
