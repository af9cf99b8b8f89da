package broadcast

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

// dialSlow connects a client with a fixed receive buffer of rcvbuf bytes
// (no autotuning), so that the server's writes to it block soon when it
// does not read. Below the loopback MSS (64 KiB) the window hardly ever
// reopens: use that only for a client that never reads again.
func dialSlow(t testing.TB, url string, rcvbuf int) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(rcvbuf)
		}
		return c, err
	}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// stuckWriter connects a client that does not read, publishes enough big
// binary frames that the server's writer to it is stuck in write, and
// returns the client and its session.
func stuckWriter(t *testing.T, s *Server, hs string, sessions chan string, frames int) (*websocket.Conn, string) {
	t.Helper()
	c := dialSlow(t, hs, 128<<10)
	session := <-sessions
	big := make([]byte, 1<<20)
	for range frames { // ~3 MiB fit in the sockets; the rest waits
		s.Publish(Message{Payload: big})
	}
	waitStuckInWrite(t, "drive")
	return c, session
}

func sessionEvents(ch chan string) func(Event) {
	return func(e Event) {
		if e.Kind == Connect {
			ch <- e.Session
		}
	}
}

func TestReplyQueueOverflowClosesWith1013(t *testing.T) {
	sessions := make(chan string, 1)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, ReplyQueue: 2, OnEvent: sessionEvents(sessions)})
	c, session := stuckWriter(t, s, wsURL(hs, "/"), sessions, 6)
	var err error
	for range 3 {
		err = s.Publish(Message{Session: session, Payload: "reply"})
	}
	if !errors.Is(err, ErrReplyOverflow) {
		t.Fatalf("third reply into a queue of 2: err = %v, want ErrReplyOverflow", err)
	}
	wantClose(t, c, websocket.CloseTryAgainLater)
	if st := s.Stats(); st.RepliesDropped != 1 {
		t.Errorf("RepliesDropped = %d, want 1", st.RepliesDropped)
	}
}

func TestLappedClientSkipsToNewestAndLossIsCountedExactly(t *testing.T) {
	sessions := make(chan string, 1)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, RingSize: 4, OnEvent: sessionEvents(sessions)})
	c, _ := stuckWriter(t, s, wsURL(hs, "/"), sessions, 12)
	s.Publish(Message{Payload: "end"})
	got := 0
	c.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	for {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got++
		if string(p) == "end" {
			break
		}
	}
	st := settled(s, func(st ServerStats) bool { return st.Sent >= uint64(got) })
	if st.Lost == 0 || uint64(got) != st.Sent || st.Sent+st.Lost != st.Published {
		t.Fatalf("client got %d; stats sent %d lost %d published %d: want got == sent, sent+lost == published, lost > 0",
			got, st.Sent, st.Lost, st.Published)
	}
	t.Logf("published %d, delivered %d, lost %d", st.Published, st.Sent, st.Lost)
}

func TestLappedClientIsDisconnectedUnderDisconnectLapped(t *testing.T) {
	sessions := make(chan string, 1)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, RingSize: 4, Lapped: DisconnectLapped, OnEvent: sessionEvents(sessions)})
	// Twelve frames into a ring of four lap a client that does not read,
	// whether its writer is already blocked in a write or, on a busy
	// machine, has not written yet: either way it must be cut off. (Not
	// stuckWriter: a writer lapped before its first write never blocks.)
	c := dialSlow(t, wsURL(hs, "/"), 128<<10)
	<-sessions
	big := make([]byte, 1<<20)
	for range 12 {
		s.Publish(Message{Payload: big})
	}
	wantClose(t, c, websocket.ClosePolicyViolation)
	if st := s.Stats(); st.Dropped != 1 {
		t.Errorf("Dropped = %d, want 1", st.Dropped)
	}
}

// latencies connects fast clients (subscribed to topic "m") and returns
// the delivery latency of every (message, fast client) pair. Each message
// carries its publish time.
func latencies(t *testing.T, s *Server, url string, fast, msgs, size int) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for range fast {
		c := dial(t, url+"?topic=m", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			c.SetReadDeadline(time.Now().Add(testutil.Scale(30 * time.Second)))
			for i := 0; i < msgs; i++ {
				_, p, err := c.ReadMessage()
				if err != nil {
					t.Errorf("fast client: %v", err)
					return
				}
				d := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(p)))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	close(ready)
	for range msgs {
		p := make([]byte, size)
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		s.Publish(Message{Topic: "m", Payload: p})
		time.Sleep(3 * time.Millisecond) // pacing: one message per pass, each latency its own
	}
	wg.Wait()
	slices.Sort(lat)
	return lat
}

func pctl(d []time.Duration, p float64) time.Duration { return d[int(float64(len(d)-1)*p)] }

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestDeadClientDoesNotDelayOthersAndMemoryStaysBounded(t *testing.T) {
	const (
		fast = 4
		msgs = 300 // more than the ring: the dead client is lapped
		size = 1 << 10
		ring = 256
		fill = 8 << 20 // one frame bigger than the dead client's sockets hold
	)
	run := func(withDead bool) (lat []time.Duration, st ServerStats, grew int64) {
		s, hs := testServer(t, &ServerOpts{NoReplay: true, RingSize: ring, WriteWait: 2 * time.Second, NoCoalesce: true})
		before := heapAlloc()
		if withDead {
			// It never reads; its writer is stuck in write from now on
			// (only it subscribes to "fill").
			dialSlow(t, wsURL(hs, "/"), 4096)
			waitClients(t, s, 1)
			s.Publish(Message{Topic: "fill", Payload: make([]byte, fill)})
			waitStuckInWrite(t, "drive")
		}
		lat = latencies(t, s, wsURL(hs, "/"), fast, msgs, size)
		grew = int64(heapAlloc()) - int64(before)
		if withDead {
			// Past WriteWait the dead client is dropped: counted when its
			// write times out, out of Clients once its socket is torn
			// down a moment later. Wait for both.
			return lat, settled(s, func(st ServerStats) bool { return st.Dropped > 0 && st.Clients == fast }), grew
		}
		return lat, s.Stats(), grew
	}
	base, _, _ := run(false)
	withDead, st, grew := run(true)
	t.Logf("without dead client: p50 %v p99 %v max %v", pctl(base, .5), pctl(base, .99), pctl(base, 1))
	t.Logf("with dead client:    p50 %v p99 %v max %v; heap grew %d KiB", pctl(withDead, .5), pctl(withDead, .99), pctl(withDead, 1), grew>>10)
	if len(withDead) != fast*msgs {
		t.Fatalf("fast clients got %d deliveries, want %d", len(withDead), fast*msgs)
	}
	// Had the others waited for the dead client, they would wait for its
	// write deadline (2 s). Allow for a busy machine, not for that.
	if limit := 3*pctl(base, .99) + 100*time.Millisecond; pctl(withDead, .99) > limit {
		t.Errorf("p99 with a dead client %v > %v: it delays the others", pctl(withDead, .99), limit)
	}
	if m := pctl(withDead, 1); m > time.Second {
		t.Errorf("a delivery took %v with a dead client: someone waited for its write deadline", m)
	}
	// The server keeps the ring's frames and the one batch the dead
	// client's writer is stuck on, however much the dead client misses.
	if max := int64(fill + ring*(size+64) + 4<<20); grew > max {
		t.Errorf("heap grew %d KiB with a dead client, want <= %d KiB", grew>>10, max>>10)
	}
	if st.Dropped != 1 || st.Clients != fast {
		t.Errorf("dead client: dropped %d (want 1) clients %d (want %d)", st.Dropped, st.Clients, fast)
	}
}

func TestConnectDisconnectCyclesLeaveNothingBehind(t *testing.T) {
	const (
		cycles  = 10_000
		workers = 8
	)
	s, hs := testServer(t, &ServerOpts{})
	s.Publish(Message{Topic: "t", Payload: "replayed to each"})
	url := wsURL(hs, "/")
	// Warm up (http server goroutines, pools) before the baseline.
	for range 20 {
		c := dial(t, url, nil)
		c.Close()
	}
	waitClients(t, s, 0)
	// The warm-up's goroutines (net/http's, the drives') end a moment
	// after their clients: the baseline is taken once their count holds.
	g0, since := runtime.NumGoroutine(), time.Now()
	testutil.Within(10*time.Second, func() bool {
		if g := runtime.NumGoroutine(); g != g0 {
			g0, since = g, time.Now()
		}
		return time.Since(since) > 100*time.Millisecond
	})
	h0 := heapAlloc()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{}
			d := websocket.Dialer{}
			_ = tr
			for i := range cycles / workers {
				c, _, err := d.Dial(url, nil)
				if err != nil {
					errs <- err
					return
				}
				if (i+w)%2 == 0 {
					// Half read their replay and close politely...
					c.ReadMessage()
					c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					c.ReadMessage() // the server's close echo
				}
				c.Close() // ...half just drop the TCP connection.
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	waitClients(t, s, 0)
	testutil.Within(20*time.Second, func() bool { return runtime.NumGoroutine() <= g0+2 })
	g1, h1 := runtime.NumGoroutine(), heapAlloc()
	t.Logf("%d cycles in %v; goroutines %d -> %d; heap %d -> %d KiB", cycles, elapsed, g0, g1, h0>>10, h1>>10)
	if g1 > g0+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines %d -> %d after %d cycles\n%s", g0, g1, cycles, buf[:runtime.Stack(buf, true)])
	}
	if h1 > h0+2<<20 {
		t.Errorf("heap grew from %d to %d KiB over %d cycles", h0>>10, h1>>10, cycles)
	}
	if st := settled(s, func(st ServerStats) bool { return st.Connects == st.Disconnects }); st.Connects < cycles || st.Connects != st.Disconnects {
		t.Errorf("connects %d disconnects %d", st.Connects, st.Disconnects)
	}
}
