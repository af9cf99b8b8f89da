package daemon

// Pushes and client events over MQTT: the real sensord against a real
// Mosquitto.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/cmd/sensord/internal/push"
	"sensord/internal/testutil"
)

// waitBridge waits until p's bridge says it is connected.
func waitBridge(t *testing.T, p *proc) {
	t.Helper()
	var last string
	testutil.Until(t, mosquittotest.Wait, func() bool {
		_, last = get(t, nil, "http://"+p.addr+"/metrics")
		return strings.Contains(last, "sensord_mqtt_connected 1\n")
	}, func() string { return "the bridge did not connect" })
}

// nextEvent returns the next client event of kind on the watcher from i
// on, decoded into v, and the index after it.
func nextEvent(t *testing.T, w *mosquittotest.Watcher, i int, kind string, v any) int {
	t.Helper()
	m, j := w.Next(t, i, kind+" event", mosquittotest.OnTopic("sensors/kitchen/client/"+kind))
	if m.Retained {
		t.Errorf("%s event retained", kind)
	}
	if err := json.Unmarshal([]byte(m.Payload), v); err != nil {
		t.Fatalf("%s event %q: %v", kind, m.Payload, err)
	}
	return j + 1
}

func TestMQTTCommandTopicPushesAndClientEventsCarryTheSession(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, subscribe string }{
		{"with the default subscription, which takes the command topic in", "sensors/#"},
		{"without a subscription", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			broker := mosquittotest.Start(t, mosquittotest.Opts{})
			w := broker.Watch(t, "sensors/kitchen/client/#")
			// A command left retained on the broker (it would run again at
			// every connect) is ignored when it arrives.
			cmd := "sensors/kitchen/send"
			broker.Publish(t, cmd, true, `{"path":"/ws/dashboard","topic":"notice","payload":"retained"}`)
			p := start(t, nil, "-name", "kitchen", "-mqtt-url", broker.URL(), "-mqtt-discovery", "", "-mqtt-subscribe", tt.subscribe,
				"-owner-token", testOwner)
			waitBridge(t, p)
			base := "http://" + p.addr

			a := dial(t, "ws://"+p.addr+"/ws/dashboard?topic=notice")
			var ev push.Event
			i := nextEvent(t, w, 0, push.EventConnect, &ev)
			list := clients(t, base, "/ws/dashboard")
			if len(list) != 1 || ev.Session != list[0].Session || ev.Path != "/ws/dashboard" || ev.Address != "127.0.0.1" ||
				ev.Port != list[0].Port || ev.Clients != 1 || ev.Event != "connect" {
				t.Fatalf("connect event %+v, clients %+v", ev, list)
			}
			b := dial(t, "ws://"+p.addr+"/ws/dashboard?topic=notice")
			i = nextEvent(t, w, i, push.EventConnect, &ev)
			bSession := ev.Session

			// What a client sends is published with its session; /ws/api's
			// own requests are not.
			if err := b.WriteMessage(websocket.TextMessage, []byte(`{"ask":"lights"}`)); err != nil {
				t.Fatal(err)
			}
			var said push.Said
			i = nextEvent(t, w, i, push.EventMessage, &said)
			if said.Session != bSession || said.Path != "/ws/dashboard" || said.Payload != `{"ask":"lights"}` {
				t.Errorf("message event %+v", said)
			}
			api := dial(t, "ws://"+p.addr+"/ws/api")
			api.WriteMessage(websocket.TextMessage, []byte(`{"action":"get_status"}`))
			readText(t, api, 10*time.Second)
			api.WriteMessage(websocket.BinaryMessage, []byte{7, 8})
			readText(t, api, 10*time.Second) // the error answer
			i = nextEvent(t, w, i, push.EventMessage, &said)
			if said.Path != "/ws/api" || fmt.Sprint(said.Payload) != "map[data:[7 8] type:Buffer]" {
				t.Errorf("the binary message to /ws/api came as %+v (get_status must not be published)", said)
			}

			// A push on the command topic: to every client, then to b's
			// session only, then binary; each arrives once.
			broker.Publish(t, cmd, false, `{"path":"/ws/dashboard","topic":"notice","payload":{"alert":"System maintenance in 5 minutes"}}`)
			for _, c := range []*websocket.Conn{a, b} {
				if got := readText(t, c, 10*time.Second); got != alertFrame {
					t.Errorf("got %q, want the alert", got)
				}
			}
			one, _ := json.Marshal(map[string]any{"path": "/ws/dashboard", "topic": "notice", "payload": "answer", "_session": bSession})
			broker.Publish(t, cmd, false, string(one))
			if got := readText(t, b, 10*time.Second); got != "answer" {
				t.Errorf("b got %q, want its answer", got)
			}
			broker.Publish(t, cmd, false, `{"path":"/ws/dashboard","topic":"notice","payload":{"type":"Buffer","data":[1,2,3]}}`)
			for _, c := range []*websocket.Conn{a, b} {
				if typ, got := readFrame(t, c, 10*time.Second); typ != websocket.BinaryMessage || string(got) != "\x01\x02\x03" {
					t.Errorf("got frame %d %v, want binary 01 02 03", typ, got)
				}
			}
			// Refused: no path, malformed, a gone session.
			broker.Publish(t, cmd, false, `{"payload":"where to?"}`, `not json`,
				`{"path":"/ws/dashboard","payload":"x","_session":{"type":"websocket","id":"0000000000000000"}}`)
			broker.Publish(t, cmd, false, `{"path":"/ws/dashboard","topic":"notice","payload":"last"}`)
			for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
				if got := readText(t, c, 10*time.Second); got != "last" {
					t.Errorf("%s got %q, want last (the answer to b, the refused ones reach no one, nothing twice)", name, got)
				}
			}
			var metrics string
			testutil.Until(t, 10*time.Second, func() bool {
				_, metrics = get(t, nil, base+"/metrics")
				return strings.Contains(metrics, "sensord_mqtt_commands_total 8\n")
			}, func() string { return "commands not counted:\n" + metrics })
			for _, want := range []string{"sensord_pushes_total 4", `sensord_pushes_refused_total{reason="invalid"} 2`,
				`sensord_pushes_refused_total{reason="session"} 1`, "sensord_mqtt_commands_retained_total 1"} {
				if !strings.Contains(metrics, want+"\n") {
					t.Errorf("metrics lack %s", want)
				}
			}
			if !testutil.Within(10*time.Second, func() bool { return strings.Contains(p.logs(), "mqtt push refused") }) {
				t.Error("no log line says why a push was refused")
			}

			// A client that goes is announced with its session.
			a.Close()
			nextEvent(t, w, i, push.EventDisconnect, &ev)
			if ev.Session != list[0].Session || ev.Clients != 1 {
				t.Errorf("disconnect event %+v", ev)
			}
			if resp, _ := get(t, nil, base+"/api/clients?path=/ws/dashboard"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("the client list without the owner: %d", resp.StatusCode)
			}
		})
	}
}
