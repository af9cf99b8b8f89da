package mqtt

import (
	"sync"
	"time"
)

// queue holds the readings not yet published, at most cap of them; a push
// into a full queue drops the oldest. It is a ring under a mutex: push is
// O(1) and the lock is never held across I/O, so Publish never waits on
// the network.
type queue struct {
	mu      sync.Mutex    // guards the fields below
	buf     []Publication // ring storage, len(buf) == capacity
	head    int           // index of the oldest entry
	n       int           // entries held
	dropped uint64        // readings pushed out by newer ones
	// firstDropped is the time of the oldest reading ever dropped: where
	// a back-fill starts when nothing was delivered before the drops.
	firstDropped time.Time
}

func newQueue(capacity int) *queue { return &queue{buf: make([]Publication, capacity)} }

// push adds r as the newest; it reports whether an older entry was dropped.
func (q *queue) push(r Publication) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == len(q.buf) {
		q.noteDrop(q.buf[q.head].Time)
		q.buf[q.head] = Publication{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.dropped++
		q.buf[(q.head+q.n)%len(q.buf)] = r
		q.n++
		return true
	}
	q.buf[(q.head+q.n)%len(q.buf)] = r
	q.n++
	return false
}

// takeAll removes and returns every entry, oldest first.
func (q *queue) takeAll() []Publication {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Publication, q.n)
	for i := range q.n {
		j := (q.head + i) % len(q.buf)
		out[i] = q.buf[j]
		q.buf[j] = Publication{}
	}
	q.head, q.n = 0, 0
	return out
}

// putBack returns rs (oldest first) to the front of the queue, ahead of
// anything pushed since they were taken; what does not fit is dropped from
// the old end and counted.
func (q *queue) putBack(rs []Publication) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := len(rs) - 1; i >= 0; i-- {
		if q.n == len(q.buf) {
			q.dropped += uint64(i + 1)
			q.noteDrop(rs[0].Time)
			return
		}
		q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
		q.buf[q.head] = rs[i]
		q.n++
	}
}

// noteDrop keeps t if it is the oldest dropped so far (a reading without
// a time cannot be found in a history); q.mu is held.
func (q *queue) noteDrop(t time.Time) {
	if t.IsZero() {
		return
	}
	if q.firstDropped.IsZero() || t.Before(q.firstDropped) {
		q.firstDropped = t
	}
}

// oldestDropped is the time of the oldest reading ever dropped (zero
// while none was).
func (q *queue) oldestDropped() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.firstDropped
}

func (q *queue) stats() (held int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.dropped
}
