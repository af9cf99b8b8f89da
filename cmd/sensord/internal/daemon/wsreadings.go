package daemon

import (
	"context"
	"log/slog"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
)

// wsReadings publishes every live reading on one WebSocket path, in the
// reference flow's sensor_update shape. The path's clients are on
// /healthz and its counters on /metrics with the other paths'
// (writeServerMetrics), so it adds neither.
type wsReadings struct {
	path  string // for the log
	srv   *broadcast.Server
	topic string
	log   *slog.Logger
}

func (o wsReadings) Publish(r outputs.Reading) {
	if !r.Live() {
		return
	}
	if err := o.srv.Publish(readingMessage(o.topic, r)); err != nil {
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
