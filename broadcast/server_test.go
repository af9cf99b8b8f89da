package broadcast

import (
	"testing"

	"github.com/gorilla/websocket"
)

func TestBroadcastReachesAllClients(t *testing.T) {
	s, hs := testServer(t, &ServerOpts{Replay: -1})
	var clients []*websocket.Conn
	for range 5 {
		clients = append(clients, dial(t, wsURL(hs, "/ws/sensors"), nil))
	}
	waitClients(t, s, 5)
	for i, want := range []string{`{"a":1}`, "two", "three"} {
		var p any = want
		if i == 0 {
			p = map[string]int{"a": 1}
		}
		if err := s.Publish(Message{Topic: "t", Payload: p}); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			mt, got := read(t, c)
			if mt != websocket.TextMessage || got != want {
				t.Fatalf("got %d %q, want text %q", mt, got, want)
			}
		}
	}
}
