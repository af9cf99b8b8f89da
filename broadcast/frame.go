package broadcast

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// WebSocket opcodes (RFC 6455 section 5.2): gorilla's message types are
// the opcodes.
const (
	opText   = websocket.TextMessage
	opBinary = websocket.BinaryMessage
	opClose  = websocket.CloseMessage
	opPing   = websocket.PingMessage
	opPong   = websocket.PongMessage
)

// appendFrame appends one complete, unmasked (server to client) frame with
// FIN set. Server frames are never masked, so the same bytes serve every
// client: this is what makes "encode once, write to many" possible.
func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// frame returns a new complete frame for payload.
func frame(op byte, payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+10), op, payload)
}

// closeFrame is a close frame carrying code and reason (reason is cut to
// fit the 125-byte control frame limit).
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return frame(opClose, websocket.FormatCloseMessage(code, reason))
}

// pingFrame is the heartbeat ping every writer sends: shared, immutable.
var pingFrame = []byte{0x80 | opPing, 0}

// encoded is a message encoded once for every client of one server.
type encoded struct {
	msg   Message // as published, for History and replay filters
	frame []byte  // the complete server frame: header + payload
}

// wholeMsg is the wire shape of a whole message (wholemsg on): never the
// session.
type wholeMsg struct {
	Topic   string `json:"topic,omitempty"`
	Payload any    `json:"payload"`
	MsgID   string `json:"_msgid"`
}

// nodeBuffer is how Node-RED serialises a Buffer inside JSON
// (JSON.stringify(Buffer) gives {"type":"Buffer","data":[...]}).
type nodeBuffer struct {
	Type string `json:"type"`
	Data []int  `json:"data"`
}

// empty reports whether the payload is "nothing to send": nil, an empty
// []byte or an empty string.
func empty(p any) bool {
	switch v := p.(type) {
	case nil:
		return true
	case []byte:
		return len(v) == 0
	case string:
		return v == ""
	}
	return false
}

// encodePayload returns the frame payload and whether it is binary,
// following websocket-out: []byte goes as a binary frame, a string as text
// as is, anything else (json.RawMessage included) as JSON text.
// With whole set, the frame is the whole message as JSON text.
func encodePayload(m *Message, whole bool) (data []byte, bin bool, err error) {
	if whole {
		p := m.Payload
		if b, ok := p.([]byte); ok {
			ints := make([]int, len(b))
			for i, c := range b {
				ints[i] = int(c)
			}
			p = nodeBuffer{Type: "Buffer", Data: ints}
		}
		data, err = json.Marshal(wholeMsg{Topic: m.Topic, Payload: p, MsgID: m.ID})
		if err != nil {
			return nil, false, fmt.Errorf("broadcast: encode message: %w", err)
		}
		return data, false, nil
	}
	switch v := m.Payload.(type) {
	case []byte:
		return v, true, nil
	case string:
		return []byte(v), false, nil
	}
	data, err = json.Marshal(m.Payload)
	if err != nil {
		return nil, false, fmt.Errorf("broadcast: encode payload: %w", err)
	}
	return data, false, nil
}

// idGen makes _msgid and session ids: a random prefix fixed at start plus a
// counter, 16 hex digits like Node-RED's RED.util.generateId. Unique within
// the process, wait-free, no lock.
type idGen struct {
	prefix uint32
	n      atomic.Uint32
}

func (g *idGen) next() string {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], g.prefix)
	binary.BigEndian.PutUint32(b[4:], g.n.Add(1))
	return hex.EncodeToString(b[:])
}
