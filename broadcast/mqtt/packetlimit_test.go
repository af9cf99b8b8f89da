package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"sensord/broadcast/mqtt/mosquittotest"
)

// streamConn is a net.Conn whose reads come from r in pieces of at most
// chunk bytes, as a socket delivers them.
type streamConn struct {
	net.Conn
	r     io.Reader
	chunk int
}

func (c *streamConn) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.chunk)]) }
func (c *streamConn) Close() error               { return nil }

// packetOf is an MQTT packet: first byte, remaining length, n bytes.
func packetOf(first byte, n int) []byte {
	h := []byte{first}
	for m := n; ; {
		d := byte(m % 128)
		m /= 128
		if m > 0 {
			d |= 0x80
		}
		h = append(h, d)
		if m == 0 {
			break
		}
	}
	return append(h, bytes.Repeat([]byte{byte(n)}, n)...)
}

func readAllLimited(in []byte, chunk, max int) ([]byte, int, error) {
	skipped := 0
	c := newLimitConn(&streamConn{r: bytes.NewReader(in), chunk: chunk}, max, func(int) { skipped++ })
	out, err := io.ReadAll(c)
	return out, skipped, err
}

func TestLimitConnPassesPacketsWithinTheBoundAndDropsLargeQoS0Publishes(t *testing.T) {
	small1 := packetOf(0x30, 10) // PUBLISH QoS 0
	connack := packetOf(0x20, 2) // CONNACK
	big := packetOf(0x31, 200)   // PUBLISH QoS 0, retained
	small2 := packetOf(0x90, 3)  // SUBACK
	exact := packetOf(0x30, 128) // PUBLISH at the bound, two length bytes
	in := bytes.Join([][]byte{connack, small1, big, small2, exact}, nil)
	want := bytes.Join([][]byte{connack, small1, small2, exact}, nil)
	for _, chunk := range []int{1, 2, 3, 7, 64, 4096} {
		got, skipped, err := readAllLimited(in, chunk, 128)
		if err != nil || !bytes.Equal(got, want) || skipped != 1 {
			t.Errorf("chunks of %d: err %v, skipped %d, got %d bytes, want %d bytes and one skipped", chunk, err, skipped, len(got), len(want))
		}
	}
}

func TestLimitConnEndsTheConnectionOnALargePacketItCannotSkip(t *testing.T) {
	for name, in := range map[string][]byte{
		"a QoS 1 publish":        packetOf(0x32, 200),
		"a SUBACK":               packetOf(0x90, 200),
		"a five-byte length":     {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"the protocol's largest": {0x90, 0xff, 0xff, 0xff, 0x7f},
	} {
		t.Run(name, func(t *testing.T) {
			got, _, err := readAllLimited(in, 4096, 128)
			if err == nil || len(got) != 0 {
				t.Errorf("got %d bytes, err %v; want nothing and an error", len(got), err)
			}
			if name != "a five-byte length" && !errors.Is(err, ErrPacketTooLarge) {
				t.Errorf("err %v, want ErrPacketTooLarge", err)
			}
		})
	}
}

func FuzzLimitConn(f *testing.F) {
	f.Add(packetOf(0x30, 10), 3)
	f.Add(append(packetOf(0x31, 300), packetOf(0x20, 2)...), 1)
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff}, 2)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		chunk = 1 + abs(chunk)%64
		got, _, _ := readAllLimited(in, chunk, 128)
		if len(got) > len(in) {
			t.Fatalf("%d bytes out of %d in", len(got), len(in))
		}
		// Whatever passes is whole packets within the bound, then at most
		// the start of one.
		for len(got) > 0 {
			n, hl := 0, 1
			for shift := 0; hl < len(got); hl++ {
				n |= int(got[hl]&0x7f) << shift
				shift += 7
				if got[hl]&0x80 == 0 {
					hl++
					break
				}
			}
			if n > 128 {
				t.Fatalf("a packet of %d bytes passed the bound of 128", n)
			}
			if hl+n >= len(got) {
				break
			}
			got = got[hl+n:]
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// TestARetainedMessageOverThePacketBoundIsDroppedAsItArrives publishes a
// 32 MiB retained message on the subscribed topic of a real Mosquitto:
// the bridge must never hold it (its allocations while it receives it stay
// a fraction of its size), count it, keep its connection, pass the next
// small message, and do the same when it starts again and the broker
// sends the retained message anew.
func TestARetainedMessageOverThePacketBoundIsDroppedAsItArrives(t *testing.T) {
	const size, allowed = 32 << 20, 8 << 20
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	publishRaw(t, broker, "sensors/huge", true, strings.Repeat("x", size))
	runtime.GC()

	for round := 1; round <= 2; round++ {
		var passed atomic.Int64
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b := newBridge(t, Opts{URL: broker.URL(), Subscribe: "sensors/#", OnMessage: func(m HubMessage) { passed.Add(1) }})
		stop := run(t, b)
		waitStats(t, b, "the oversized retained message dropped", func(s Stats) bool { return s.Oversize == 1 })
		runtime.ReadMemStats(&after)
		grew := after.TotalAlloc - before.TotalAlloc
		t.Logf("round %d: %d MiB retained message; the bridge allocated %d KiB while receiving it", round, size>>20, grew>>10)
		if grew > allowed {
			t.Errorf("round %d: %d MiB allocated while a %d MiB message arrived, want at most %d MiB", round, grew>>20, size>>20, allowed>>20)
		}
		publishRaw(t, broker, "sensors/small", false, "21.5")
		waitStats(t, b, "the next message passed", func(s Stats) bool { return s.Passed >= 1 })
		if s := b.Stats(); s.Connects != 1 || s.ConnectErrors != 0 || !s.Connected {
			t.Errorf("round %d: %+v, want one connection that held", round, s)
		}
		stop()
	}
}
