package daemon

// Messages from outside for the WebSocket clients, and the clients' own
// events, over MQTT: the command topic feeds the same Sender as
// POST /api/send (push package), and with MQTT on each client's connect,
// disconnect and messages go to <prefix>/<name>/client/<event> with its
// _session, so that a flow elsewhere can answer it later.

import (
	"fmt"
	"sync"
	"time"

	"sensord/broadcast"
	"sensord/broadcast/mqtt"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/push"
)

// pushLogEvery bounds the log lines about refused MQTT pushes (nobody
// gets an answer over MQTT, so the log says why): one per period at
// most, with how many were refused since the last.
const pushLogEvery = 10 * time.Second

// pushLog rate-limits the refused pushes' log lines.
type pushLog struct {
	mu       sync.Mutex
	last     time.Time
	unlogged int
}

// publishClientEvent publishes a client's connect or disconnect (MQTT on).
func (d *daemon) publishClientEvent(path string, e broadcast.Event) {
	if d.bridge == nil {
		return
	}
	kind := push.EventConnect
	if e.Kind == broadcast.Disconnect {
		kind = push.EventDisconnect
	}
	d.bridge.PublishEvent(kind, push.EventJSON(path, e, time.Now()))
}

// clientSaid is the OnMessage of path's server that publishes what its
// clients send; nil with MQTT off (their messages are read and dropped).
func (d *daemon) clientSaid(path string) func(broadcast.Incoming) {
	if d.cfg.MQTTURL == "" {
		return nil
	}
	return func(in broadcast.Incoming) {
		if d.bridge != nil {
			d.bridge.PublishEvent(push.EventMessage, push.SaidJSON(path, in, time.Now()))
		}
	}
}

// pushFromMQTT is the bridge's OnCommand: a message on the command topic,
// with its "path", goes out as POST /api/send's would.
func (d *daemon) pushFromMQTT(payload []byte) {
	if err := d.push.Allow(); err != nil {
		d.pushRefused(err)
		return
	}
	p, err := push.ParseJSON(payload)
	if err == nil && p.Path == "" {
		err = fmt.Errorf(`%w: the message has no "path" (one of %v)`, push.ErrPath, d.push.Paths())
	}
	if err != nil {
		d.pushRefused(d.push.Refuse(err))
		return
	}
	n, err := d.push.Send(p)
	if err != nil {
		d.pushRefused(err)
		return
	}
	d.log.Debug("mqtt push", "path", p.Path, "clients", n)
}

func (d *daemon) pushRefused(err error) {
	l := &d.pushLog
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unlogged++
	if now := time.Now(); now.Sub(l.last) >= pushLogEvery {
		d.log.Warn("mqtt push refused", "topic", d.bridge.Topic(mqtt.CommandMetric), "err", err, "refused_since_last_line", l.unlogged)
		l.last, l.unlogged = now, 0
	}
}

// writePushMetrics adds the messages from outside to /metrics.
func (d *daemon) writePushMetrics(m *promtext.Writer) {
	ps := d.push.Stats()
	m.One("sensord_pushes_total", promtext.Counter, "Messages from outside (POST /api/send, the MQTT command topic) sent to a path's clients.", float64(ps.Sent))
	m.Family("sensord_pushes_refused_total", promtext.Counter, "Messages from outside refused, by reason (invalid: malformed, empty, too large or an unknown path; rate: over the push rate bound; session: for a client that has gone or is on another path, dropped, never broadcast).")
	for _, r := range push.Reasons {
		m.Sample("sensord_pushes_refused_total", fmt.Sprintf(`reason=%q`, r), float64(ps.Refused[r]))
	}
}
