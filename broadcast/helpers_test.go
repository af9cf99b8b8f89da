package broadcast

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/internal/testutil"
)

// testServer runs s behind a real loopback HTTP server and closes both at
// the end of the test.
func testServer(t testing.TB, o *ServerOpts) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(o)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(5*time.Second))
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		hs.Close()
	})
	return s, hs
}

func wsURL(hs *httptest.Server, pathQuery string) string {
	return "ws" + strings.TrimPrefix(hs.URL, "http") + pathQuery
}

// dial connects a real gorilla client.
func dial(t testing.TB, url string, h http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s", url, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// waitClients waits until s has n clients.
func waitClients(t testing.TB, s *Server, n int) {
	t.Helper()
	testutil.Until(t, 20*time.Second, func() bool { return s.Clients() == n }, func() string { return fmt.Sprintf("clients = %d, want %d", s.Clients(), n) })
}

// settled returns s's stats once done holds, or after 20 s (scaled; then
// the caller's checks report what it saw). Counters move after the event they
// count: Sent after the write returns, which the peer may already have
// read; Disconnects after the socket is torn down.
func settled(s *Server, done func(ServerStats) bool) ServerStats {
	st := s.Stats()
	testutil.Within(20*time.Second, func() bool { st = s.Stats(); return done(st) })
	return st
}

// read reads one message with a deadline.
func read(t testing.TB, ws *websocket.Conn) (int, string) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	mt, p, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return mt, string(p)
}

// httptest_NewServer serves s on loopback; the test closes it.
func httptest_NewServer(t testing.TB, s http.Handler) *httptest.Server {
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs
}

func fmtAny(v []any) string { return fmt.Sprint(v) }

// waitStuckInWrite waits until one of the server's goroutines is blocked
// in a socket write called from the engine's (*conn).<in> (drive,
// replay): the client has stopped taking bytes and the writer waits for
// it. This is the fact the tests about stuck writers need; a pause would
// only make it likely.
func waitStuckInWrite(t testing.TB, in string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	testutil.Until(t, 20*time.Second, func() bool {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "fanout.(*conn[...])."+in+"(") && strings.Contains(g, "waitWrite") {
				return true
			}
		}
		return false
	}, func() string { return "no goroutine blocked writing in (*conn[...])." + in })
}

// history returns the retained broadcast messages whose topic matches the
// MQTT filter ("" matches all), oldest first, at most the newest n (n <= 0:
// all). Payloads are as published. Safe from any goroutine.
func (s *Server) history(filter string, n int) []Message {
	var out []Message
	for f := range s.eng.Retained {
		if filter != "" && !MatchTopic(filter, f.Topic) {
			continue
		}
		out = append(out, f.Meta)
		if n > 0 && len(out) == n {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
