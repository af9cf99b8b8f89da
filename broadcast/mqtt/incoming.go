package mqtt

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// HubType is the "type" of every message the bridge hands to the dashboard
// hub.
const HubType = "mqtt"

// HubMessage is one broker message as the third reference flow's function
// node builds it from Node-RED's mqtt-in output (payload as a UTF-8
// string): {"type":"mqtt","source":<topic level 2>,"metric":<topic level
// 3>,"value":<payload>,"timestamp":<ms since the epoch on arrival>}. A topic
// with fewer levels leaves the missing keys out. A deeper topic
// (sensors/x/temperature/raw) keeps the function node's keys and adds
// "topic", the whole MQTT topic, last: without it a reader could not tell
// it from sensors/x/temperature.
type HubMessage struct {
	Topic     string // the MQTT topic, kept for ?topic= filters; in the JSON only when Deeper
	Source    string
	HasSource bool
	Metric    string
	HasMetric bool
	Deeper    bool // the topic has levels past the metric
	Value     string
	Timestamp int64 // milliseconds since the Unix epoch
}

// NewHubMessage builds the hub message for a message that arrived on topic
// with payload at t. Bytes that are not UTF-8 become U+FFFD, as Node.js's
// Buffer.toString does.
func NewHubMessage(topic string, payload []byte, t time.Time) HubMessage {
	m := HubMessage{Topic: topic, Value: toUTF8(payload), Timestamp: t.UnixMilli()}
	levels := strings.SplitN(topic, "/", 4)
	if len(levels) > 1 {
		m.Source, m.HasSource = toUTF8([]byte(levels[1])), true
	}
	if len(levels) > 2 {
		m.Metric, m.HasMetric = toUTF8([]byte(levels[2])), true
	}
	m.Deeper = len(levels) > 3
	return m
}

func toUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// AppendJSON appends m in the function node's key order, then "topic" for
// a deeper topic.
func (m HubMessage) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":"`+HubType+`"`...)
	if m.HasSource {
		b = append(b, `,"source":`...)
		b = appendString(b, m.Source)
	}
	if m.HasMetric {
		b = append(b, `,"metric":`...)
		b = appendString(b, m.Metric)
	}
	b = append(b, `,"value":`...)
	b = appendString(b, m.Value)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, m.Timestamp, 10)
	if m.Deeper {
		b = append(b, `,"topic":`...)
		b = appendString(b, toUTF8([]byte(m.Topic)))
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON's shape.
func (m HubMessage) MarshalJSON() ([]byte, error) { return m.AppendJSON(nil), nil }

// appendString appends s as a JSON string the way JSON.stringify writes it
// (no HTML escaping of <, > and &).
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
