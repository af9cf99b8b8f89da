package push

import (
	"encoding/json"
	"net"
	"strconv"
	"time"

	"sensord/broadcast"
)

// The events published, with MQTT on, on <prefix>/<name>/client/<event>.
const (
	EventConnect    = "connect"    // a client connected
	EventDisconnect = "disconnect" // a client went
	EventMessage    = "message"    // a client sent a message
)

// Event is a client's connect or disconnect as published: its session,
// so that a flow can send to it later (with the path, on the command
// topic or to POST /api/send).
type Event struct {
	Event     string  `json:"event"` // EventConnect or EventDisconnect
	Path      string  `json:"path"`
	Session   Session `json:"_session"`
	Address   string  `json:"address"`
	Port      int     `json:"port"`
	Clients   int     `json:"clients"`   // the path's clients after it
	Timestamp int64   `json:"timestamp"` // milliseconds since the Unix epoch
}

// Said is a message a client sent, as Node-RED's websocket-in hands it to
// a flow (payload and _session), with the path it came in on.
type Said struct {
	Path    string  `json:"path"`
	Session Session `json:"_session"`
	// Payload is the text as it came, or a binary frame as a Node-RED
	// Buffer ({"type":"Buffer","data":[..]}).
	Payload   any   `json:"payload"`
	Timestamp int64 `json:"timestamp"`
}

// nodeBuf is a Buffer as JSON.stringify writes it.
type nodeBuf struct {
	Type string `json:"type"`
	Data []int  `json:"data"`
}

// EventJSON is e on path at t, as published.
func EventJSON(path string, e broadcast.Event, t time.Time) []byte {
	kind := EventConnect
	if e.Kind == broadcast.Disconnect {
		kind = EventDisconnect
	}
	host, port, err := net.SplitHostPort(e.Remote)
	if err != nil {
		host = e.Remote
	}
	pn, _ := strconv.Atoi(port)
	b, _ := json.Marshal(Event{Event: kind, Path: path, Session: SessionOf(e.Session), Address: host, Port: pn,
		Clients: e.Clients, Timestamp: t.UnixMilli()}) // plain fields always encode
	return b
}

// SaidJSON is the message in that came in on path at t, as published.
func SaidJSON(path string, in broadcast.Incoming, t time.Time) []byte {
	var payload any = string(in.Raw)
	if in.Binary {
		data := make([]int, len(in.Raw))
		for i, c := range in.Raw {
			data[i] = int(c)
		}
		payload = nodeBuf{Type: "Buffer", Data: data}
	}
	b, _ := json.Marshal(Said{Path: path, Session: SessionOf(in.Session), Payload: payload, Timestamp: t.UnixMilli()})
	return b
}
