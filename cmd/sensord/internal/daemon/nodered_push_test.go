package daemon

// Node-RED side by side: its documented alert example sent by its
// websocket-out, and the same message pushed to sensord over HTTP and over
// MQTT, reach the clients as identical frames, for every client and for
// one stored _session, text and binary.

import (
	"bytes"
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

// alertFlow is Node-RED's documented alert example behind http-in
// triggers: a function sets msg.payload = { alert: ... } and hands it to
// websocket-out on /ws/dashboard, for every client (/alert) or for the
// _session a websocket-in stored in the flow's context when that client
// spoke (/alert-stored), "to send messages to specific clients later";
// /binary and /binary-stored send a Buffer. GET /stored tells whether a
// session is stored.
const alertFlow = `[
  {"id":"t","type":"tab","label":"alerts"},
  {"id":"ws","type":"websocket-listener","path":"/ws/dashboard","wholemsg":"false"},
  {"id":"out","type":"websocket out","z":"t","server":"ws","client":"","wires":[]},
  {"id":"in","type":"websocket in","z":"t","server":"ws","client":"","wires":[["store"]]},
  {"id":"store","type":"function","z":"t","outputs":1,"func":"flow.set('stored', msg._session);\nreturn null;","wires":[[]]},
  {"id":"h0","type":"http in","z":"t","url":"/stored","method":"get","wires":[["f0"]]},
  {"id":"f0","type":"function","z":"t","outputs":1,"func":"msg.payload = flow.get('stored') || null;\nreturn msg;","wires":[["ok"]]},
  {"id":"h1","type":"http in","z":"t","url":"/alert","method":"post","wires":[["f1","ok"]]},
  {"id":"f1","type":"function","z":"t","outputs":1,"func":"msg.payload = { alert: \"System maintenance in 5 minutes\" };\nreturn msg;","wires":[["out"]]},
  {"id":"h2","type":"http in","z":"t","url":"/alert-stored","method":"post","wires":[["f2","ok"]]},
  {"id":"f2","type":"function","z":"t","outputs":1,"func":"msg._session = flow.get('stored');\nmsg.payload = { alert: \"System maintenance in 5 minutes\" };\nreturn msg;","wires":[["out"]]},
  {"id":"h3","type":"http in","z":"t","url":"/binary","method":"post","wires":[["f3","ok"]]},
  {"id":"f3","type":"function","z":"t","outputs":1,"func":"msg.payload = Buffer.from([0, 1, 2, 255]);\nreturn msg;","wires":[["out"]]},
  {"id":"h4","type":"http in","z":"t","url":"/binary-stored","method":"post","wires":[["f4","ok"]]},
  {"id":"f4","type":"function","z":"t","outputs":1,"func":"msg._session = flow.get('stored');\nmsg.payload = Buffer.from([0, 1, 2, 255]);\nreturn msg;","wires":[["out"]]},
  {"id":"ok","type":"http response","z":"t","statusCode":"","headers":{},"wires":[]}
]`

// runNodeRed runs Node-RED with flow on a free loopback port until the
// test ends, and returns its address once ready answers 200.
func runNodeRed(t *testing.T, flow, ready string) string {
	t.Helper()
	addr, _ := startNodeRed(t, flow)
	testutil.Until(t, mosquittotest.Wait, func() bool {
		resp, err := http.Get("http://" + addr + ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() string { return "node-red did not start" })
	return addr
}

// frame is one WebSocket message as it came.
type frame struct {
	typ  int
	data []byte
}

func (f frame) String() string {
	if f.typ == websocket.BinaryMessage {
		return fmt.Sprintf("binary % x", f.data)
	}
	return "text " + string(f.data)
}

// nextPushed reads sensord's /ws/dashboard until a frame that is not one
// of its own streams (readings, system stats, MQTT messages, alerts).
func nextPushed(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	for {
		typ, b := readFrame(t, c, 10*time.Second)
		var m struct{ Type string }
		if typ == websocket.TextMessage && json.Unmarshal(b, &m) == nil {
			switch m.Type {
			case "sensor_update", "system", "mqtt", "alert":
				continue
			}
		}
		return frame{typ, b}
	}
}

func TestNodeREDAndSensordSendTheAlertExampleAsIdenticalFrames(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	nr := runNodeRed(t, alertFlow, "/stored")
	w := broker.Watch(t, "sensors/kitchen/client/message")
	sd := start(t, nil, "-name", "kitchen", "-mqtt-url", broker.URL(), "-mqtt-discovery", "", "-owner-token", testOwner)
	waitBridge(t, sd)

	// Two clients on each; B speaks, and each side stores its _session
	// from what it said: Node-RED's websocket-in into the flow's
	// context, and a flow elsewhere from sensord's MQTT client event.
	nrA, nrB := dial(t, "ws://"+nr+"/ws/dashboard"), dial(t, "ws://"+nr+"/ws/dashboard")
	sdA, sdB := dial(t, "ws://"+sd.addr+"/ws/dashboard"), dial(t, "ws://"+sd.addr+"/ws/dashboard")
	for _, c := range []*websocket.Conn{nrB, sdB} {
		if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	var nrSession push.Session
	testutil.Until(t, mosquittotest.Wait, func() bool {
		_, body := get(t, nil, "http://"+nr+"/stored")
		return json.Unmarshal([]byte(body), &nrSession) == nil && nrSession.ID != ""
	}, func() string { return "node-red stored no session" })
	var said push.Said
	nextEvent(t, w, 0, push.EventMessage, &said)
	sdSession := said.Session
	if len(nrSession.ID) != len(sdSession.ID) || nrSession.Type != sdSession.Type {
		t.Errorf("node-red's _session %+v and sensord's %+v differ in shape", nrSession, sdSession)
	}

	alert := `{"payload":{"alert":"System maintenance in 5 minutes"}}`
	bin := []byte{0, 1, 2, 255}
	withSession := func(msg string) string {
		s, _ := json.Marshal(sdSession)
		return strings.TrimSuffix(msg, "}") + `,"_session":` + string(s) + "}"
	}
	withPath := func(msg string) string { return `{"path":"/ws/dashboard",` + strings.TrimPrefix(msg, "{") }
	mqttBinary := `{"payload":{"type":"Buffer","data":[0,1,2,255]}}`
	viaHTTP := func(msg string, clients int) func() {
		return func() { pushTo(t, "http://"+sd.addr, "/ws/dashboard", msg, clients) }
	}
	viaHTTPBinary := func(session string) func() {
		return func() {
			q := ""
			if session != "" {
				q = "&session=" + session
			}
			code, body := post(t, "http://"+sd.addr+"/api/send?path=/ws/dashboard"+q, "Bearer "+testOwner, "application/octet-stream", bin)
			if code != http.StatusOK {
				t.Fatalf("binary push: %d %s", code, body)
			}
		}
	}
	viaMQTT := func(msg string) func() {
		return func() { broker.Publish(t, "sensors/kitchen/send", false, withPath(msg)) }
	}
	for _, tt := range []struct {
		name      string
		nodeRed   string // the http-in trigger
		toOne     bool   // for B's stored session only
		http, mqt func()
	}{
		{"the alert to every client", "/alert", false, viaHTTP(alert, 2), viaMQTT(alert)},
		{"the alert to a stored session", "/alert-stored", true, viaHTTP(withSession(alert), 1), viaMQTT(withSession(alert))},
		{"a Buffer to every client", "/binary", false, viaHTTPBinary(""), viaMQTT(mqttBinary)},
		{"a Buffer to a stored session", "/binary-stored", true, viaHTTPBinary(sdSession.ID), viaMQTT(withSession(mqttBinary))},
		{"the alert to every client again", "/alert", false, viaHTTP(alert, 2), viaMQTT(alert)},
	} {
		code, body := post(t, "http://"+nr+tt.nodeRed, "", "application/json", nil)
		if code != http.StatusOK {
			t.Fatalf("%s: node-red answered %d %s", tt.name, code, body)
		}
		typ, b := readFrame(t, nrB, 10*time.Second)
		want := frame{typ, b}
		if !tt.toOne {
			// A's next frame is this broadcast: nothing meant for B
			// alone reached it before.
			if typ, b := readFrame(t, nrA, 10*time.Second); !bytes.Equal(b, want.data) || typ != want.typ {
				t.Errorf("%s: node-red's A got %s, B %s", tt.name, frame{typ, b}, want)
			}
		}
		for _, via := range []struct {
			transport string
			send      func()
		}{{"HTTP", tt.http}, {"MQTT", tt.mqt}} {
			transport := via.transport
			via.send()
			clients := []*websocket.Conn{sdB}
			if !tt.toOne {
				clients = append(clients, sdA)
			}
			for _, c := range clients {
				if got := nextPushed(t, c); got.typ != want.typ || !bytes.Equal(got.data, want.data) {
					t.Errorf("%s over %s: sensord sent %s, node-red %s", tt.name, transport, got, want)
				}
			}
		}
		t.Logf("%s: node-red and sensord over HTTP and MQTT: %s", tt.name, want)
	}
}
