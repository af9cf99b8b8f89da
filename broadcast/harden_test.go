package broadcast

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

// rawUpgrade opens a TCP connection to hs and does the WebSocket handshake
// by hand (so that the test controls every byte that follows), with the
// extra header lines given.
func rawUpgrade(t testing.TB, hs *httptest.Server, path string, extra ...string) (net.Conn, *http.Response) {
	t.Helper()
	nc, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + hs.Listener.Addr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	has13 := false
	for _, h := range extra {
		req += h + "\r\n"
		has13 = has13 || strings.HasPrefix(h, "Sec-WebSocket-Version")
	}
	if !has13 {
		req += "Sec-WebSocket-Version: 13\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Time{})
	return nc, resp
}

// clientHeader is a masked client frame header announcing n payload bytes
// (always the 8-byte length form: 14 bytes).
func clientHeader(op byte, n uint64) []byte {
	h := []byte{0x80 | op, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, n)
	return append(h, 1, 2, 3, 4)
}

func TestAHeaderAnnouncing64KiBHoldsOnlyTheBytesReceived(t *testing.T) {
	const conns = 20
	b := NewBudget(0)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, Budget: b})
	for range conns {
		nc, resp := rawUpgrade(t, hs, "/")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %s", resp.Status)
		}
		if _, err := nc.Write(clientHeader(opBinary, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	waitClients(t, s, conns)
	// Headers without payload are awaited in the header's own space.
	const want = 0

	// The payload that then arrives grows the room with it; the whole
	// message is delivered and its room given back.
	got := make(chan int, 1)
	s2, hs2 := testServer(t, &ServerOpts{NoReplay: true, Budget: b, OnMessage: func(in Incoming) { got <- len(in.Raw) }})
	nc, _ := rawUpgrade(t, hs2, "/")
	waitClients(t, s2, 1)
	payload := make([]byte, 64<<10)
	mask := []byte{1, 2, 3, 4}
	for i := range payload {
		payload[i] = 'x' ^ mask[i&3]
	}
	nc.Write(append(clientHeader(opBinary, uint64(len(payload))), payload...))
	select {
	case n := <-got:
		if n != len(payload) {
			t.Fatalf("message of %d bytes, want %d", n, len(payload))
		}
	case <-time.After(testutil.Scale(10 * time.Second)):
		t.Fatal("the whole message never arrived")
	}
	testutil.Until(t, 10*time.Second, func() bool { return b.Used() == want }, func() string {
		return fmt.Sprintf("budget holds %d bytes after the message was handled, want %d", b.Used(), want)
	})
}

func TestPartialMessagesOverTheBudgetCloseWith1013AndAreCounted(t *testing.T) {
	b := NewBudget(8 << 10)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, Budget: b})
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	wantClose(t, c, websocket.CloseTryAgainLater)
	if b.Refused() == 0 {
		t.Error("Refused = 0 after a message over the budget")
	}
	testutil.Until(t, 10*time.Second, func() bool { return b.Used() == 0 }, func() string {
		return fmt.Sprintf("budget holds %d bytes after the connection ended, want 0", b.Used())
	})
}

func TestTopicFiltersAreCappedAndAnUnparsableQueryFailsClosed(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{})
	many := strings.Repeat("topic=a/b&", MaxFilters+1)
	for _, tc := range []struct {
		name, query, reason string
	}{
		{"too many filters", many, "at most 32"},
		{"a bad escape", "topic=sensors/%zz", "does not parse"},
		{"a semicolon", "topic=sensors/%23;x=1", "does not parse"},
		{"an invalid filter", "topic=a/b%23", "bad topic filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(wsURL(hs, "/?"+tc.query), nil)
			if err == nil {
				t.Fatal("dial succeeded; want 400")
			}
			if resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("resp %v, want 400", resp)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), tc.reason) {
				t.Errorf("body %q does not say %q", body, tc.reason)
			}
		})
	}
	// At the cap a client connects and its filters apply.
	c := dial(t, wsURL(hs, "/?"+strings.Repeat("topic=x/y&", MaxFilters-1)+"topic=sensors/%23"), nil)
	waitClients(t, s, 1)
	s.Publish(Message{Topic: "other", Payload: "no"})
	s.Publish(Message{Topic: "sensors/dht22", Payload: "yes"})
	if _, p := read(t, c); p != "yes" {
		t.Fatalf("got %q, want only the matching topic", p)
	}
}

func TestUnsupportedVersionIsToldVersion13(t *testing.T) {
	_, hs := testServer(t, &ServerOpts{})
	_, resp := rawUpgrade(t, hs, "/", "Sec-WebSocket-Version: 8")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %s, want 400", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Version"); got != "13" {
		t.Fatalf("Sec-WebSocket-Version %q, want 13 (RFC 6455 4.4)", got)
	}
}

// echoServer answers every incoming frame with a reply to its session.
func echoServer(t *testing.T, queue int) (*Server, *httptest.Server) {
	var s *Server
	s, hs := testServer(t, &ServerOpts{NoReplay: true, ReplyQueue: queue, OnMessage: func(in Incoming) {
		_ = s.Publish(Message{Session: in.Session, Payload: "re:" + string(in.Raw)})
	}})
	return s, hs
}

func TestPipelinedRequestsSlowTheReaderInsteadOfClosing(t *testing.T) {
	const n = 200 // many times the reply queue
	s, hs := echoServer(t, DefaultReplyQueue)
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	for i := range n {
		c.SetWriteDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
		if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, p := read(t, c); p != fmt.Sprintf("re:%d", i) {
			t.Fatalf("reply %d: %q", i, p)
		}
	}
	if st := s.Stats(); st.RepliesDropped != 0 || st.Disconnects != 0 {
		t.Fatalf("RepliesDropped %d, Disconnects %d; want none", st.RepliesDropped, st.Disconnects)
	}
}

func TestRepliesQueuedBeforeTheClientsCloseAreSentFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		last  []byte // what follows the requests
		close int
	}{
		{"a close frame", []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}, websocket.CloseNormalClosure},
		{"a protocol error", []byte{0x83, 0x80, 0, 0, 0, 0}, websocket.CloseProtocolError}, // unknown opcode 3
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hs := echoServer(t, DefaultReplyQueue)
			nc, _ := rawUpgrade(t, hs, "/")
			waitClients(t, s, 1)
			var out []byte
			for i := range 10 {
				p := fmt.Appendf(nil, "%d", i)
				out = append(out, 0x81, 0x80|byte(len(p)), 0, 0, 0, 0)
				out = append(out, p...)
			}
			if _, err := nc.Write(append(out, tc.last...)); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
			br := bufio.NewReader(nc)
			for i := range 10 {
				op, p := readServerFrame(t, br)
				if op != opText || string(p) != fmt.Sprintf("re:%d", i) {
					t.Fatalf("frame %d: op %d %q, want reply re:%d", i, op, p, i)
				}
			}
			op, p := readServerFrame(t, br)
			if op != opClose || len(p) < 2 || int(binary.BigEndian.Uint16(p)) != tc.close {
				t.Fatalf("after the replies: op %d %q, want close %d", op, p, tc.close)
			}
		})
	}
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := int(h[1] & 0x7F)
	switch n {
	case 126:
		var x [2]byte
		io.ReadFull(br, x[:])
		n = int(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		io.ReadFull(br, x[:])
		n = int(binary.BigEndian.Uint64(x[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0F, p
}

func TestAPingBetweenFragmentsKeepsTheMessagesRoomCounted(t *testing.T) {
	b := NewBudget(0)
	got := make(chan int, 1)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, Budget: b, OnMessage: func(in Incoming) { got <- len(in.Raw) }})
	nc, _ := rawUpgrade(t, hs, "/")
	waitClients(t, s, 1)
	frag := func(op byte, fin bool, n int) []byte {
		h := []byte{op, 0x80 | 126, byte(n >> 8), byte(n), 0, 0, 0, 0}
		if fin {
			h[0] |= 0x80
		}
		return append(h, make([]byte, n)...)
	}
	nc.Write(frag(opBinary, false, 1000))
	nc.Write([]byte{0x80 | opPing, 0x80, 0, 0, 0, 0}) // a ping between the fragments
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	if op, _ := readServerFrame(t, br); op != opPong {
		t.Fatalf("op %d, want a pong", op)
	}
	if u := b.Used(); u < 1000 {
		t.Fatalf("budget holds %d bytes with 1000 of a message received, want at least 1000", u)
	}
	nc.Write(frag(0, true, 1000))
	select {
	case n := <-got:
		if n != 2000 {
			t.Fatalf("message of %d bytes, want 2000", n)
		}
	case <-time.After(testutil.Scale(10 * time.Second)):
		t.Fatal("the fragmented message never arrived")
	}
	testutil.Until(t, 10*time.Second, func() bool { return b.Used() == 0 },
		func() string { return fmt.Sprintf("budget holds %d bytes after the message, want 0", b.Used()) })
}

// Clients whose upgrade completes while Close runs are told 1001 like the
// others, never dropped without a close frame.
func TestClientsUpgradedWhileClosingAreToldGoingAway(t *testing.T) {
	const n = 60
	s, hs := testServer(t, &ServerOpts{NoReplay: true})
	errs := make(chan error, n)
	started := make(chan struct{}, n)
	for range n {
		go func() {
			started <- struct{}{}
			c, _, err := websocket.DefaultDialer.Dial(wsURL(hs, "/"), nil)
			if err != nil {
				errs <- nil // refused (503) or not served: not a client
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
			for err == nil {
				_, _, err = c.ReadMessage()
			}
			errs <- err
		}()
	}
	for range n / 2 {
		<-started
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(10*time.Second))
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil && !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("a client that was upgraded got %v, want close 1001", err)
		}
	}
}
