package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

func TestBroadcastReachesAllClients(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{NoReplay: true})
	var clients []*websocket.Conn
	for range 5 {
		clients = append(clients, dial(t, wsURL(hs, "/ws/sensors"), nil))
	}
	waitClients(t, s, 5)
	for _, tc := range []struct {
		payload any
		want    string
	}{
		{map[string]int{"a": 1}, `{"a":1}`},
		{"plain text goes as is", "plain text goes as is"},
		{json.RawMessage(`{"raw":true}`), `{"raw":true}`},
		{21.5, "21.5"},
	} {
		if err := s.Publish(Message{Topic: "t", Payload: tc.payload}); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			mt, got := read(t, c)
			if mt != websocket.TextMessage || got != tc.want {
				t.Fatalf("got %d %q, want text %q", mt, got, tc.want)
			}
		}
	}
	// Sent is counted when the write returns, which may be just after
	// the client has read the frame.
	testutil.Within(20*time.Second, func() bool { return s.Stats().Sent == 20 })
	if st := s.Stats(); st.Published != 4 || st.Sent != 20 {
		t.Errorf("stats published %d sent %d, want 4 and 20", st.Published, st.Sent)
	}
}

func TestBinaryPayloadGoesAsBinaryFrame(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{NoReplay: true})
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	s.Publish(Message{Payload: []byte{0, 1, 2, 255}})
	mt, got := read(t, c)
	if mt != websocket.BinaryMessage || got != "\x00\x01\x02\xff" {
		t.Fatalf("got %d %q, want binary 00 01 02 ff", mt, got)
	}
}

func TestEmptyPayloadIsNotSent(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{NoReplay: true})
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	for _, p := range []any{nil, "", []byte{}} {
		if err := s.Publish(Message{Topic: "t", Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	s.Publish(Message{Topic: "t", Payload: "first real"})
	if _, got := read(t, c); got != "first real" {
		t.Fatalf("got %q, want the first non-empty message", got)
	}
	if n := len(s.history("", 0)); n != 1 {
		t.Errorf("History has %d messages, want 1", n)
	}
}

func TestWholeMsgFramesTheWholeMessageWithoutSession(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{WholeMsg: true, NoReplay: true})
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	s.Publish(Message{Topic: "sensors/dht22", Payload: map[string]any{"temperature": 21.4}, ID: "abc"})
	_, got := read(t, c)
	if want := `{"topic":"sensors/dht22","payload":{"temperature":21.4},"_msgid":"abc"}`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	// A generated _msgid, a string payload, bytes as Node-RED's Buffer.
	s.Publish(Message{Topic: "t", Payload: "hi"})
	_, got = read(t, c)
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if id, _ := m["_msgid"].(string); len(id) != 16 || m["payload"] != "hi" {
		t.Fatalf("got %s: want payload \"hi\" and a 16-digit _msgid", got)
	}
	s.Publish(Message{Topic: "b", Payload: []byte{1, 2}, ID: "x"})
	if _, got = read(t, c); got != `{"topic":"b","payload":{"type":"Buffer","data":[1,2]},"_msgid":"x"}` {
		t.Fatalf("bytes in wholemsg: got %s", got)
	}
	if strings.Contains(got, "session") {
		t.Fatalf("wholemsg carries the session: %s", got)
	}
}

func TestReplyReachesOnlyItsSession(t *testing.T) {
	in := make(chan Incoming, 10)
	s, hs := testServer(t, &ServerOpts{NoReplay: true, OnMessage: func(m Incoming) { in <- m }})
	asker := dial(t, wsURL(hs, "/ws/api"), nil)
	other := dial(t, wsURL(hs, "/ws/api"), nil)
	waitClients(t, s, 2)
	if err := asker.WriteMessage(websocket.TextMessage, []byte(`{"action":"get_status"}`)); err != nil {
		t.Fatal(err)
	}
	var req Incoming
	select {
	case req = <-in:
	case <-time.After(testutil.Scale(5 * time.Second)):
		t.Fatal("no incoming message")
	}
	if !req.JSON || req.Msg["action"] != "get_status" || req.Session == "" {
		t.Fatalf("incoming = %+v", req)
	}
	if err := s.Publish(Message{Session: req.Session, Payload: `{"status":"online"}`}); err != nil {
		t.Fatal(err)
	}
	if _, got := read(t, asker); got != `{"status":"online"}` {
		t.Fatalf("asker got %q", got)
	}
	// The other client's next frame is the following broadcast, not the reply.
	s.Publish(Message{Payload: "broadcast"})
	if _, got := read(t, other); got != "broadcast" {
		t.Fatalf("other client got %q, want the broadcast (the reply leaked)", got)
	}
	// A reply to a session that has gone is dropped and counted.
	asker.Close()
	waitClients(t, s, 1)
	if err := s.Publish(Message{Session: req.Session, Payload: "late"}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("reply to a gone session: err = %v, want ErrNoSession", err)
	}
	if st := s.Stats(); st.RepliesDropped != 1 || st.Replies != 1 {
		t.Errorf("replies %d dropped %d, want 1 and 1", st.Replies, st.RepliesDropped)
	}
	s.Publish(Message{Payload: "after"})
	if _, got := read(t, other); got != "after" {
		t.Fatalf("other client got %q, want \"after\" (a reply to a gone session was broadcast)", got)
	}
}

func TestIncomingFramesAreParsedLikeNodeRED(t *testing.T) {
	in := make(chan Incoming, 10)
	s, hs := testServer(t, &ServerOpts{OnMessage: func(m Incoming) { in <- m }})
	c := dial(t, wsURL(hs, "/ws/api"), nil)
	waitClients(t, s, 1)
	c.WriteMessage(websocket.TextMessage, []byte(`{"a":1}`))
	c.WriteMessage(websocket.TextMessage, []byte(`not json`))
	c.WriteMessage(websocket.TextMessage, []byte(`[1,2]`))
	c.WriteMessage(websocket.BinaryMessage, []byte{9, 8})
	want := []struct {
		json, binary bool
		payload      any
	}{
		{true, false, nil},
		{false, false, "not json"},
		{false, false, "[1,2]"},
		{false, true, []byte{9, 8}},
	}
	for i, w := range want {
		var m Incoming
		select {
		case m = <-in:
		case <-time.After(testutil.Scale(5 * time.Second)):
			t.Fatalf("message %d did not arrive", i)
		}
		if m.JSON != w.json || m.Binary != w.binary {
			t.Errorf("message %d: json %v binary %v, want %v %v", i, m.JSON, m.Binary, w.json, w.binary)
		}
		if w.json {
			if m.Msg["a"] != 1.0 {
				t.Errorf("message %d: Msg = %v", i, m.Msg)
			}
			continue
		}
		if got := m.Msg["payload"]; !equalPayload(got, w.payload) {
			t.Errorf("message %d: payload %#v, want %#v", i, got, w.payload)
		}
	}
}

func equalPayload(a, b any) bool {
	ab, aok := a.([]byte)
	bb, bok := b.([]byte)
	if aok || bok {
		return aok && bok && string(ab) == string(bb)
	}
	return a == b
}

func TestTopicFiltersWithWildcards(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{NoReplay: true})
	// Every client also subscribes to "end", the last message.
	clients := map[string]*websocket.Conn{
		"all":     dial(t, wsURL(hs, "/"), nil),
		"plus":    dial(t, wsURL(hs, "/?topic=end&topic=sensors/%2B/temp"), nil),
		"hash":    dial(t, wsURL(hs, "/?topic=end&topic=sensors/%23"), nil),
		"two":     dial(t, wsURL(hs, "/?topic=end&topic=system&topic=sensors/kitchen/temp"), nil),
		"nomatch": dial(t, wsURL(hs, "/?topic=end&topic=other"), nil),
	}
	waitClients(t, s, len(clients))
	topics := []string{"sensors/dht22/temp", "sensors/dht22/hum", "system", "sensors/kitchen/temp", "sensors"}
	for _, tp := range topics {
		s.Publish(Message{Topic: tp, Payload: tp})
	}
	s.Publish(Message{Topic: "end", Payload: "end"})
	want := map[string][]string{
		"all":     topics,
		"plus":    {"sensors/dht22/temp", "sensors/kitchen/temp"},
		"hash":    {"sensors/dht22/temp", "sensors/dht22/hum", "sensors/kitchen/temp", "sensors"},
		"two":     {"system", "sensors/kitchen/temp"},
		"nomatch": nil,
	}
	for name, c := range clients {
		var got []string
		for {
			_, m := read(t, c)
			if m == "end" {
				break
			}
			got = append(got, m)
		}
		if strings.Join(got, ",") != strings.Join(want[name], ",") {
			t.Errorf("%s got %v, want %v", name, got, want[name])
		}
	}
}

func TestBadTopicFilterIsRefused(t *testing.T) {
	_, hs := testServer(t, nil)
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(hs, "/?topic=a/%23/b"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial with a bad filter: err %v resp %v, want 400", err, resp)
	}
}

func TestLateJoinerGetsTheLatestMessagesOfItsTopics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		replay int
		none   bool
		query  string
		want   []string
	}{
		{"by default the latest message of each topic, oldest first", 0, false, "", []string{"b2", "a3"}},
		{"Replay 2 gives the latest two of each topic", 2, false, "", []string{"a2", "b1", "b2", "a3"}},
		{"a filter limits the replay to its topics", 0, false, "?topic=b", []string{"b2"}},
		{"NoReplay replays nothing", 0, true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hs := testServer(t, &ServerOpts{Replay: tc.replay, NoReplay: tc.none})
			for _, m := range [][2]string{{"a", "a1"}, {"a", "a2"}, {"b", "b1"}, {"b", "b2"}, {"a", "a3"}} {
				s.Publish(Message{Topic: m[0], Payload: m[1]})
			}
			c := dial(t, wsURL(hs, "/"+tc.query), nil)
			waitClients(t, s, 1)
			s.Publish(Message{Topic: "b", Payload: "live"})
			var got []string
			for {
				_, m := read(t, c)
				if m == "live" {
					break
				}
				got = append(got, m)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("replayed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHistoryReturnsRetainedMessagesOldestFirst(t *testing.T) {
	s, _ := testServer(t, &ServerOpts{RingSize: 4})
	for i, tp := range []string{"s/a", "s/b", "x", "s/a", "s/b", "s/a"} {
		s.Publish(Message{Topic: tp, Payload: i})
	}
	payloads := func(ms []Message) (out []any) {
		for _, m := range ms {
			out = append(out, m.Payload)
		}
		return out
	}
	for _, tc := range []struct {
		filter string
		n      int
		want   string
	}{
		{"", 0, "[2 3 4 5]"},
		{"s/#", 0, "[3 4 5]"},
		{"s/a", 1, "[5]"},
		{"s/+", 2, "[4 5]"},
	} {
		if got := fmtAny(payloads(s.history(tc.filter, tc.n))); got != tc.want {
			t.Errorf("History(%q, %d) = %s, want %s", tc.filter, tc.n, got, tc.want)
		}
	}
}

func TestConnectAndDisconnectEvents(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	s, hs := testServer(t, &ServerOpts{OnEvent: func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	a := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	b := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 2)
	a.Close()
	waitClients(t, s, 1)
	b.Close()
	waitClients(t, s, 0)
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 4 {
		t.Fatalf("got %d events: %+v", len(events), events)
	}
	want := []struct {
		kind    EventKind
		clients int
	}{{Connect, 1}, {Connect, 2}, {Disconnect, 1}, {Disconnect, 0}}
	for i, w := range want {
		e := events[i]
		if e.Kind != w.kind || e.Clients != w.clients || e.Session == "" || e.Remote == "" {
			t.Errorf("event %d = %+v, want %v with %d clients", i, e, w.kind, w.clients)
		}
	}
	if events[0].Session != events[2].Session || events[0].Session == events[1].Session {
		t.Errorf("sessions do not pair up: %+v", events)
	}
}

func TestHeartbeatDropsASilentPeerAndKeepsALiveOne(t *testing.T) {
	// The pong timeout is long next to the ping interval, and stretches
	// with the machine's load: a live client (or the server's reader of
	// it) that is not scheduled for a while must not look silent.
	const pingInterval = 50 * time.Millisecond
	pongTimeout := testutil.Scale(time.Second)
	s, hs := testServer(t, &ServerOpts{PingInterval: pingInterval, PongTimeout: pongTimeout})
	dial(t, wsURL(hs, "/"), nil) // never reads: never answers a ping
	live := dial(t, wsURL(hs, "/"), nil)
	var pings atomic.Int32
	live.SetPingHandler(func(d string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(testutil.Scale(time.Second)))
	})
	go func() {
		for {
			if _, _, err := live.ReadMessage(); err != nil {
				return
			}
		}
	}()
	waitClients(t, s, 2)
	start := time.Now()
	waitClients(t, s, 1) // the silent one goes after PingInterval+PongTimeout
	t.Logf("silent peer dropped after %v", time.Since(start))
	// Over more than two pong timeouts the live one stays. Heartbeats are
	// at least pingInterval apart, so the live client's answering want
	// more pings spans more than two pong timeouts, however slow the
	// machine.
	want := int32(2*pongTimeout/pingInterval) + 2
	p0 := pings.Load()
	testutil.Until(t, 60*time.Second, func() bool { return pings.Load() >= p0+want || s.Clients() != 1 },
		func() string { return fmt.Sprintf("live client answered %d pings, want %d", pings.Load()-p0, want) })
	if s.Clients() != 1 {
		t.Fatalf("clients = %d after %d more pings, want the live one kept", s.Clients(), pings.Load()-p0)
	}
}

func TestReadLimitClosesWith1009(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{ReadLimit: 100})
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 100))) // at the limit: fine
	c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 101)))
	wantClose(t, c, websocket.CloseMessageTooBig)
}

// wantClose reads until the server's close frame and checks its code.
func wantClose(t *testing.T, c *websocket.Conn, code int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testutil.Scale(5 * time.Second)))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("read error %v, want close %d", err, code)
		}
		return
	}
}

func TestMaxClientsAnswers503(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{MaxClients: 2})
	dial(t, wsURL(hs, "/"), nil)
	dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 2)
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(hs, "/"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third client: err %v resp %v, want 503", err, resp)
	}
	if s.Stats().Rejected != 1 {
		t.Errorf("Rejected = %d, want 1", s.Stats().Rejected)
	}
}

func TestOriginCheck(t *testing.T) {
	_, hs := testServer(t, nil)
	host := strings.TrimPrefix(hs.URL, "http://")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},
		{"http://" + host, http.StatusSwitchingProtocols},
		{"http://evil.example", http.StatusForbidden},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		ws, resp, _ := websocket.DefaultDialer.Dial(wsURL(hs, "/"), h)
		if ws != nil {
			ws.Close()
		}
		if resp == nil || resp.StatusCode != tc.want {
			t.Errorf("Origin %q: resp %v, want %d", tc.origin, resp, tc.want)
		}
	}
}

func TestCloseSendsGoingAwayAndRefusesNewClients(t *testing.T) {
	s := NewServer(nil)
	hs := httptest_NewServer(t, s)
	var clients []*websocket.Conn
	for range 3 {
		clients = append(clients, dial(t, wsURL(hs, "/"), nil))
	}
	waitClients(t, s, 3)
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	for _, c := range clients {
		wantClose(t, c, websocket.CloseGoingAway)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.Clients() != 0 {
		t.Fatalf("clients after Close = %d", s.Clients())
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(hs, "/"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %v, want 503", err, resp)
	}
}

func TestCloseIsBoundedByItsContext(t *testing.T) {
	s := NewServer(&ServerOpts{WriteWait: time.Minute})
	hs := httptest_NewServer(t, s)
	dialSlow(t, wsURL(hs, "/"), 4096) // never reads
	waitClients(t, s, 1)
	s.Publish(Message{Payload: make([]byte, 8<<20)}) // more than the sockets hold
	waitStuckInWrite(t, "drive")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	waitClients(t, s, 0) // dropped connections finish promptly
}

// A late joiner that never reads is stuck in its replay (the retained
// message is more than its sockets hold). Close(ctx) must reach it too,
// and it must leave as a client that came and went.
func TestCloseIsBoundedByItsContextForAClientInItsReplay(t *testing.T) {
	events := make(chan Event, 4)
	s := NewServer(&ServerOpts{WriteWait: time.Minute, OnEvent: func(e Event) { events <- e }})
	hs := httptest_NewServer(t, s)
	s.Publish(Message{Payload: make([]byte, 8<<20)}) // retained, replayed to each
	dialSlow(t, wsURL(hs, "/"), 4096)                // never reads
	select {
	case e := <-events:
		if e.Kind != Connect || e.Clients != 1 {
			t.Fatalf("first event %+v, want Connect with 1 client", e)
		}
	case <-time.After(testutil.Scale(5 * time.Second)):
		t.Fatal("no Connect event while the client is in its replay")
	}
	waitStuckInWrite(t, "replay")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the context's error", err)
	}
	select {
	case e := <-events:
		if e.Kind != Disconnect || e.Clients != 0 {
			t.Fatalf("event %+v, want Disconnect with 0 clients", e)
		}
	case <-time.After(testutil.Scale(2 * time.Second)):
		t.Fatal("the client in its replay outlived Close by 2 s")
	}
	if st := s.Stats(); st.Connects != 1 || st.Disconnects != 1 || st.Dropped != 0 {
		t.Errorf("stats %+v: want 1 connect, 1 disconnect, none dropped for being slow", st)
	}
}
