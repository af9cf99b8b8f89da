package link

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n           int
		r           float64
		floor, want time.Duration
	}{
		{"the first retry waits between half the start and the start", 1, 0, 0, 500 * time.Millisecond},
		{"with the largest jitter, the whole start", 1, 0.999999, 0, time.Second - time.Microsecond},
		{"each retry doubles", 4, 0, 0, 4 * time.Second},
		{"up to the cap", 40, 0, 0, 30 * time.Second},
		{"a huge count stays at the cap", 1 << 30, 0.5, 0, 45 * time.Second},
		{"never below the floor", 1, 0, time.Second, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Backoff{Min: time.Second, Max: time.Minute, Floor: tc.floor}.Delay(tc.n, tc.r)
			if got.Round(time.Millisecond) != tc.want.Round(time.Millisecond) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
