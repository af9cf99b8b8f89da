// Package push takes messages from outside for sensord's WebSocket
// clients, the way a Node-RED flow hands a message to websocket-out: to
// every client of a path, or to one client's _session, over HTTP
// (POST /api/send) or the MQTT command topic. It also lists a path's
// clients with their sessions (GET /api/clients), so that a flow can
// answer one of them later.
//
// A push is a Node-RED message as JSON: payload, optional topic, optional
// _session ({"type":"websocket","id":..}) and, over MQTT, the path. Its
// payload goes out as websocket-out sends msg.payload: a string as it is,
// anything else as JSON text written the way JSON.stringify writes it, a
// Buffer (raw bytes over HTTP, or {"type":"Buffer","data":[..]} the way
// Node-RED writes one in JSON) as one binary frame.
//
// # Concurrency
//
// A Sender is safe from any goroutine once built; its handlers run on
// net/http's goroutines and its Send on the MQTT bridge's.
package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"sensord/broadcast"
)

// MaxFrame is the largest frame a push may make: 64 KiB, the bound
// sensord puts on what its clients send it (broadcast.DefaultReadLimit),
// so what a browser is sent fits the same limit, and a push storm at the
// rate bound holds a few MiB at most.
const MaxFrame = 64 << 10

// MaxSessionID bounds a _session's id: sensord's are 16 hex digits; a
// longer one cannot be a client of ours.
const MaxSessionID = 64

// SessionType is the type of a WebSocket client's _session, as Node-RED's
// websocket nodes write it.
const SessionType = "websocket"

// Errors a push is refused with; each is wrapped with the details.
var (
	// ErrMalformed: the message is not a JSON object of the push's shape.
	ErrMalformed = errors.New("push: malformed message")
	// ErrTooLarge: the frame would pass MaxFrame.
	ErrTooLarge = errors.New("push: message too large")
	// ErrEmpty: there is no payload, or it is empty (websocket-out sends
	// nothing for it).
	ErrEmpty = errors.New("push: nothing to send")
	// ErrPath: the path is not a WebSocket path this sensord serves.
	ErrPath = errors.New("push: unknown path")
	// ErrSession: the _session names no client of that path (it has
	// gone, or is on another path).
	ErrSession = errors.New("push: no such client")
	// ErrRate: over the rate bound (MaxRate).
	ErrRate = errors.New("push: too many pushes")
)

// Session is a client's _session as Node-RED writes it.
type Session struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// SessionOf is the _session of the client with id.
func SessionOf(id string) Session { return Session{Type: SessionType, ID: id} }

// Push is one parsed message: where it goes and what it carries.
type Push struct {
	Path    string // the WebSocket path, e.g. /ws/dashboard ("" when the caller gives it)
	Topic   string
	Session string // the client's id; "" for every client of the path
	// Payload is a string (a text frame as it is), broadcast.RawJSON (a
	// text frame) or []byte (a binary frame), never empty.
	Payload any
}

// ParseJSON parses a push given as a Node-RED message in JSON: a JSON
// object with payload, optional topic, optional _session and optional
// path. Other keys (a flow's _msgid, its own properties) are ignored, as
// websocket-out ignores them. Keys are matched exactly, a repeated key's
// last value counts, as JSON.parse does.
func ParseJSON(body []byte) (Push, error) {
	var p Push
	var m map[string]json.RawMessage
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return p, fmt.Errorf(`%w: send a JSON object such as {"payload":{"alert":"System maintenance in 5 minutes"}}`, ErrMalformed)
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return p, fmt.Errorf("%w: JSON does not parse: %v", ErrMalformed, err)
	}
	if raw, ok := m["path"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &p.Path); err != nil {
			return p, fmt.Errorf(`%w: "path" must be a string such as "/ws/dashboard"`, ErrMalformed)
		}
	}
	if raw, ok := m["topic"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &p.Topic); err != nil {
			return p, fmt.Errorf(`%w: "topic" must be a string`, ErrMalformed)
		}
	}
	if raw, ok := m["_session"]; ok && !isNull(raw) {
		id, err := parseSession(raw)
		if err != nil {
			return p, err
		}
		p.Session = id
	}
	raw, ok := m["payload"]
	if !ok {
		return p, fmt.Errorf(`%w: the message has no "payload"`, ErrEmpty)
	}
	payload, err := parsePayload(raw)
	if err != nil {
		return p, err
	}
	p.Payload = payload
	return p, nil
}

// ParseSessionID checks a client's id given on its own (a query
// parameter).
func ParseSessionID(id string) (string, error) {
	if id == "" || len(id) > MaxSessionID || !utf8.ValidString(id) {
		return "", fmt.Errorf(`%w: a session id is a client's "id" from GET /api/clients, at most %d characters`, ErrMalformed, MaxSessionID)
	}
	return id, nil
}

func parseSession(raw json.RawMessage) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf(`%w: "_session" must be an object such as {"type":"websocket","id":"..."}`, ErrMalformed)
	}
	var typ, id string
	if json.Unmarshal(m["type"], &typ) != nil || typ != SessionType {
		return "", fmt.Errorf(`%w: "_session" must have "type":"websocket" (a client of a WebSocket path)`, ErrMalformed)
	}
	if json.Unmarshal(m["id"], &id) != nil {
		return "", fmt.Errorf(`%w: "_session" must have a string "id"`, ErrMalformed)
	}
	return ParseSessionID(id)
}

// parsePayload turns a message's payload into what goes on the wire, as
// websocket-out does: a string as it is; a Node-RED Buffer as bytes;
// anything else as JSON text (JSON.stringify's).
func parsePayload(raw json.RawMessage) (any, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) > 0 && t[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
		}
		if s == "" {
			return nil, fmt.Errorf("%w: the payload is an empty string", ErrEmpty)
		}
		if len(s) > MaxFrame {
			return nil, fmt.Errorf("%w: the payload is %d bytes, at most %d fit a frame", ErrTooLarge, len(s), MaxFrame)
		}
		return s, nil
	}
	if b, ok := nodeBuffer(raw); ok {
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: the payload is an empty Buffer", ErrEmpty)
		}
		if len(b) > MaxFrame {
			return nil, fmt.Errorf("%w: the payload is %d bytes, at most %d fit a frame", ErrTooLarge, len(b), MaxFrame)
		}
		return b, nil
	}
	text, err := Stringify(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if len(text) > MaxFrame {
		return nil, fmt.Errorf("%w: the payload is %d bytes of JSON, at most %d fit a frame", ErrTooLarge, len(text), MaxFrame)
	}
	return broadcast.RawJSON(text), nil
}

// nodeBuffer reads {"type":"Buffer","data":[bytes]}, how JSON.stringify
// writes a Node.js Buffer, and nothing else.
func nodeBuffer(raw json.RawMessage) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) != 2 {
		return nil, false
	}
	var typ string
	if json.Unmarshal(m["type"], &typ) != nil || typ != "Buffer" {
		return nil, false
	}
	var data []uint8
	// []uint8 would also take a base64 string: ask for an array.
	if t := bytes.TrimLeft(m["data"], " \t\r\n"); len(t) == 0 || t[0] != '[' || json.Unmarshal(m["data"], &data) != nil {
		return nil, false
	}
	if data == nil {
		data = []byte{}
	}
	return data, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// Stringify rewrites one JSON value the way JSON.stringify writes what
// JSON.parse made of it, so that a push's frame is the one Node-RED's
// websocket-out sends for the same message: no white space, keys in
// their order, numbers in JavaScript's shortest form (1.0 is 1, 1E3 is
// 1000, one too large for a double is null), strings with only ", \ and
// control characters escaped. A repeated key is kept each time (where
// JSON.parse keeps its last value).
func Stringify(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type level struct {
		object, wantKey bool
		n               int
	}
	var stack []level
	out := make([]byte, 0, len(raw))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 || len(out) == 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out = append(out, byte(d))
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) == 0 && len(out) > 0 {
			return nil, errors.New("more than one JSON value")
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.object && top.wantKey:
				if top.n > 0 {
					out = append(out, ',')
				}
				top.n++
				top.wantKey = false
				out = appendJSString(out, tok.(string))
				out = append(out, ':')
				continue
			case top.object:
				top.wantKey = true
			default:
				if top.n > 0 {
					out = append(out, ',')
				}
				top.n++
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			out = append(out, byte(v))
			stack = append(stack, level{object: v == '{', wantKey: v == '{'})
		case string:
			out = appendJSString(out, v)
		case json.Number:
			out = appendJSNumber(out, v)
		case bool:
			out = strconv.AppendBool(out, v)
		case nil:
			out = append(out, "null"...)
		}
	}
}

// appendJSNumber appends n as JavaScript's Number toString writes the
// double JSON.parse makes of it.
func appendJSNumber(b []byte, n json.Number) []byte {
	f, err := strconv.ParseFloat(string(n), 64)
	if math.IsInf(f, 0) || (err != nil && !errors.Is(err, strconv.ErrRange)) {
		return append(b, "null"...)
	}
	if f == 0 {
		return append(b, '0') // -0 too
	}
	// encoding/json writes a float64 as ES2015's Number toString does.
	enc, _ := json.Marshal(f)
	return append(b, enc...)
}

// appendJSString appends s quoted as JSON.stringify quotes it.
func appendJSString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}
