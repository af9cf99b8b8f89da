package broadcast

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

// Everything a connection's owner writes, at once: broadcasts and replies
// of a few bytes to 100 KB, heartbeat pings, pongs to the clients' own
// pings every 1-3 ms, and clients with small sockets that pause, so that
// writes are cut and handed to drive goroutines. Every client must get
// every broadcast and every reply, whole and each stream in order.
func TestMixedTrafficArrivesWholeAndInOrder(t *testing.T) {
	const (
		nFast, nSlow = 12, 6
		msgs         = 400
		replies      = 100
	)
	var mu sync.Mutex
	sessionOf := map[int]string{}
	s, hs := testServer(t, &ServerOpts{RingSize: 1 << 14, NoReplay: true, NoCoalesce: true, Writers: 4,
		PingInterval: 30 * time.Millisecond, PongTimeout: 30 * time.Second, ReplyQueue: 1024,
		// Up to 1024 replies of up to 100 KB queued per client: far over
		// the default budget, which is not what this test is about.
		Budget: NewBudget(1 << 31),
		// Nobody may be dropped here: on a loaded machine a client may
		// not read for many seconds, and that is no fault of the server.
		WriteWait: testutil.Scale(60 * time.Second),
		OnMessage: func(in Incoming) {
			var id int
			if _, err := fmt.Sscanf(string(in.Raw), "hello %d", &id); err == nil {
				mu.Lock()
				sessionOf[id] = in.Session
				mu.Unlock()
			}
		}})
	url := wsURL(hs, "/")
	type client struct {
		ws   *websocket.Conn
		slow bool
	}
	var cls []client
	for i := range nFast + nSlow {
		c := client{slow: i >= nFast}
		if c.slow {
			c.ws = dialSlow(t, url, 64<<10)
		} else {
			c.ws = dial(t, url, nil)
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "hello %d", i)); err != nil {
			t.Fatal(err)
		}
		cls = append(cls, c)
	}
	hellos := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sessionOf)
	}
	testutil.Until(t, 10*time.Second, func() bool { return hellos() == len(cls) }, func() string { return fmt.Sprintf("%d of %d clients said hello", hellos(), len(cls)) })

	// payload: kind ('b' broadcast, 'r' reply), a sequence number, then
	// the sequence's low byte repeated, so a cut or mixed frame shows.
	payload := func(kind byte, seq int) []byte {
		n := 5 + rand.IntN(200)
		if rand.IntN(2) == 0 {
			n = 5 + rand.IntN(100_000)
		}
		p := make([]byte, n)
		p[0] = kind
		binary.BigEndian.PutUint32(p[1:], uint32(seq))
		for j := 5; j < n; j++ {
			p[j] = byte(seq)
		}
		return p
	}
	var pongs atomic.Int64
	errs := make(chan error, 2*len(cls)+replies*len(cls))
	var wg sync.WaitGroup
	for i, c := range cls {
		c.ws.SetPongHandler(func(string) error { pongs.Add(1); return nil })
		// gorilla's own ping handler gives a pong 1 s to be written: on a
		// loaded machine, behind the client's own pings, that is too short.
		c.ws.SetPingHandler(func(d string) error {
			return c.ws.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(testutil.Scale(60*time.Second)))
		})
		stopPing := make(chan struct{})
		go func() {
			for {
				select {
				case <-stopPing:
					return
				case <-time.After(time.Duration(1+rand.IntN(3)) * time.Millisecond):
				}
				// The deadline is generous: on a loaded machine the
				// reader of the other side may not run for seconds.
				if c.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(testutil.Scale(20*time.Second))) != nil {
					return
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(stopPing)
			next := map[byte]int{}
			for next['b'] < msgs || next['r'] < replies {
				if c.slow && rand.IntN(8) == 0 {
					time.Sleep(3 * time.Millisecond) // pacing: a slow reader pauses
				}
				c.ws.SetReadDeadline(time.Now().Add(testutil.Scale(60 * time.Second)))
				_, p, err := c.ws.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("client %d after %v: %v", i, next, err)
					return
				}
				kind, seq := p[0], int(binary.BigEndian.Uint32(p[1:]))
				for _, b := range p[5:] {
					if b != byte(seq) {
						errs <- fmt.Errorf("client %d: %c %d is corrupt", i, kind, seq)
						return
					}
				}
				if seq != next[kind] {
					errs <- fmt.Errorf("client %d: %c %d, want %d", i, kind, seq, next[kind])
					return
				}
				next[kind]++
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range replies {
			for id := range cls {
				if err := s.Publish(Message{Session: sessionOf[id], Payload: payload('r', r)}); err != nil {
					errs <- fmt.Errorf("reply %d to client %d: %v", r, id, err)
				}
			}
			time.Sleep(time.Millisecond) // pacing: replies spread over many passes
		}
	}()
	for i := range msgs {
		s.Publish(Message{Payload: payload('b', i)})
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // pacing: broadcasts spread over many passes
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := uint64((msgs + replies) * len(cls))
	st := settled(s, func(st ServerStats) bool { return st.Sent >= want })
	// (Stalls, cut writes, depend on the machine's timing here; partial_test
	// makes them happen for certain.)
	t.Logf("stats %+v; pongs %d", st, pongs.Load())
	if st.Sent != want || st.Lost != 0 || st.Dropped != 0 || st.RepliesDropped != 0 {
		t.Errorf("stats %+v: want Sent %d, nothing lost or dropped", st, want)
	}
	if pongs.Load() == 0 {
		t.Errorf("no client ping was answered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(5*time.Second))
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
