package broadcast

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast/internal/wstest"
	"sensord/internal/testutil"
)

// WebSocket opcodes (RFC 6455 section 5.2), for tests that write raw frames.
const (
	opText   = websocket.TextMessage
	opBinary = websocket.BinaryMessage
	opClose  = websocket.CloseMessage
	opPing   = websocket.PingMessage
	opPong   = websocket.PongMessage
)

// The client does a real gorilla handshake, then writes raw bytes to its
// socket.
func TestServerAnswersProtocolErrorsWithTheirCloseCodes(t *testing.T) {
	k := [4]byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name string
		raw  []byte
		code int
	}{
		{"unmasked frame: 1002", []byte{0x81, 0x02, 'h', 'i'}, websocket.CloseProtocolError},
		{"text not UTF-8: 1007", wstest.ClientFrame(true, opText, []byte{0xc3, 0x28}, k), websocket.CloseInvalidFramePayloadData},
		{"client close 3000 is echoed", wstest.ClientFrame(true, opClose, []byte{0x0B, 0xB8}, k), 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hs := testServer(t, &ServerOpts{NoReplay: true})
			c := dial(t, wsURL(hs, "/"), nil)
			waitClients(t, s, 1)
			if _, err := c.NetConn().Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			wantClose(t, c, tc.code)
			c.Close()
			waitClients(t, s, 0)
		})
	}
}

func TestServerAssemblesFragmentedMessagesAndAnswersPings(t *testing.T) {
	got := make(chan Incoming, 1)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, OnMessage: func(in Incoming) { got <- in }})
	d := websocket.Dialer{WriteBufferSize: 256} // gorilla fragments bigger messages
	c, _, err := d.Dial(wsURL(hs, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitClients(t, s, 1)
	big := strings.Repeat("0123456789", 1000)
	if err := c.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-got:
		if string(in.Raw) != big {
			t.Fatalf("got %d bytes, want the %d-byte message", len(in.Raw), len(big))
		}
	case <-time.After(testutil.Scale(5 * time.Second)):
		t.Fatal("fragmented message not delivered")
	}
	pong := make(chan string, 1)
	c.SetPongHandler(func(p string) error { pong <- p; return nil })
	c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second))
	go c.ReadMessage() // gorilla runs handlers while reading
	select {
	case p := <-pong:
		if p != "are you there" {
			t.Fatalf("pong %q", p)
		}
	case <-time.After(testutil.Scale(5 * time.Second)):
		t.Fatal("no pong")
	}
}
