package broadcast

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// A retained message outlives the ring: a client that connects after the
// ring has turned over many times still gets it, first, once.
func TestRetainedMessageReachesLateJoinersFirstAfterTheRingTurnedOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(s *Server)
		query string
		want  []string
	}{
		{"a retained message, then a full ring of readings", func(s *Server) {
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised"}, true)
			for i := range 40 {
				s.Publish(Message{Topic: "reading", Payload: fmt.Sprint("r", i)})
			}
		}, "", []string{"hot raised", "r39"}},
		{"two retained topics in the order they were raised", func(s *Server) {
			s.PublishRetained(Message{Topic: "alert/b", Payload: "b raised"}, true)
			s.PublishRetained(Message{Topic: "alert/a", Payload: "a raised"}, true)
			for i := range 40 {
				s.Publish(Message{Topic: "reading", Payload: fmt.Sprint("r", i)})
			}
		}, "", []string{"b raised", "a raised", "r39"}},
		{"a newer retained message replaces the older of its topic", func(s *Server) {
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised"}, true)
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised again"}, true)
		}, "", []string{"hot raised again"}},
		{"cleared without keep: only what the ring still holds", func(s *Server) {
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised"}, true)
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot cleared"}, false)
			for i := range 40 {
				s.Publish(Message{Topic: "reading", Payload: fmt.Sprint("r", i)})
			}
		}, "", []string{"r39"}},
		{"a filter that skips the topic skips its retained message", func(s *Server) {
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised"}, true)
			s.Publish(Message{Topic: "reading", Payload: "r0"})
		}, "?topic=reading", []string{"r0"}},
		{"a filter that picks it gets it alone", func(s *Server) {
			s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised"}, true)
			s.Publish(Message{Topic: "reading", Payload: "r0"})
		}, "?topic=alert/%2B", []string{"hot raised"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hs := testServer(t, &ServerOpts{RingSize: 8})
			tc.steps(s)
			c := dial(t, wsURL(hs, "/"+tc.query), nil)
			waitClients(t, s, 1)
			s.Publish(Message{Topic: "alert/end", Payload: "live"})
			s.Publish(Message{Topic: "reading", Payload: "live"})
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

func TestRetainedMessagePublishedToAConnectedClientArrivesOnce(t *testing.T) {
	s, hs := testServer(t, nil)
	c := dial(t, wsURL(hs, "/"), nil)
	waitClients(t, s, 1)
	if err := s.PublishRetained(Message{Topic: "alert/hot", Payload: "hot raised"}, true); err != nil {
		t.Fatal(err)
	}
	s.Publish(Message{Topic: "x", Payload: "live"})
	for _, want := range []string{"hot raised", "live"} {
		if _, m := read(t, c); m != want {
			t.Fatalf("got %q, want %q", m, want)
		}
	}
	if err := s.PublishRetained(Message{Topic: "a", Payload: "x", Session: "s"}, true); !errors.Is(err, ErrRetainSession) {
		t.Fatalf("got %v, want ErrRetainSession", err)
	}
}

// Clients that join while retained messages are published on one topic
// get each at most once and in order, whether it came in the replay or
// live, and the last one always: the joiner's look at the retained
// message and its cursor agree (-race checks the memory side).
func TestRetainedMessagesRacingJoinsArriveOnceInOrder(t *testing.T) {
	const clients, publishes = 12, 300
	// The ring holds every message, so no client is lapped (a lapped
	// client skips ahead by design).
	s, hs := testServer(t, &ServerOpts{RingSize: 2 * publishes})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= publishes; i++ {
			s.PublishRetained(Message{Topic: "alert/hot", Payload: fmt.Sprint(i)}, i%3 != 0)
			s.Publish(Message{Topic: "reading", Payload: "r"})
		}
	}()
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, wsURL(hs, "/?topic=alert/hot"), nil)
	}
	<-done
	s.Publish(Message{Topic: "alert/hot", Payload: "end"})
	for i, c := range conns {
		last := 0
		for {
			_, m := read(t, c)
			if m == "end" {
				break
			}
			n, err := strconv.Atoi(m)
			if err != nil || n <= last {
				t.Fatalf("client %d: got %q after %d: repeated or out of order", i, m, last)
			}
			last = n
		}
		if last != publishes {
			t.Fatalf("client %d: the last message was %d, want %d", i, last, publishes)
		}
	}
}
