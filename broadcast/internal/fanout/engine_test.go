package fanout

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"sensord/broadcast/internal/wstest"
	"sensord/internal/testutil"
)

// tcpPair returns both ends of a real loopback TCP connection: the
// server's (what Join gets after an upgrade) and the client's.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close() })
	return server, client
}

// readFrame reads one unmasked server frame of up to 125 bytes.
func readFrame(t *testing.T, r *bufio.Reader) (op byte, payload string) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	if h[1] > 125 {
		t.Fatalf("frame length byte %d: want a short unmasked frame", h[1])
	}
	p := make([]byte, h[1])
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0] & 0x0F, string(p)
}

// The engine's whole surface over real TCP: Join with a filter gets the
// replay and then only the matching frames, Reply reaches that session
// only, OnMessage gets what the client sends, and Close says 1001 and
// ends with OnLeave.
func TestEngineJoinPublishReplyAndClose(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var events []string
	o := testOptions()
	o.Replay = 1
	o.OnMessage = func(session string, p []byte, binary bool) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s:%s:%v", session, p, binary))
		mu.Unlock()
	}
	o.OnJoin = func(session, remote string, n int) {
		mu.Lock()
		events = append(events, fmt.Sprintf("join %s %d", session, n))
		mu.Unlock()
	}
	left := make(chan string, 1)
	o.OnLeave = func(session, remote string, n int) { left <- fmt.Sprintf("leave %s %d", session, n) }
	e, err := New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	e.Publish(text("a", "retained a"))
	e.Publish(text("b", "retained b"))

	sc, cc := tcpPair(t)
	joined := make(chan bool, 1)
	go func() { joined <- e.Join(sc, e.Mark(), "s1", "peer", []string{"a"}) }()
	if !<-joined {
		t.Fatal("Join refused by an open engine")
	}
	r := bufio.NewReader(cc)
	cc.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	if op, p := readFrame(t, r); op != opText || p != "retained a" {
		t.Fatalf("first frame %d %q, want the replay of topic a only", op, p)
	}
	e.Publish(text("b", "b1"))
	e.Publish(text("a", "a1"))
	if err := e.Reply("s1", text("b", "reply")); err != nil {
		t.Fatal(err)
	}
	if err := e.Reply("nobody", text("", "x")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Reply to an unknown session: %v, want ErrNoSession", err)
	}
	// The reply may overtake the broadcast (they are separate streams);
	// each stream keeps its order, and b1 never comes.
	want := map[string]bool{"a1": true, "reply": true}
	for range 2 {
		_, p := readFrame(t, r)
		if !want[p] {
			t.Fatalf("got %q, want a1 and the reply", p)
		}
		delete(want, p)
	}
	// A masked text frame "hi" from the client.
	if _, err := cc.Write(wstest.ClientFrame(true, opText, []byte("hi"), [4]byte{1, 2, 3, 4})); err != nil {
		t.Fatal(err)
	}
	testutil.Until(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 },
		func() string { return "OnMessage was not called" })
	if st := settledStats(e, func(st Stats) bool { return st.Sent == 3 }); st.Clients != 1 || st.Sent != 3 || st.Replies != 1 || st.RepliesDropped != 1 {
		t.Errorf("stats %+v: want 1 client, 3 sent (replay, a1, reply), 1 reply, 1 dropped", st)
	}

	closed := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(10*time.Second))
	defer cancel()
	go func() { closed <- e.Close(ctx) }()
	if op, p := readFrame(t, r); op != opClose || p != "\x03\xe9" {
		t.Fatalf("on Close: frame %d %q, want a close frame with 1001", op, p)
	}
	if _, err := cc.Write(wstest.ClientFrame(true, opClose, []byte{0x03, 0xe9}, [4]byte{5, 6, 7, 8})); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if l := <-left; l != "leave s1 0" {
		t.Errorf("OnLeave: %q", l)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(events) != "[join s1 1]" || fmt.Sprint(got) != "[s1:hi:false]" {
		t.Errorf("events %v, messages %v", events, got)
	}
	sc2, _ := tcpPair(t)
	if e.Join(sc2, e.Mark(), "s2", "late", nil) {
		t.Error("Join after Close: true")
	}
	var retained []string
	for f := range e.Retained {
		retained = append(retained, f.Meta)
	}
	if fmt.Sprint(retained) != "[a1 b1 retained b retained a]" {
		t.Errorf("Retained = %v, want every published frame, newest first", retained)
	}
}

// settledStats returns e's stats once done holds, or after 20 s (scaled).
func settledStats(e *Engine[string], done func(Stats) bool) Stats {
	st := e.Stats()
	testutil.Within(20*time.Second, func() bool { st = e.Stats(); return done(st) })
	return st
}

// New starts no goroutine: an engine nobody joins costs none, and Close
// of such an engine returns at once. The first Join starts the loop and
// the helpers.
func TestNewStartsNoGoroutineUntilTheFirstJoin(t *testing.T) {
	o := testOptions()
	o.Writers = 4
	before := runtime.NumGoroutine()
	e, err := New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	e.Publish(text("a", "published before any client"))
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after New, %d before", n, before)
	}
	if age := time.Since(e.Progress()); age > time.Second {
		t.Errorf("an idle engine's progress is %v old: a watchdog would call it stuck", age)
	}
	sc, cc := tcpPair(t)
	go io.Copy(io.Discard, cc)
	if !e.Join(sc, e.Mark(), "s1", "peer", nil) {
		t.Fatal("Join refused by an open engine")
	}
	// The loop, 3 helpers and the connection's reader at least.
	if n := runtime.NumGoroutine(); n < before+5 {
		t.Errorf("%d goroutines after the first Join, %d before: the loop and helpers did not start", n, before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(10*time.Second))
	defer cancel()
	cc.Close()
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	idle, err := New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(ctx); err != nil {
		t.Fatalf("Close of an engine nobody joined: %v", err)
	}
	if idle.Join(sc, 0, "s2", "peer", nil) {
		t.Error("Join accepted by a closed engine")
	}
}
