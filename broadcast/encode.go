package broadcast

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync/atomic"
)

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
	if raw, ok := m.Payload.(RawJSON); ok {
		if !whole {
			return raw, false, nil
		}
		// An Encoder that leaves <, > and & alone keeps raw's bytes
		// (json.Marshal would escape them); raw must be valid JSON.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(wholeMsg{Topic: m.Topic, Payload: json.RawMessage(raw), MsgID: m.ID}); err != nil {
			return nil, false, fmt.Errorf("broadcast: encode message: %w", err)
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n")), false, nil
	}
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
