// Package testutil holds what sensord's tests share to hold on a busy
// machine: waiting on an observable fact with a generous deadline instead
// of sleeping, and deadlines that stretch with the machine's load.
package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// ScaleEnv names the environment variable that multiplies every deadline
// (Scale); `make test-stress` sets it, since a CPU hog on every core makes
// each step several times slower.
const ScaleEnv = "SENSORD_TEST_SCALE"

// pollMax is the longest pause between two looks at a condition: short
// enough that a wait ends soon after the fact, long enough that polling
// costs nothing next to the work it waits for.
const pollMax = 20 * time.Millisecond

// Scale returns d times $SENSORD_TEST_SCALE (a number >= 1; anything else
// counts as 1).
func Scale(d time.Duration) time.Duration {
	f, err := strconv.ParseFloat(os.Getenv(ScaleEnv), 64)
	if err != nil || f < 1 {
		return d
	}
	return time.Duration(float64(d) * f)
}

// Until polls cond until it returns true, or fails the test once
// Scale(within) has passed, with what() (the fact that never came, as
// seen at the end). It returns as soon as cond holds.
func Until(t testing.TB, within time.Duration, cond func() bool, what func() string) {
	t.Helper()
	if !Within(within, cond) {
		t.Fatalf("after %s: %s", Scale(within), what())
	}
}

// Within polls cond until it returns true (true) or Scale(within) has
// passed (false), for callers that report failure themselves.
func Within(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(Scale(within))
	pause := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, pollMax)
	}
}
