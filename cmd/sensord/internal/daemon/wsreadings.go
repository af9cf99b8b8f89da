package daemon

import (
	"context"
	"log/slog"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/readings"
)

// wsReadings publishes every live reading on one WebSocket path, in the
// reference flow's sensor_update shape (with derived set, followed by
// the daemon's dew point and absolute humidity, so the dashboard
// computes none). The path's clients are on /healthz and its counters
// on /metrics with the other paths' (writeServerMetrics), so it adds
// neither.
type wsReadings struct {
	path  string // for the log
	srv   *broadcast.Server
	topic string
	log   *slog.Logger
	// derived adds dew_point and absolute_humidity: the hub's page shows
	// them. /ws/sensors keeps Node-RED's four keys.
	derived bool
}

func (o wsReadings) Publish(r outputs.Reading) {
	if !r.Live() {
		return
	}
	m := readingMessage(o.topic, r)
	if o.derived {
		m.Payload = readings.FrameOf(r.Derived)
	}
	if err := o.srv.Publish(m); err != nil {
		o.log.Warn("publish", "path", o.path, "err", err)
	}
}

func (wsReadings) Run(context.Context)          {}
func (wsReadings) Health(*health.Report) string { return "" }
func (wsReadings) Metrics(*promtext.Writer)     {}

// readingMessage is r as the WebSocket paths and client mode send it.
func readingMessage(topic string, r outputs.Reading) broadcast.Message {
	m := broadcast.Message{Topic: topic, Payload: r.Reading}
	if !r.Held {
		m.Time = r.Time // client mode back-fills by it; a held reading's time is not yet true
	}
	return m
}
