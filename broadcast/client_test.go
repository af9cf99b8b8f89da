package broadcast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/internal/link"
	"sensord/internal/testutil"
)

// liveServer is a Server on a fixed loopback address that a test can stop
// and start again (a restart), collecting what clients send it.
type liveServer struct {
	t    *testing.T
	addr string
	got  chan string
	s    *Server
	hs   *http.Server
	opts ServerOpts
	// token, when set, is required as a bearer header or access_token
	// (the daemon's front door does this in front of the server).
	token string
}

func newLiveServer(t *testing.T, o ServerOpts) *liveServer {
	return newLiveServerWithToken(t, o, "")
}

func newLiveServerWithToken(t *testing.T, o ServerOpts, token string) *liveServer {
	ls := &liveServer{t: t, addr: "127.0.0.1:0", got: make(chan string, 100), opts: o, token: token}
	ls.start()
	t.Cleanup(ls.stop)
	return ls
}

func (ls *liveServer) start() {
	l, err := net.Listen("tcp", ls.addr)
	if err != nil {
		ls.t.Fatal(err)
	}
	ls.addr = l.Addr().String()
	o := ls.opts
	o.OnMessage = func(in Incoming) { ls.got <- string(in.Raw) }
	ls.s = NewServer(&o)
	ls.hs = &http.Server{Handler: ls.s}
	if ls.token != "" {
		ls.hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+ls.token && r.URL.Query().Get("access_token") != ls.token {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			ls.s.ServeHTTP(w, r)
		})
	}
	go ls.hs.Serve(l)
}

func (ls *liveServer) stop() {
	if ls.s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls.s.Close(ctx)
	ls.hs.Close()
	ls.s = nil
}

func (ls *liveServer) url() string { return "ws://" + ls.addr + "/ws/sensors" }

func (ls *liveServer) want(t *testing.T, msgs ...string) {
	t.Helper()
	for _, w := range msgs {
		select {
		case g := <-ls.got:
			if g != w {
				t.Fatalf("server got %q, want %q", g, w)
			}
		case <-time.After(testutil.Scale(10 * time.Second)):
			t.Fatalf("server did not get %q", w)
		}
	}
}

// runClient runs c until the test ends and checks that Run returns nil.
func runClient(t *testing.T, c *Client) {
	stop := testutil.Go(t, c.Run)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

func waitState(t *testing.T, c *Client, state link.State) ClientState {
	t.Helper()
	var st ClientState
	testutil.Until(t, 20*time.Second, func() bool { st = c.State(); return st.State == state },
		func() string { return fmt.Sprintf("state %+v, want %s", st, state) })
	return st
}

func TestNewClientRejectsURLsThatAreNotWebSockets(t *testing.T) {
	for _, u := range []string{"http://x/ws", "x/ws", "ws://", "://bad"} {
		if _, err := NewClient(u, nil); err == nil {
			t.Errorf("NewClient(%q): no error", u)
		}
	}
	for _, u := range []string{"ws://127.0.0.1:1/ws", "wss://example.com/ws/sensors"} {
		if _, err := NewClient(u, nil); err != nil {
			t.Errorf("NewClient(%q): %v", u, err)
		}
	}
}

func TestClientDeliversToARealServerWithTheSameEncoding(t *testing.T) {
	ls := newLiveServerWithToken(t, ServerOpts{}, "tok")
	c, _ := NewClient(ls.url(), &ClientOpts{Header: http.Header{"Authorization": {"Bearer tok"}}})
	runClient(t, c)
	waitState(t, c, link.Connected)
	c.Publish(Message{Topic: "t", Payload: map[string]float64{"temperature": 21.4}})
	c.Publish(Message{Payload: "text as is"})
	c.Publish(Message{Payload: ""}) // not sent
	ls.want(t, `{"temperature":21.4}`, "text as is")

	w, _ := NewClient(ls.url()+"?access_token=tok", &ClientOpts{WholeMsg: true})
	runClient(t, w)
	waitState(t, w, link.Connected)
	w.Publish(Message{Topic: "t", Payload: 1, ID: "id1"})
	ls.want(t, `{"topic":"t","payload":1,"_msgid":"id1"}`)
}

func TestClientSurvivesServerRestartAndDropsOldestWhileDown(t *testing.T) {
	ls := newLiveServer(t, ServerOpts{})
	c, _ := NewClient(ls.url(), &ClientOpts{Buffer: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	runClient(t, c)
	waitState(t, c, link.Connected)
	c.Publish(Message{Payload: "before"})
	ls.want(t, "before")

	ls.stop() // sends 1001
	st := waitState(t, c, link.BackingOff)
	if !strings.Contains(st.Reason, "1001") {
		t.Errorf("reason %q, want the server's 1001", st.Reason)
	}
	for i := 1; i <= 5; i++ {
		c.Publish(Message{Payload: fmt.Sprint("down ", i)})
	}
	if st := c.State(); st.Dropped != 2 || st.Queued != 3 {
		t.Fatalf("while down: dropped %d queued %d, want 2 and 3", st.Dropped, st.Queued)
	}
	ls.start() // same address
	waitState(t, c, link.Connected)
	ls.want(t, "down 3", "down 4", "down 5")
	c.Publish(Message{Payload: "after"})
	ls.want(t, "after")
}

// With a Backfill, what the full buffer dropped while the server was away
// reaches it after all: the stretch from history first, then the waiting
// messages, each once, in order; untimed messages are not back-filled.
func TestClientBackFillsWhatTheFullBufferDropped(t *testing.T) {
	ls := newLiveServer(t, ServerOpts{})
	base := time.Now()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	// The history: every timed message the client was given, as the
	// daemon's store keeps each reading.
	var mu sync.Mutex
	var stored []Message
	var asked [][2]time.Time
	reading := func(i int) Message {
		m := Message{Payload: fmt.Sprint("reading ", i), Time: at(i)}
		mu.Lock()
		stored = append(stored, m)
		mu.Unlock()
		return m
	}
	c, _ := NewClient(ls.url(), &ClientOpts{Buffer: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Backfill: func(ctx context.Context, from, to time.Time, emit func(Message) error) error {
			mu.Lock()
			asked = append(asked, [2]time.Time{from, to})
			ms := slices.Clone(stored)
			mu.Unlock()
			for _, m := range ms {
				if m.Time.After(from) && m.Time.Before(to) {
					if err := emit(m); err != nil {
						return err
					}
				}
			}
			return nil
		}})
	c.now = func() time.Time { return base }
	runClient(t, c)
	waitState(t, c, link.Connected)
	c.Publish(reading(1))
	ls.want(t, "reading 1")

	ls.stop()
	waitState(t, c, link.BackingOff)
	c.Publish(Message{Payload: "a notice, not a reading"})
	for i := 2; i <= 9; i++ {
		c.Publish(reading(i))
	}
	if st := c.State(); st.Dropped != 6 || st.Queued != 3 {
		t.Fatalf("while down: dropped %d queued %d, want 6 and 3", st.Dropped, st.Queued)
	}
	ls.start()
	waitState(t, c, link.Connected)
	ls.want(t, "reading 2", "reading 3", "reading 4", "reading 5", "reading 6", "reading 7", "reading 8", "reading 9")
	c.Publish(reading(10))
	ls.want(t, "reading 10")
	if st := c.State(); st.Backfilled != 5 {
		t.Errorf("Backfilled %d, want 5 (readings 2 to 6)", st.Backfilled)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || !asked[0][0].Equal(at(1)) || !asked[0][1].Equal(at(7)) {
		t.Errorf("Backfill asked for %v, want once for (reading 1, reading 7)", asked)
	}
}

func TestClientBacksOffExponentiallyWithJitter(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens: every dial fails at once
	var mu sync.Mutex
	var states []ClientState
	c, _ := NewClient("ws://"+addr+"/", &ClientOpts{
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		OnState: func(s ClientState) { mu.Lock(); states = append(states, s); mu.Unlock() },
	})
	c.jitter = func() float64 { return 1 } // the top of each range: d
	runClient(t, c)
	want := []time.Duration{20, 40, 80, 80}
	// Each backoff says what it waits: 20 40 80 80 (MaxBackoff) ..., and
	// the next dial comes no sooner (timers never fire early; on a busy
	// machine they fire late, so how much later is not checked).
	var backoffs []ClientState
	var gaps []time.Duration
	retries := func() int {
		mu.Lock()
		defer mu.Unlock()
		backoffs, gaps = backoffs[:0], gaps[:0]
		for i := 0; i+1 < len(states); i++ {
			if states[i].State == link.BackingOff && states[i+1].State == link.Connecting {
				backoffs = append(backoffs, states[i])
				gaps = append(gaps, states[i+1].Since.Sub(states[i].Since))
			}
		}
		return len(backoffs)
	}
	testutil.Until(t, 20*time.Second, func() bool { return retries() >= len(want) },
		func() string { return fmt.Sprintf("only %d retries: %v", len(gaps), gaps) })
	for i, w := range want {
		w *= time.Millisecond
		b := backoffs[i]
		if b.Retry != w || gaps[i] < w || !strings.HasPrefix(b.Reason, "dial:") || b.Attempts != i+1 {
			t.Errorf("retry %d: state %+v waited %v, want Retry %v, a dial reason, attempt %d and no earlier dial", i+1, b, gaps[i], w, i+1)
		}
	}
	c2, _ := NewClient("ws://"+addr+"/", &ClientOpts{MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	c2.jitter = func() float64 { return 0 }
	if d := c2.backoff(3); d != 40*time.Millisecond {
		t.Errorf("backoff(3) with jitter 0 = %v, want 40ms (half of 80ms)", d)
	}
}

func TestClientDetectsADeadPeerByMissingPongs(t *testing.T) {
	// A server that upgrades and then never reads: pings are never answered.
	upgraded := make(chan struct{}, 1)
	release := make(chan struct{}) // the server holds the connection until the test ends
	hs := httptest_NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := NewServer(nil)
		ws, err := s.up.Upgrade(w, r, nil)
		s.Close(context.Background())
		if err != nil {
			return
		}
		upgraded <- struct{}{}
		<-release
		ws.Close()
	}))
	t.Cleanup(func() { close(release) }) // before hs closes (cleanups run last first)
	c, _ := NewClient(wsURL(hs, "/"), &ClientOpts{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond, MinBackoff: time.Minute})
	runClient(t, c)
	<-upgraded
	start := time.Now()
	st := waitState(t, c, link.BackingOff)
	if d := time.Since(start); d > time.Second {
		t.Errorf("dead peer noticed after %v, want ~150ms", d)
	}
	if !strings.Contains(st.Reason, "no pong") {
		t.Errorf("reason %q, want no pong", st.Reason)
	}
}

func TestClientHandshakeTimeout(t *testing.T) {
	// Accepts TCP, never answers the upgrade.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, _ := NewClient("ws://"+l.Addr().String()+"/", &ClientOpts{HandshakeTimeout: 100 * time.Millisecond, MinBackoff: time.Minute})
	runClient(t, c)
	start := time.Now()
	st := waitState(t, c, link.BackingOff)
	if d := time.Since(start); d > time.Second {
		t.Errorf("gave up after %v, want ~100ms", d)
	}
	if !strings.Contains(st.Reason, "deadline") && !strings.Contains(st.Reason, "timeout") {
		t.Errorf("reason %q, want a timeout", st.Reason)
	}
}

func TestClientRunStopsOnCancelWithGoingAway(t *testing.T) {
	events := make(chan Event, 4)
	ls := newLiveServer(t, ServerOpts{OnEvent: func(e Event) { events <- e }})
	c, _ := NewClient(ls.url(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitState(t, c, link.Connected)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st := c.State(); st.State != link.Stopped {
		t.Fatalf("state %+v, want stopped", st)
	}
	for e := range events {
		if e.Kind == Disconnect {
			break
		}
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunTwice) {
		t.Errorf("second Run = %v, want ErrRunTwice", err)
	}
}
