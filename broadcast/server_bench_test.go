package broadcast

import (
	"fmt"
	"testing"
)

// BenchmarkServerPublish measures Server.Publish (JSON encode once, frame
// once, store in the ring) with 0, 100 and 1000 connected clients over
// loopback. The clients do not read: their writers fill the sockets and
// then fall behind; the publisher neither knows nor cares.
func BenchmarkServerPublish(b *testing.B) {
	reading := map[string]any{"type": "sensor_update", "temperature": 21.4, "humidity": 48.2, "timestamp": 1763856000123}
	for _, n := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			s, hs := testServer(b, &ServerOpts{NoReplay: true})
			for range n {
				dial(b, wsURL(hs, "/"), nil)
			}
			waitClients(b, s, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Publish(Message{Topic: "sensors/dht22", Payload: reading})
			}
		})
	}
}
