package testutil

import (
	"fmt"
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

func TestUntilReportsWhatItSawAtTheEnd(t *testing.T) {
	t.Setenv(ScaleEnv, "")
	var n atomic.Int32
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		Until(ft, 20*time.Millisecond, func() bool { n.Add(1); return false }, func() string { return fmt.Sprintf("n=%d", n.Load()) })
	}()
	if want := fmt.Sprintf("after 20ms: n=%d", n.Load()); !ft.failed || ft.msg != want || n.Load() < 2 {
		t.Fatalf("failed %v, message %q; want %q (the count seen at the end)", ft.failed, ft.msg, want)
	}
}

// fakeT records Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic("fatal")
}
