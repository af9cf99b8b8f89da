package fanout

import (
	"fmt"
	"sync"
	"testing"
)

func TestNewRingRejectsSizesThatAreNotPowersOfTwo(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 3, 1000} {
		if _, err := NewRing[int](n); err == nil {
			t.Errorf("NewRing(%d): no error", n)
		}
	}
}

func TestReaderSeesEveryValueInOrderWhenNotLapped(t *testing.T) {
	r, _ := NewRing[int](8)
	rd := r.NewReader()
	for i := 1; i <= 5; i++ {
		v := i * 10
		if got := r.Publish(&v); got != uint64(i) {
			t.Fatalf("Publish returned seq %d, want %d", got, i)
		}
	}
	for i := 1; i <= 5; i++ {
		v, seq, lost, ok := rd.Next()
		if !ok || seq != uint64(i) || *v != i*10 || lost != 0 {
			t.Fatalf("Next = %v %d %d %v, want %d %d 0 true", v, seq, lost, ok, i*10, i)
		}
	}
	if _, _, _, ok := rd.Next(); ok {
		t.Fatal("Next after the newest: ok")
	}
}

func TestLappedReaderSkipsToNewestAndCountsExactLoss(t *testing.T) {
	r, _ := NewRing[int](4)
	rd := r.NewReader() // cursor 1
	for i := 1; i <= 10; i++ {
		v := i
		r.Publish(&v)
	}
	// Slots hold 7..10; the reader wanted 1: it loses 1..9 and reads 10.
	v, seq, lost, ok := rd.Next()
	if !ok || seq != 10 || *v != 10 || lost != 9 {
		t.Fatalf("Next = %d seq %d lost %d ok %v, want 10 seq 10 lost 9 ok", *v, seq, lost, ok)
	}
}

func TestPublisherOvertakenByAWholeLapLosesItsValue(t *testing.T) {
	r, _ := NewRing[int](4)
	rd := r.NewReader()
	stale := r.last.Add(1) // claims 1, then stalls before writing
	for i := 2; i <= 5; i++ {
		v := i
		r.Publish(&v) // 5 lands in slot 1, a lap ahead of 1
	}
	old := 1
	r.store(stale, &old) // the stalled publisher resumes
	if v, ok := r.Get(5); !ok || *v != 5 {
		t.Fatalf("Get(5) = %v %v: the stale publisher overwrote the newer value", v, ok)
	}
	if _, ok := r.Get(1); ok {
		t.Fatal("Get(1) ok: a value a lap old came back")
	}
	var got []int
	var lost uint64
	for {
		v, _, l, ok := rd.Next()
		lost += l
		if !ok {
			break
		}
		got = append(got, *v)
	}
	// The reader wanted 1, found slot 1 holding 5: lapped, skips to 5.
	if fmt.Sprint(got) != "[5]" || lost != 4 {
		t.Fatalf("reader got %v lost %d, want [5] lost 4", got, lost)
	}
}

func TestGetReturnsOnlyRetainedSequences(t *testing.T) {
	r, _ := NewRing[int](4)
	for i := 1; i <= 6; i++ {
		v := i
		r.Publish(&v)
	}
	for seq, want := range map[uint64]bool{0: false, 1: false, 2: false, 3: true, 6: true, 7: false} {
		if _, ok := r.Get(seq); ok != want {
			t.Errorf("Get(%d) ok = %v, want %v", seq, ok, want)
		}
	}
}

// stressValue lets a reader detect a torn or misplaced read: check is
// derived from the other fields.
type stressValue struct {
	pub, n, check uint64
}

func newStressValue(pub, n uint64) *stressValue {
	return &stressValue{pub: pub, n: n, check: pub*1_000_003 ^ n*7919}
}

func (v *stressValue) ok() bool { return v.check == v.pub*1_000_003^v.n*7919 }

// follow reads r until finished is closed and the reader has accounted for
// every sequence up to r.Last(). It checks that sequences increase, that
// values are whole, and that each publisher's values come in its order.
// It reads whenever the waker (see followers) sends a token on wake, and
// returns how many values it got and how many it was told it lost.
func follow(t *testing.T, r *Ring[stressValue], rd Reader[stressValue], wake <-chan struct{}, finished <-chan struct{}, pubs int) (got, lost uint64) {
	lastSeq := uint64(0)
	lastN := make([]int64, pubs)
	for i := range lastN {
		lastN[i] = -1
	}
	for {
		v, seq, l, ok := rd.Next()
		lost += l
		if ok {
			got++
			if seq <= lastSeq {
				t.Errorf("sequence went from %d to %d", lastSeq, seq)
				return
			}
			lastSeq = seq
			if !v.ok() {
				t.Errorf("torn value at seq %d: %+v", seq, *v)
				return
			}
			if int64(v.n) <= lastN[v.pub] {
				t.Errorf("publisher %d: value %d after %d", v.pub, v.n, lastN[v.pub])
				return
			}
			lastN[v.pub] = int64(v.n)
			continue
		}
		select {
		case <-finished:
			if rd.Cursor() > r.Last() {
				return got, lost
			}
			// Every publish has returned: reading on catches up.
		case <-wake:
		}
	}
}

// tally is what one reader in a stress test got and was told it lost.
type tally struct{ got, lost uint64 }

// followers runs n readers that follow r from the start until finished is
// closed; each sends its tally. They are woken the way the Engine's loop
// does it: one waker goroutine takes the ring's kick, calls Ack, then
// hands every reader a token (Ack before the tokens: see Ring.Ack). The
// waker runs until the test ends.
func followers(t *testing.T, r *Ring[stressValue], n, pubs int, finished <-chan struct{}) <-chan tally {
	done := make(chan struct{})
	wakes := make([]chan struct{}, n)
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	var wakerDone sync.WaitGroup
	wakerDone.Add(1)
	go func() {
		defer wakerDone.Done()
		for {
			select {
			case <-done:
				return
			case <-r.Kicked():
			}
			r.Ack()
			for _, w := range wakes {
				select {
				case w <- struct{}{}:
				default: // a token is waiting already: the reader reads again
				}
			}
		}
	}()
	t.Cleanup(func() { close(done); wakerDone.Wait() })
	results := make(chan tally, n)
	for i := range n {
		rd := r.NewReader() // cursor 1: before the first publish
		go func() {
			got, lost := follow(t, r, rd, wakes[i], finished, pubs)
			results <- tally{got, lost}
		}()
	}
	return results
}

func TestRingStressOneWriterManyReadersExactLoss(t *testing.T) {
	const readers = 16
	for _, tc := range []struct {
		name     string
		size     int
		total    uint64
		wantLoss bool
	}{
		{"a small ring laps readers and every loss is counted", 64, 200_000, true},
		{"readers within the ring's depth lose nothing", 1 << 15, 30_000, false},
	} {
		total := tc.total
		t.Run(tc.name, func(t *testing.T) {
			r, _ := NewRing[stressValue](tc.size)
			finished := make(chan struct{})
			results := followers(t, r, readers, 1, finished)
			for i := range uint64(total) {
				r.Publish(newStressValue(0, i))
			}
			close(finished)
			var lapped int
			for range readers {
				res := <-results
				if res.got+res.lost != total {
					t.Errorf("reader got %d + lost %d = %d, want exactly %d", res.got, res.lost, res.got+res.lost, total)
				}
				if res.lost > 0 {
					lapped++
				}
			}
			t.Logf("%d of %d readers were lapped", lapped, readers)
			if !tc.wantLoss && lapped > 0 {
				t.Errorf("%d readers lost values in a ring deeper than the run", lapped)
			}
		})
	}
}

func TestRingStressManyWritersManyReaders(t *testing.T) {
	const (
		writers = 4
		readers = 8
		each    = 50_000
	)
	r, _ := NewRing[stressValue](8) // tiny: publishers collide a lap apart
	finished := make(chan struct{})
	results := followers(t, r, readers, writers, finished)
	var wg sync.WaitGroup
	for w := range uint64(writers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(each) {
				r.Publish(newStressValue(w, i))
			}
		}()
	}
	wg.Wait()
	close(finished)
	for range readers {
		res := <-results
		// Every claimed sequence is either read or counted lost.
		if res.got+res.lost != writers*each {
			t.Errorf("reader got %d + lost %d, want %d", res.got, res.lost, writers*each)
		}
	}
	if r.Last() != writers*each {
		t.Errorf("Last = %d, want %d", r.Last(), writers*each)
	}
}

func TestPublishesKickTheWakerOncePerAck(t *testing.T) {
	r, _ := NewRing[int](4)
	kicked := func() bool {
		select {
		case <-r.Kicked():
			return true
		default:
			return false
		}
	}
	if kicked() {
		t.Fatal("kicked before any publish")
	}
	for i := range 3 {
		r.Publish(&i)
	}
	if !kicked() {
		t.Fatal("three publishes: no kick")
	}
	v := 3
	r.Publish(&v)
	if kicked() {
		t.Fatal("a second kick before Ack: a burst must cost one")
	}
	r.Ack()
	v2 := 4
	r.Publish(&v2)
	if !kicked() {
		t.Fatal("a publish after Ack: no kick")
	}
}

func ExampleRing() {
	r, _ := NewRing[string](4)
	rd := r.NewReader()
	for _, s := range []string{"a", "b", "c", "d", "e", "f"} {
		r.Publish(&s)
	}
	// The reader fell behind: "a".."e" were lost or skipped, "f" is newest.
	v, seq, lost, _ := rd.Next()
	fmt.Println(*v, seq, lost)
	// Output: f 6 5
}
