package broadcast

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

func TestKeepRestCutsWhereTheWriteStopped(t *testing.T) {
	a, b, c := []byte("aaaa"), []byte("bb"), []byte("cccccc")
	for _, tc := range []struct {
		n    int
		done bool
		rest string // the frames left, joined by |
	}{
		{n: 12, done: true},
		{n: 0, rest: "aaaa|bb|cccccc"},
		{n: 3, rest: "a|bb|cccccc"},
		{n: 4, rest: "bb|cccccc"},
		{n: 5, rest: "b|cccccc"},
		{n: 6, rest: "cccccc"},
		{n: 11, rest: "c"},
	} {
		cn := &conn{}
		done := cn.keepRest([][]byte{a, b, c}, tc.n, 3)
		got := string(bytes.Join(cn.rest, []byte("|")))
		if done != tc.done || got != tc.rest {
			t.Errorf("n=%d: done %v rest %q, want %v %q", tc.n, done, got, tc.done, tc.rest)
		}
		if !done && cn.restSent != 3 {
			t.Errorf("n=%d: restSent %d, want 3", tc.n, cn.restSent)
		}
	}
}

// A client that stops reading for a while fills its socket: the pass
// workers' non-blocking writes then stop part-way through a frame, and its
// own goroutine finishes the frame and writes the rest. The client must
// get every frame, whole and in order, and the others must not wait.
func TestSlowReaderGetsEveryFrameWholeAfterItsSocketFilled(t *testing.T) {
	const n, size = 400, 16000 // 6.4 MB: more than the two socket buffers hold (~3 MiB)
	s, hs := testServer(t, &ServerOpts{RingSize: 1024, Replay: -1})
	slow := dialSlow(t, wsURL(hs, "/"), 128<<10)
	fast := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 2)

	payload := func(i int) []byte {
		p := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(p, uint32(i))
		return p
	}
	fastDone := make(chan error, 1)
	go func() {
		for i := range n {
			fast.SetReadDeadline(time.Now().Add(testutil.Scale(5 * time.Second)))
			_, p, err := fast.ReadMessage()
			if err == nil && !bytes.Equal(p, payload(i)) {
				err = fmt.Errorf("fast client: frame %d differs", i)
			}
			if err != nil {
				fastDone <- err
				return
			}
		}
		fastDone <- nil
	}()
	for i := range n {
		if err := s.Publish(Message{Payload: payload(i)}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // several passes, not one
		}
	}
	// The fast client gets everything while the slow one does not read.
	if err := <-fastDone; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Stalls == 0 {
		t.Fatalf("no write stalled (stats %+v): the test did not fill the slow client's socket", st)
	}
	for i := range n {
		slow.SetReadDeadline(time.Now().Add(testutil.Scale(5 * time.Second)))
		mt, p, err := slow.ReadMessage()
		if err != nil {
			t.Fatalf("slow client, frame %d: %v", i, err)
		}
		if mt != websocket.BinaryMessage || !bytes.Equal(p, payload(i)) {
			t.Fatalf("slow client: frame %d differs (type %d, %d bytes)", i, mt, len(p))
		}
	}
	st := settled(s, func(st ServerStats) bool { return st.Sent >= 2*n })
	if st.Lost != 0 || st.Dropped != 0 || st.Sent != 2*n {
		t.Errorf("stats %+v: want Sent %d, nothing lost or dropped", st, 2*n)
	}
	t.Logf("stats %+v", st)
}

// claim and release hand a connection's writes from owner to owner: there
// is never more than one, and work made visible before a claim is always
// done by somebody (no lost wakeup), however the requests interleave. Each
// round ends when its requesters have returned: the drains run inline, so
// no later request can rescue work a round left behind.
func TestClaimReleaseNeverLosesWorkNorHasTwoOwners(t *testing.T) {
	const rounds, requesters, each = 3000, 4, 4
	var c conn
	var todo, owners atomic.Int64
	drain := func() {
		for {
			if n := owners.Add(1); n != 1 {
				t.Errorf("%d owners at once", n)
			}
			n := todo.Swap(0)
			owners.Add(-1)
			if n > 0 {
				continue
			}
			// Found nothing. Let requests slip in before the release:
			// that is the window a lost wakeup would need.
			runtime.Gosched()
			if c.release() {
				return
			}
		}
	}
	for r := range rounds {
		var wg sync.WaitGroup
		for range requesters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					todo.Add(1) // the work, made visible before the claim
					if c.claim() {
						drain()
					}
				}
			}()
		}
		wg.Wait()
		if n := todo.Load(); n != 0 {
			t.Fatalf("round %d: %d requests left undone with no owner (state %b)", r, n, c.wstate.Load())
		}
		if st := c.wstate.Load(); st != 0 {
			t.Fatalf("round %d: state %b after the last release, want 0", r, st)
		}
	}
}
