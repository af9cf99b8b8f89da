package fanout

import (
	"encoding/binary"

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

// Frame is one message encoded once for every connection of an Engine.
// It is immutable once published or replied.
type Frame[M any] struct {
	// Topic is what the connections' filters are matched against.
	Topic string
	// Wire is the complete server-to-client WebSocket frame (see Encode).
	Wire []byte
	// Meta is the caller's, kept with the frame while the ring retains it
	// (package broadcast keeps the Message, for History).
	Meta M
	// Live frames reach the connections joined when they are published
	// and no others: a late joiner's replay skips them.
	Live bool
}

// Encode returns one complete, unmasked (server to client) frame with FIN
// set: a binary frame or a text frame carrying payload. Server frames are
// never masked, so the same bytes serve every client: this is what makes
// "encode once, write to many" possible.
func Encode(binary bool, payload []byte) []byte {
	op := byte(opText)
	if binary {
		op = opBinary
	}
	return frame(op, payload)
}

// appendFrame appends one complete, unmasked frame with FIN set.
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
