package broadcast_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast"
)

// A server-mode output: a browser (here a gorilla client) subscribes to
// sensors/# and gets the latest reading at once, then every new one.
func ExampleServer() {
	s := broadcast.NewServer(nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close(context.Background())

	reading := map[string]any{"type": "sensor_update", "temperature": 21.4, "humidity": 48.2, "timestamp": 1763856000123}
	s.Publish(broadcast.Message{Topic: "sensors/dht22", Payload: reading})

	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws/sensors?topic=sensors/%23"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Close()
	_, late, _ := ws.ReadMessage() // the late joiner's replay
	s.Publish(broadcast.Message{Topic: "sensors/dht22", Payload: "next"})
	_, next, _ := ws.ReadMessage()
	fmt.Println(string(late))
	fmt.Println(string(next))
	// Output:
	// {"humidity":48.2,"temperature":21.4,"timestamp":1763856000123,"type":"sensor_update"}
	// next
}

// A request/response path (websocket-in paired with websocket-out): the
// answer goes to the asking client only, by its session.
func ExampleServer_reply() {
	var s *broadcast.Server
	s = broadcast.NewServer(&broadcast.ServerOpts{
		OnMessage: func(in broadcast.Incoming) {
			if in.Msg["action"] == "get_status" {
				s.Publish(broadcast.Message{Session: in.Session, Payload: map[string]string{"status": "online"}})
			}
		},
	})
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close(context.Background())

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws/api", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"action":"get_status"}`))
	_, answer, _ := ws.ReadMessage()
	fmt.Println(string(answer))
	// Output: {"status":"online"}
}

// Client mode: dial out and keep sending, reconnecting when needed.
func ExampleClient() {
	got := make(chan string, 1)
	s := broadcast.NewServer(&broadcast.ServerOpts{OnMessage: func(in broadcast.Incoming) { got <- string(in.Raw) }})
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close(context.Background())

	c, err := broadcast.NewClient("ws"+strings.TrimPrefix(hs.URL, "http")+"/ingest", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	c.Publish(broadcast.Message{Topic: "sensors/dht22", Payload: map[string]float64{"temperature": 21.4}})
	select {
	case m := <-got:
		fmt.Println(m)
	case <-time.After(5 * time.Second):
		fmt.Println("timeout")
	}
	cancel()
	fmt.Println(<-done, c.State().State)
	// Output:
	// {"temperature":21.4}
	// <nil> stopped
}

func ExampleMatchTopic() {
	fmt.Println(broadcast.MatchTopic("sensors/+/temperature", "sensors/dht22/temperature"))
	fmt.Println(broadcast.MatchTopic("sensors/#", "sensors"))
	fmt.Println(broadcast.MatchTopic("sensors/+", "sensors/dht22/temperature"))
	// Output:
	// true
	// true
	// false
}

func ExampleParseIncoming() {
	for _, raw := range []string{`{"action":"get_status"}`, `hello`} {
		in := broadcast.ParseIncoming("s1", []byte(raw), false)
		fmt.Println(in.JSON, in.Msg)
	}
	// Output:
	// true map[action:get_status]
	// false map[payload:hello]
}
