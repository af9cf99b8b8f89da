// Package ratelimit is a token bucket: what keeps a flood from outside
// (broker messages for the dashboards, pushes for every browser) from
// reaching every client at the rate it arrives.
//
// # Concurrency
//
// A Bucket is safe from any goroutine.
package ratelimit

import (
	"sync"
	"time"
)

// Bucket holds up to Burst tokens and gains Rate a second; each allowed
// event takes one.
type Bucket struct {
	mu     sync.Mutex // guards tokens and last
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// New returns a full bucket of burst tokens that refills at rate a
// second.
func New(rate, burst int) *Bucket {
	return &Bucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst)}
}

// Allow takes one token at now, if there is one.
func (l *Bucket) Allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		if dt := now.Sub(l.last).Seconds(); dt > 0 {
			l.tokens = min(l.burst, l.tokens+dt*l.rate)
		}
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
