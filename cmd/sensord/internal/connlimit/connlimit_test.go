package connlimit

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"sensord/internal/testutil"
)

func serve(t *testing.T, n int) (*Limit, net.Listener, chan net.Conn) {
	return serveLimit(t, New(n, n, 0))
}

func serveLimit(t *testing.T, lim *Limit) (*Limit, net.Listener, chan net.Conn) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := lim.Listen(raw)
	t.Cleanup(func() { l.Close() })
	got := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			got <- c
		}
	}()
	return lim, l, got
}

// dialN makes n connections and returns the client ends and the
// accepted ones.
func dialN(t *testing.T, l net.Listener, got chan net.Conn, n int) (clients, held []net.Conn) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
		held = append(held, <-got)
	}
	return clients, held
}

// closed reports whether the server closed c's other end.
func closed(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testutil.Scale(200 * time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

func TestConnectionsOverTheBoundAreClosedAndCountedWhenNoneIsPending(t *testing.T) {
	lim, l, got := serve(t, 2)
	_, held := dialN(t, l, got, 2)
	for _, c := range held {
		lim.set(find(c), stateBusy)
	}
	extra, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection: read %v, want EOF (closed by the listener)", err)
	}
	if lim.Refused() != 1 || lim.Open() != 2 || lim.Evicted() != 0 {
		t.Fatalf("Refused %d Open %d Evicted %d, want 1, 2 and 0 (busy ones are never evicted)", lim.Refused(), lim.Open(), lim.Evicted())
	}

	// Closing one (twice: the slot is given back once) makes room.
	held[0].Close()
	held[0].Close()
	if lim.Open() != 1 {
		t.Fatalf("Open %d after a close, want 1", lim.Open())
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-got:
	case <-time.After(testutil.Scale(10 * time.Second)):
		t.Fatal("a connection within the bound was not accepted")
	}
}

func TestAcceptedConnectionsKeepTheirSocket(t *testing.T) {
	_, l, got := serve(t, 1)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, ok := (<-got).(syscall.Conn)
	if !ok {
		t.Fatal("accepted connection is not a syscall.Conn")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Control(func(fd uintptr) {
		if fd == 0 {
			t.Error("fd 0")
		}
	}); err != nil {
		t.Fatal(err)
	}
}

func TestANewConnectionEvictsTheOneWaitingLongestNeverABusyOrEstablishedOne(t *testing.T) {
	lim, l, got := serveLimit(t, New(4, 2, 0))
	clients, held := dialN(t, l, got, 2)
	lim.set(find(held[0]), stateBusy)
	lim.set(find(held[1]), stateEstablished)
	// Two pending: the bound on pending ones is reached.
	pc, _ := dialN(t, l, got, 2)
	// A fifth: over both bounds; the oldest pending (pc[0]) makes room.
	c5, _ := dialN(t, l, got, 1)
	if !closed(t, pc[0]) {
		t.Error("the connection pending longest is still open")
	}
	for i, c := range []net.Conn{clients[0], clients[1], pc[1], c5[0]} {
		if closed(t, c) {
			t.Errorf("connection %d was closed", i)
		}
	}
	if lim.Evicted() != 1 || lim.Refused() != 0 || lim.Open() != 4 || lim.Pending() != 2 {
		t.Errorf("evicted %d refused %d open %d pending %d; want 1, 0, 4, 2", lim.Evicted(), lim.Refused(), lim.Open(), lim.Pending())
	}
	// A connection that finishes a request and goes idle waits anew: it
	// is now the newest pending, so the next eviction takes pc[1].
	lim.set(find(held[0]), statePending)
	dialN(t, l, got, 1)
	if !closed(t, pc[1]) || closed(t, clients[0]) {
		t.Error("eviction did not take the connection waiting longest")
	}
}

func TestBytesBeforeTheFirstRequestAreBounded(t *testing.T) {
	lim, l, got := serveLimit(t, New(4, 4, 100))
	clients, held := dialN(t, l, got, 1)
	go clients[0].Write(make([]byte, 300))
	n, err := io.Copy(io.Discard, held[0])
	if n != 100 || !errors.Is(err, ErrPreRequest) {
		t.Errorf("read %d bytes, %v; want 100 and ErrPreRequest", n, err)
	}
	_ = lim
}

// Connections come back to pending from busy without passing Accept: a
// burst of requests answered at once must not leave more than MaxPending
// pending, or a peer holds memory past the budget by keeping its
// connections busy while they are accepted.
func TestConnectionsBackFromBusyKeepThePendingBound(t *testing.T) {
	lim, l, got := serveLimit(t, New(16, 2, 0))
	clients, held := dialN(t, l, got, 6)
	for _, c := range held {
		lim.set(find(c), stateBusy)
	}
	if lim.Pending() != 0 {
		t.Fatalf("pending %d with every connection busy, want 0", lim.Pending())
	}
	for _, c := range held {
		lim.set(find(c), statePending)
	}
	if lim.Pending() != 2 || lim.Evicted() != 4 || lim.Open() != 2 {
		t.Fatalf("pending %d evicted %d open %d; want 2, 4 and 2", lim.Pending(), lim.Evicted(), lim.Open())
	}
	for i, c := range clients {
		if want := i < 4; closed(t, c) != want {
			t.Errorf("connection %d closed: %v, want %v (the ones waiting longest go)", i, !want, want)
		}
	}
}
