package link

import "time"

// Backoff is a link's retry delay: exponential from Min, capped at Max,
// jittered, and never below Floor.
type Backoff struct {
	Min, Max time.Duration
	// Floor is the shortest wait whatever the jitter draws: a link that
	// must not hammer its peer sets it to Min.
	Floor time.Duration
}

// Delay is the wait before retry n (n >= 1): Min doubled n-1 times up to
// Max, drawn from its upper half, [d/2, d], with r in [0,1) (a random
// number; tests pass a fixed one), so that a house of devices does not
// retry in step; and never below Floor.
func (b Backoff) Delay(n int, r float64) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return max(d/2+time.Duration(r*float64(d/2)), b.Floor)
}
