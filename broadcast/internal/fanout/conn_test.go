package fanout

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testOptions are the options broadcast's defaults give, for one writer.
func testOptions() Options {
	return Options{
		RingSize:     1024,
		ReadLimit:    64 << 10,
		PingInterval: 30 * time.Second,
		PongTimeout:  10 * time.Second,
		WriteWait:    10 * time.Second,
		Writers:      1,
		ReplyQueue:   16,
		Coalesce:     40 * time.Millisecond,
	}
}

func text(topic, p string) *Frame[string] {
	return &Frame[string]{Topic: topic, Wire: Encode(false, []byte(p)), Meta: p}
}

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
		cn := &conn[string]{}
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

// claim and release hand a connection's writes from owner to owner: there
// is never more than one, and work made visible before a claim is always
// done by somebody (no lost wakeup), however the requests interleave. Each
// round ends when its requesters have returned: the drains run inline, so
// no later request can rescue work a round left behind.
func TestClaimReleaseNeverLosesWorkNorHasTwoOwners(t *testing.T) {
	const rounds, requesters, each = 3000, 4, 4
	var c conn[string]
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
			t.Fatalf("round %d: %d requests left undone with no owner (state %b)", r, n, c.writeState.Load())
		}
		if st := c.writeState.Load(); st != 0 {
			t.Fatalf("round %d: state %b after the last release, want 0", r, st)
		}
	}
}

// A connection lapped under DisconnectLapped is counted in Dropped once,
// even when the write of what collect handed over with that decision
// (here a reply) then times out. net.Pipe has no buffer: a peer that does
// not read makes every write wait for WriteWait.
func TestLappedConnectionWhoseLastWriteTimesOutIsDroppedOnce(t *testing.T) {
	o := testOptions()
	o.RingSize, o.DisconnectLapped, o.WriteWait = 4, true, 200*time.Millisecond
	e, err := New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	end, peer := net.Pipe()
	t.Cleanup(func() { peer.Close() })
	c := e.newConn(end, e.Mark(), nil, "s1", "pipe")
	if !e.join(c) {
		t.Fatal("join refused")
	}
	// c is owned until start: both wait for its first collect.
	if err := e.Reply("s1", text("", "reply")); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		e.Publish(text("", "x"))
	}
	c.start() // returns when c is finished: the reply's write timed out
	if st := e.Stats(); st.Dropped != 1 || st.Clients != 0 {
		t.Errorf("stats %+v: want Dropped 1, no clients", st)
	}
}
