package dht22sim_test

import (
	"errors"
	"testing"
	"time"

	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
)

// TestEveryFailureHasItsCause plays each wiring fault a person meets on
// the simulated line, under both capture strategies, and checks that every
// failed read names the fault's cause.
func TestEveryFailureHasItsCause(t *testing.T) {
	tests := []struct {
		name string
		c    dht22sim.Config
		want sensor.Cause
		// timed: the cause is told from edge timings, which the busy loop
		// blurs whenever a busy machine takes its CPU mid-frame; it is
		// checked on the edge capture (the image's) only.
		timed bool
	}{
		{"a sensor that never answers is no answer", dht22sim.Config{NoResponse: true}, sensor.CauseNoAnswer, false},
		{"a pull-up too weak for a 0 bit's high is a bad signal", dht22sim.Config{SlowRise: 30 * time.Microsecond}, sensor.CauseBadSignal, true},
		{"a pull-up that slows every rise by 20 µs is a bad signal", dht22sim.Config{SlowRise: 20 * time.Microsecond}, sensor.CauseBadSignal, true},
		{"a DHT11 on the line is the wrong model", dht22sim.Config{DHT11: true}, sensor.CauseWrongModel, true},
		{"a line shorted to GND is stuck low", dht22sim.Config{StuckLow: true}, sensor.CauseStuckLow, false},
		{"a line shorted to 3.3 V is stuck high", dht22sim.Config{StuckHigh: true}, sensor.CauseStuckHigh, false},
		{"flipped bits are noise", dht22sim.Config{ErrorRate: 1}, sensor.CauseNoise, true},
	}
	for _, capture := range []struct {
		name  string
		dev   func(testing.TB, dht22sim.Config) (*dht22.Dev, *dht22sim.Sim)
		timed bool
	}{{"edge timestamps", edgeDev, true}, {"busy loop", pinDev, false}} {
		for _, tt := range tests {
			if tt.timed && !capture.timed {
				continue
			}
			t.Run(capture.name+": "+tt.name, func(t *testing.T) {
				d, _ := capture.dev(t, tt.c)
				rs, errs := readN(t, d, 8)
				if len(rs) != 0 {
					t.Fatalf("%d reads succeeded: %v", len(rs), rs)
				}
				told := 0
				for _, err := range errs {
					if errors.Is(err, dht22.ErrLostTiming) {
						// The busy loop lost the CPU on a busy machine:
						// that read says nothing about the wiring.
						if got := sensor.CauseOf(err); got != sensor.CauseUnknown {
							t.Errorf("cause of %q = %v, want unknown", err, got)
						}
						continue
					}
					told++
					if got := sensor.CauseOf(err); got != tt.want {
						t.Errorf("cause of %q = %v, want %v", err, got, tt.want)
					}
				}
				if told == 0 {
					t.Fatalf("every read lost its timing: %v", errs)
				}
			})
		}
	}
}

// TestAHealthyLineHasNoCause: causes are only for failures; a slow rise a
// 0 bit survives still decodes.
func TestAHealthyLineHasNoCause(t *testing.T) {
	d, _ := edgeDev(t, dht22sim.Config{SlowRise: 10 * time.Microsecond})
	if _, errs := readN(t, d, 5); len(errs) != 0 {
		t.Fatalf("%d reads failed, first %v (cause %v)", len(errs), errs[0], sensor.CauseOf(errs[0]))
	}
}
