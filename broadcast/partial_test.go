package broadcast

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

// A client that stops reading for a while fills its socket: the pass
// workers' non-blocking writes then stop part-way through a frame, and its
// own goroutine finishes the frame and writes the rest. The client must
// get every frame, whole and in order, and the others must not wait.
func TestSlowReaderGetsEveryFrameWholeAfterItsSocketFilled(t *testing.T) {
	const n, size = 400, 16000 // 6.4 MB: more than the two socket buffers hold (~3 MiB)
	s, hs := testServer(t, &ServerOpts{RingSize: 1024, NoReplay: true})
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
