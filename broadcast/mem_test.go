package broadcast

import (
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
	// Client-side conns hold buffers too; dial them first, measure the
	// server's growth from its connections only by subtracting a run of
	// bare clients? Simpler: stacks belong to goroutines, and the client
	// side has none.
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
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several pings
	t.Logf("stats %+v", s.Stats())
	after := memNow()
	g1 := runtime.NumGoroutine()
	t.Logf("goroutines +%d; stack %.2f KiB/conn; heap (both sides) %.2f KiB/conn",
		g1-g0, float64(after.StackInuse-before.StackInuse)/n/1024, float64(after.HeapInuse-before.HeapInuse)/n/1024)
}
