// Package api answers the requests that come in on sensord's /ws/api,
// as Node-RED's second reference flow does: a websocket-in node, a
// function that answers get_status, and a websocket-out node that sends
// the answer to the asking client only (its _session).
//
// Every request gets exactly one reply, on the asker's session: the
// answer, or {"error":"..."} saying what was wrong and which actions
// exist. A bad request never closes the connection.
//
// # Concurrency
//
// An Answerer is read-only once built; Answer may be called from any
// number of goroutines, as long as its funcs may.
package api

import (
	"fmt"
	"time"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/sensor"
)

// Topic is the topic replies are published with.
const Topic = "api"

// Actions a request may ask for, as {"action":"get_status"}.
const (
	ActionStatus = "get_status"
	ActionLatest = "get_latest"
)

// known lists the actions for error messages.
const known = ActionStatus + ", " + ActionLatest

// Status is get_status's answer, in the reference flow's shape with the
// sensor's state added.
type Status struct {
	Status string             `json:"status"` // always "online": an answer proves it
	Uptime float64            `json:"uptime"` // seconds, like Node.js process.uptime()
	Memory uint64             `json:"memory"` // heap bytes in use
	Sensor health.SensorState `json:"sensor"`
}

// Answerer answers requests. Every field is required.
type Answerer struct {
	// Publish sends a reply; it is /ws/api's broadcaster's Publish.
	Publish func(broadcast.Message) error
	// Now and Started give get_status's uptime.
	Now     func() time.Time
	Started time.Time
	// Sensor is the sensor's state in words.
	Sensor func() health.SensorState
	// Latest is the newest good reading, false before the first.
	Latest func() (sensor.Reading, bool)
}

// IsAction reports whether in asks for one of the actions Answer knows:
// /ws/api's own requests, which nobody but Answer needs to see.
func IsAction(in broadcast.Incoming) bool {
	if !in.JSON {
		return false
	}
	switch action, _ := in.Msg["action"].(string); action {
	case ActionStatus, ActionLatest:
		return true
	}
	return false
}

// Answer replies to one request; it is /ws/api's OnMessage.
func (a *Answerer) Answer(in broadcast.Incoming) {
	reply := func(v any) {
		// Publish counts and drops a reply to a client that has gone;
		// there is no one left to tell.
		_ = a.Publish(broadcast.Message{Topic: Topic, Session: in.Session, Payload: v})
	}
	if !in.JSON {
		reply(httpjson.Error{Error: `malformed request: send a JSON object such as {"action":"get_status"}`})
		return
	}
	action, _ := in.Msg["action"].(string)
	switch action {
	case ActionStatus:
		reply(a.Status())
	case ActionLatest:
		if r, ok := a.Latest(); ok {
			reply(r)
			return
		}
		reply(httpjson.Error{Error: "no reading yet"})
	case "":
		reply(httpjson.Error{Error: `missing "action": known actions are ` + known})
	default:
		reply(httpjson.Error{Error: fmt.Sprintf("unknown action %q: known actions are %s", action, known)})
	}
}

// Status is get_status's answer now.
func (a *Answerer) Status() Status {
	return Status{Status: "online", Uptime: health.Uptime(a.Started, a.Now()), Memory: sysstat.HeapBytes(), Sensor: a.Sensor()}
}
