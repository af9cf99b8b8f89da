package timesync

import "time"

// Hold keeps values measured while the clock is not trusted, each with
// the monotonic time it was taken at, up to a bound; beyond it the oldest
// goes (counted), since the newest readings matter most to someone who
// sets the clock late.
type Hold[T any] struct {
	max     int
	buf     []held[T] // a ring once full: next is the oldest's place
	next    int
	dropped uint64
}

type held[T any] struct {
	v    T
	mono time.Duration
}

// NewHold returns a hold of at most limit values (at least 1).
func NewHold[T any](limit int) *Hold[T] {
	return &Hold[T]{max: max(limit, 1)}
}

// Add keeps v, taken at monotonic time mono.
func (h *Hold[T]) Add(v T, mono time.Duration) {
	if len(h.buf) < h.max {
		h.buf = append(h.buf, held[T]{v, mono})
		return
	}
	h.buf[h.next] = held[T]{v, mono}
	h.next = (h.next + 1) % h.max
	h.dropped++
}

// Len is how many values are held.
func (h *Hold[T]) Len() int { return len(h.buf) }

// Dropped is how many values the bound has pushed out.
func (h *Hold[T]) Dropped() uint64 { return h.dropped }

// Drain hands every held value to fn, oldest first, with its wall time as
// the trusted clock puts it and the monotonic time it was taken at: wall
// and mono are the two clocks read at one moment, so a value taken at
// monotonic m happened at wall - (mono - m). The hold is empty afterwards.
func (h *Hold[T]) Drain(wall time.Time, mono time.Duration, fn func(v T, at time.Time, taken time.Duration)) {
	for i := range h.buf {
		e := h.buf[(h.next+i)%len(h.buf)]
		fn(e.v, Stamp(wall, mono, e.mono), e.mono)
	}
	h.buf, h.next = nil, 0
}

// Stamp is the wall time of a moment at monotonic time at, given the two
// clocks read together (wall, mono).
func Stamp(wall time.Time, mono, at time.Duration) time.Time {
	return wall.Round(0).Add(at - mono)
}
