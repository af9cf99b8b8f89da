package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	if !Within(10*time.Second, func() bool { return n.Load() == 3 }) {
		t.Fatal("Within gave up on a condition that came true")
	}
}

func TestWithinGivesUpAfterTheDeadline(t *testing.T) {
	t.Setenv(ScaleEnv, "")
	start := time.Now()
	if Within(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("Within reported a condition that never held")
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Fatalf("gave up after %s, before the 30ms deadline", took)
	}
}

func TestScaleStretchesDeadlinesByTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want time.Duration
	}{
		{"", time.Second},
		{"3", 3 * time.Second},
		{"2.5", 2500 * time.Millisecond},
		{"0.1", time.Second},
		{"lots", time.Second},
	} {
		t.Setenv(ScaleEnv, tc.env)
		if got := Scale(time.Second); got != tc.want {
			t.Errorf("%s=%q: Scale(1s) = %s, want %s", ScaleEnv, tc.env, got, tc.want)
		}
	}
}
