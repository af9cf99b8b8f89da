package ratelimit

import (
	"testing"
	"time"
)

func TestBucketRefillsAtTheRateUpToTheBurst(t *testing.T) {
	l := New(10, 5)
	t0 := time.Unix(1000, 0)
	n := 0
	for range 100 {
		if l.Allow(t0) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("burst let %d through, want 5", n)
	}
	if !l.Allow(t0.Add(100*time.Millisecond)) || l.Allow(t0.Add(100*time.Millisecond)) {
		t.Error("0.1 s at 10/s should refill exactly one token")
	}
	n = 0
	for range 100 {
		if l.Allow(t0.Add(time.Hour)) {
			n++
		}
	}
	if n != 5 {
		t.Errorf("after an hour %d through, want the burst of 5", n)
	}
}
