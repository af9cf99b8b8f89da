package broadcast

import (
	"bytes"
	"encoding/json"
)

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
