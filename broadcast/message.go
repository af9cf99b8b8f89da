package broadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Message is one message for the clients of a path (Node-RED's msg).
type Message struct {
	Topic string
	// Payload: []byte goes out as a binary frame; a string as text as is;
	// anything else (json.RawMessage included) as JSON text. nil, an empty
	// []byte or "" is not sent. The payload must not be modified after
	// Publish (it is kept for History).
	Payload any
	// Session: "" broadcasts to every client of the path (topic filters
	// apply); otherwise only the client with that session gets it.
	Session string
	// ID is the _msgid; generated when empty.
	ID string
	// Live: a broadcast that reaches the clients connected when it is
	// published and no later one, as websocket-out's does (a pushed
	// notice); a late joiner's replay skips it.
	Live bool
	// Time is when what the message carries was measured (a reading's
	// timestamp), zero for anything else. A Client uses it to know which
	// stretch of readings its full buffer dropped (ClientOpts.Backfill).
	Time time.Time
}

// RawJSON is a payload that is JSON text already, sent as it is (never
// re-encoded): a text frame, or with WholeMsg the message's payload
// verbatim.
type RawJSON []byte

// ClientInfo describes one connected client (Server.ClientList).
type ClientInfo struct {
	Session string    // its session: Publish a Message with it to reach this client only
	Remote  string    // the peer's address and port
	Since   time.Time // when it connected
	Filters []string  // its ?topic= filters; nil: every topic
}

// Incoming is one frame received from a client (websocket-in).
type Incoming struct {
	Session string         // the sender's session: Publish a Message with it to answer only that client
	Raw     []byte         // the frame's payload as received
	Binary  bool           // a binary frame
	JSON    bool           // Raw parsed as a JSON object
	Msg     map[string]any // the parsed object; otherwise {"payload": text} or {"payload": []byte}
}

// EventKind says what happened to a connection.
type EventKind int

const (
	Connect EventKind = iota + 1
	Disconnect
)

func (k EventKind) String() string {
	switch k {
	case Connect:
		return "connect"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports a client connecting or disconnecting.
type Event struct {
	Kind    EventKind
	Session string
	Remote  string // the peer's address
	Clients int    // clients connected after this event
}

// ParseIncoming turns one received frame into an Incoming the way
// Node-RED's websocket-in does: a text frame that parses as a JSON object
// becomes that object (JSON true); any other text becomes
// {"payload": text}; a binary frame becomes {"payload": []byte} and stays
// bytes. raw is kept as Incoming.Raw (not copied).
func ParseIncoming(session string, raw []byte, binary bool) Incoming {
	in := Incoming{Session: session, Raw: raw, Binary: binary}
	if binary {
		in.Msg = map[string]any{"payload": raw}
		return in
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil && m != nil {
			in.JSON = true
			in.Msg = m
			return in
		}
	}
	in.Msg = map[string]any{"payload": string(raw)}
	return in
}
