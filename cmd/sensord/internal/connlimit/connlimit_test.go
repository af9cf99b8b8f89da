package connlimit

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"sensord/internal/testutil"
)

func serve(t *testing.T, n int) (*Limit, net.Listener, chan net.Conn) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := New(n)
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

func TestConnectionsOverTheBoundAreClosedAndCounted(t *testing.T) {
	lim, l, got := serve(t, 2)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, <-got)
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
	if lim.Refused() != 1 || lim.Open() != 2 {
		t.Fatalf("Refused %d Open %d, want 1 and 2", lim.Refused(), lim.Open())
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
