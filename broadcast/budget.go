package broadcast

import "sync/atomic"

// DefaultBudget is the memory every client together may make a server hold
// in partial messages (frames whose payload is still arriving) and queued
// session replies. A Pi Zero 2 W has 512 MiB for everything; 32 MiB of
// buffers is what 500 clients each sending a whole 64 KiB message at once
// need, and far more than sensord's own clients ever hold (their frames are
// a few hundred bytes). Share one Budget between the servers of a process
// (ServerOpts.Budget) so that the bound holds for all paths together.
const DefaultBudget = 32 << 20

// Budget bounds the bytes that clients can make one or more servers hold:
// what the frame readers have allocated for messages still arriving, and
// the session replies queued for clients that have not read them yet. A
// reader that cannot get room closes its client with 1013 (try again
// later); a reply that cannot is dropped. Both are counted (Refused).
// Safe from any goroutine.
type Budget struct {
	limit   int64
	used    atomic.Int64  // bytes taken and not given back; <= limit
	refused atomic.Uint64 // takes that would have gone over limit
}

// NewBudget returns a budget of limit bytes (<= 0: DefaultBudget).
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		limit = DefaultBudget
	}
	return &Budget{limit: limit}
}

// take reserves n bytes; false (counted) when that would pass the limit.
func (b *Budget) take(n int64) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			b.refused.Add(1)
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n bytes taken before.
func (b *Budget) give(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used is the bytes held now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Refused counts the allocations and replies the budget turned down.
func (b *Budget) Refused() uint64 { return b.refused.Load() }

// memory is a Budget as the engine's fanout.Memory.
type memory struct{ b *Budget }

func (m memory) Take(n int64) bool { return m.b.take(n) }
func (m memory) Give(n int64)      { m.b.give(n) }
