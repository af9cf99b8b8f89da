package broadcast

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast/internal/fanout"
	"sensord/internal/testutil"
)

func memNow() runtime.MemStats {
	runtime.GC()
	runtime.GC() // the second GC shrinks stacks found idle by the first
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func TestIdleConnectionMemory(t *testing.T) {
	const n = 1000
	s, hs := testServer(t, &ServerOpts{PingInterval: 50 * time.Millisecond, PongTimeout: time.Minute})
	s.Publish(Message{Topic: "t", Payload: `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`})
	url := wsURL(hs, "/")
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	// The clients live in this process too, but they have no goroutines:
	// the stack growth is the server's alone. (The heap figure includes
	// the clients' side; the end-to-end RSS per connection is measured by
	// bench.sh, server process alone.)
	before := memNow()
	g0 := runtime.NumGoroutine()
	for range n {
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitClients(t, s, n)
	mid := memNow()
	t.Logf("connected, before traffic: stack %.2f KiB/conn", float64(mid.StackInuse-before.StackInuse)/n/1024)
	for range 20 {
		s.Publish(Message{Topic: "t", Payload: `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`})
		time.Sleep(5 * time.Millisecond) // several passes, not one (pacing, not waiting)
	}
	// Every frame written (the replay and 20 each).
	testutil.Until(t, 20*time.Second, func() bool { return s.Stats().Sent == 21*n },
		func() string { return fmt.Sprintf("Sent %d, want %d", s.Stats().Sent, 21*n) })
	// Then a few heartbeats: each round's pings are written (to sockets
	// that take them at once) before the next round begins.
	h0 := s.eng.Stats().Heartbeats
	testutil.Until(t, 20*time.Second, func() bool { return s.eng.Stats().Heartbeats >= h0+4 },
		func() string { return fmt.Sprintf("%d heartbeats, want 4", s.eng.Stats().Heartbeats-h0) })
	t.Logf("stats %+v", s.Stats())
	after := memNow()
	g1 := runtime.NumGoroutine()
	stack := float64(after.StackInuse-before.StackInuse) / n / 1024
	t.Logf("goroutines +%d; stack %.2f KiB/conn; heap (both sides) %.2f KiB/conn",
		g1-g0, stack, float64(after.HeapInuse-before.HeapInuse)/n/1024)
	if d := g1 - g0 - n; d < -5 || d > 5 {
		t.Errorf("%d goroutines for %d connections, want 1 each (the reader)", g1-g0, n)
	}
	if raceEnabled {
		return // instrumented frames are larger: no stack budget under -race
	}
	// One goroutine on a 2 KiB stack, plus stack-span slack. A stack that
	// grew (a deeper call chain in the reader) makes it 4.
	if stack > 3 {
		t.Errorf("goroutine stacks take %.2f KiB per idle connection, want about 2 (one 2 KiB stack)", stack)
	}
}

// A client that sends a frame header announcing 64 KiB and one byte of it
// leaves its reader waiting for the rest: still one small stack, and room
// for what came (fanout.FirstChunk), not for what was announced.
func TestHalfOpenHeaderCostsOnlyTheBytesReceivedAndNoBiggerStack(t *testing.T) {
	const n = 1000
	b := NewBudget(0)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, Budget: b})
	before := memNow()
	for range n {
		nc, resp := rawUpgrade(t, hs, "/")
		if resp.StatusCode != 101 {
			t.Fatal(resp.Status)
		}
		if _, err := nc.Write(append(clientHeader(opBinary, 64<<10), 'x')); err != nil {
			t.Fatal(err)
		}
	}
	waitClients(t, s, n)
	// Every reader has taken room for its byte: each is now waiting for
	// the rest.
	testutil.Until(t, 10*time.Second, func() bool { return b.Used() == n*fanout.FirstChunk }, func() string {
		return fmt.Sprintf("budget holds %d bytes, want %d (room for one byte on each connection)", b.Used(), n*fanout.FirstChunk)
	})
	after := memNow()
	stack := float64(after.StackInuse-before.StackInuse) / n / 1024
	heap := float64(after.HeapInuse-before.HeapInuse) / n / 1024
	t.Logf("stack %.2f KiB/conn; heap (both sides) %.2f KiB/conn", stack, heap)
	if heap > 8 {
		t.Errorf("heap grew %.2f KiB per connection holding 1 byte of a 64 KiB message, want a few", heap)
	}
	if raceEnabled {
		return
	}
	if stack > 3 {
		t.Errorf("goroutine stacks take %.2f KiB per half-open connection, want about 2", stack)
	}
}
