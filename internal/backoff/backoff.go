// Package backoff is the tree's one retry delay: exponential, capped and
// jittered, for every link that retries (the MQTT bridge, client mode,
// the alert webhook).
package backoff

import "time"

// Delay is the wait before retry n (n >= 1) for a link that starts at lo
// and doubles up to hi: drawn from the upper half, [d/2, d], with r in
// [0,1) (a random number; tests pass a fixed one), so that a house of
// devices does not retry in step; and never below floor.
func Delay(n int, lo, hi, floor time.Duration, r float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return max(d/2+time.Duration(r*float64(d/2)), floor)
}
