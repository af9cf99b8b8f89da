package fanout

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Ring is a fixed-size broadcast ring: publishers never wait for readers,
// and every reader follows it with its own cursor. A reader that falls a
// whole ring behind notices (each slot carries the sequence it holds) and
// learns exactly how many values it lost.
//
// Sequences start at 1; slot i holds sequences s with s&mask == i.
//
// Values are stored as pointers so that a slot can be read and written with
// single-word atomics (no torn reads, no locks, no allocation in the ring).
// A published value is immutable: neither the publisher nor a reader may
// change *v after Publish.
type Ring[T any] struct {
	mask  uint64
	slots []slot[T]

	// No cache-line padding around last and pending: BenchmarkRingPublish
	// shows no false sharing between them (it does not move with
	// cpu.CacheLinePad).

	// last is the last claimed sequence (0: none yet). Written by every
	// publisher with Add (the one claim point), read by readers to find the
	// newest sequence when they have been lapped. Invariant: every
	// sequence <= last has been claimed by exactly one publisher.
	last atomic.Uint64

	// kick (capacity 1) tells the waker (the one goroutine that turns
	// publishes into reads: the Engine's loop) that something was
	// published. Publishers never wake readers themselves: that costs
	// O(readers), and publish must not grow with the subscriber count.
	// pending is true from a publisher's kick until the waker takes it;
	// it keeps publishers off the channel while a wakeup is already due.
	kick    chan struct{}
	pending atomic.Bool
}

// slot holds one value and the sequence it belongs to.
//
// state is written by publishers (CAS only, and only ever forwards, except
// the odd->even step of one sequence) and read by readers:
//
//	state == 2*s    the slot holds sequence s (val is s's value)
//	state == 2*s+1  a publisher is writing sequence s; val is not s's yet
//	state == 0      never written
//
// val is written by the publisher that owns state (CAS, see Publish), read
// by readers between two loads of state.
type slot[T any] struct {
	state atomic.Uint64
	val   atomic.Pointer[T]
}

// NewRing returns a ring of size slots; size must be a power of two >= 2.
func NewRing[T any](size int) (*Ring[T], error) {
	if size < 2 || size&(size-1) != 0 {
		return nil, fmt.Errorf("fanout: ring size %d is not a power of two >= 2", size)
	}
	r := &Ring[T]{
		mask:  uint64(size - 1),
		slots: make([]slot[T], size),
		kick:  make(chan struct{}, 1),
	}
	return r, nil
}

// Size is the number of slots.
func (r *Ring[T]) Size() int { return len(r.slots) }

// Last is the newest claimed sequence (0 before the first Publish). The
// value with that sequence may still be being written.
func (r *Ring[T]) Last() uint64 { return r.last.Load() }

// Publish stores v as the next sequence and returns that sequence. It never
// waits for readers, does not allocate, and costs the same whatever the
// number of readers. Safe from any number of goroutines.
//
// v must not be nil, and must not be a pointer the ring currently holds
// (publish a fresh value each time): the guard against two publishers a
// whole lap apart compares pointers (step W2 below).
//
// Ordering (Go's sync/atomic operations are sequentially consistent: every
// atomic step below is in one total order that all goroutines agree on):
//
//	W0  s = last.Add(1)                 claim: the only point where publishers
//	                                    meet; wait-free, each gets its own s
//	W1  state: q -> 2s+1 (CAS, q < 2s+1) mark "writing s"; a reader that loads
//	                                    state after this cannot accept the
//	                                    slot's old value as s-size any more
//	W2  val: old -> v   (CAS)           store the value, only while state is
//	                                    still 2s+1 (checked after loading old)
//	W3  state: 2s+1 -> 2s (CAS)         publish: a reader that loads 2s
//	                                    happens-after W2, so it sees v
//	W4  kick the waker (at most one pending kick)
//
// The loops in W1 and W2 only repeat when another publisher changed the
// same slot in between, which needs a publisher stalled for a whole lap
// (size publishes) between its W0 and W3. Then the newer sequence wins and
// the older value is dropped (readers count it as lost): the writer side
// stays lock-free and never waits for anyone. In the common case (one
// publisher at a time, or publishers less than a lap apart) every CAS
// succeeds at once.
//
// Why W2 is a CAS and not a Store: a publisher p that was overtaken (a newer
// publisher n owns state) must not overwrite n's value. p loads old, then
// checks state is still 2p+1, then CASes old -> v. If n's W1 came before p's
// check, p gives up. If it came after, n's W2 has not happened yet at p's
// check; n's W2 then either fails against p's value and retries (n wins), or
// already replaced old so p's CAS fails. old cannot reappear (ABA) because
// p holds a reference to it and published pointers are fresh.
func (r *Ring[T]) Publish(v *T) uint64 {
	s := r.last.Add(1) // W0
	r.store(s, v)
	return s
}

// store is W1..W4 of Publish for the claimed sequence s.
func (r *Ring[T]) store(s uint64, v *T) {
	sl := &r.slots[s&r.mask]
	writing := s<<1 | 1
	for { // W1
		q := sl.state.Load()
		if q >= writing {
			// A publisher a whole lap ahead owns the slot: s is lost.
			r.signal()
			return
		}
		if sl.state.CompareAndSwap(q, writing) {
			break
		}
	}
	for { // W2
		old := sl.val.Load()
		if sl.state.Load() != writing {
			r.signal()
			return
		}
		if sl.val.CompareAndSwap(old, v) {
			break
		}
	}
	sl.state.CompareAndSwap(writing, s<<1) // W3; fails only if overtaken
	r.signal()                             // W4
}

// signal tells the waker that something was published. At most one kick is
// pending at a time, so a burst of publishes costs one channel operation.
func (r *Ring[T]) signal() {
	if r.pending.Load() || !r.pending.CompareAndSwap(false, true) {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Kicked receives once after one or more publishes; the waker (and only
// the waker) receives from it, then calls Ack, then reads for (or wakes)
// every reader.
func (r *Ring[T]) Kicked() <-chan struct{} { return r.kick }

// Ack takes the pending kick: publishes from now on kick again.
//
// Ordering (with Publish's W3 and W4):
//
//	K1  Ack: pending = false      after the kick was received
//	K2  the waker reads (or has its readers read) every cursor
//
// A publish whose W3 comes after K1 kicks again: another round follows.
// One whose W3 came before K1 is seen by K2. No publish is missed.
func (r *Ring[T]) Ack() { r.pending.Store(false) }

// waker rate-limits the passes of the Engine's loop.
type waker struct {
	last  time.Time
	timer *time.Timer
}

// hold sleeps until coalesce has passed since the previous wakeup. It
// returns false if done was closed meanwhile.
func (w *waker) hold(done <-chan struct{}, coalesce time.Duration) bool {
	if coalesce > 0 {
		if d := coalesce - time.Since(w.last); d > 0 {
			if w.timer == nil {
				w.timer = time.NewTimer(d)
			} else {
				w.timer.Reset(d)
			}
			select {
			case <-done:
				return false
			case <-w.timer.C:
			}
		}
		w.last = time.Now()
	}
	return true
}

// Get returns the value with sequence seq if the ring still holds it.
// Safe from any goroutine.
func (r *Ring[T]) Get(seq uint64) (*T, bool) {
	if seq == 0 {
		return nil, false
	}
	sl := &r.slots[seq&r.mask]
	want := seq << 1
	if sl.state.Load() != want {
		return nil, false
	}
	v := sl.val.Load()
	if sl.state.Load() != want {
		return nil, false
	}
	return v, true
}

// Reader follows a ring with its own cursor. A Reader belongs to one
// goroutine; its methods are not safe for concurrent use.
type Reader[T any] struct {
	r    *Ring[T]
	next uint64 // next sequence to read; written and read only by the owner
}

// NewReader returns a reader that starts after the newest claimed sequence:
// it sees what is published from now on.
func (r *Ring[T]) NewReader() Reader[T] {
	return Reader[T]{r: r, next: r.last.Load() + 1}
}

// ReaderAt returns a reader whose next sequence is next: one made with
// next = Last()+1 sees what is published from then on.
func (r *Ring[T]) ReaderAt(next uint64) Reader[T] {
	return Reader[T]{r: r, next: next}
}

// Cursor is the next sequence the reader will return.
func (rd *Reader[T]) Cursor() uint64 { return rd.next }

// Next returns the next value without blocking. ok is false when nothing
// new has been published yet (the waker calls again after the next kick).
//
// lost > 0 says the reader was lapped: the values in [seq-lost, seq) were
// overwritten before it got to them, and it skipped to the newest claimed
// sequence. lost can be > 0 with ok false (the newest is still being
// written). Summing lost over all calls gives the exact number of
// sequences this reader never returned.
//
// Ordering (pairs with Publish's W1..W3):
//
//	R1  q1 = state          2c: the slot holds c. W3(c) came before R1, so
//	                        W2(c) did too: R2 sees c's value or a later one
//	R2  v = val
//	R3  q2 = state          q2 == q1: no publisher did W1 on this slot between
//	                        R1 and R3, and a newer value can only be stored
//	                        after its W1 (W2 checks state), so v is c's value.
//	                        q2 != q1: the slot was taken over: lapped.
//
// state only moves forward (W1 CASes to a larger value; W3 moves 2s+1 to
// 2s, still above every earlier state), so q2 == q1 cannot be an ABA.
func (rd *Reader[T]) Next() (v *T, seq uint64, lost uint64, ok bool) {
	r := rd.r
	for {
		c := rd.next
		sl := &r.slots[c&r.mask]
		q1 := sl.state.Load() // R1
		if q1 == c<<1 {
			v := sl.val.Load()         // R2
			if sl.state.Load() == q1 { // R3
				rd.next = c + 1
				return v, c, lost, true
			}
			continue // taken over while we read: lapped, look again
		}
		if q1>>1 > c {
			// The slot holds (or is being given) a sequence a lap or more
			// ahead: c is gone. Skip to the newest claimed sequence; every
			// sequence in [c, newest) is counted once.
			//
			//	size 4, reader at c=3, slot 3 holds 7:
			//	  seq  3 4 5 6 7 8      last = 8
			//	       ^ lost... ^ next
			//	  lost += 8-3 = 5, next = 8
			newest := r.last.Load()
			if newest <= c {
				// Cannot happen (the slot's owner claimed a sequence > c
				// before W1), kept as a guard against spinning.
				newest = c + 1
			}
			lost += newest - c
			rd.next = newest
			continue
		}
		// q1 < 2c or q1 == 2c+1: c is not published yet.
		return nil, 0, lost, false
	}
}
