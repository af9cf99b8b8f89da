package daemon

// /metrics: each part of the daemon writes its own families, the way
// node_exporter's collectors do: the sensor (metrics_sensor.go), the
// WebSocket paths (metrics_ws.go), the front door (metrics_front.go), the
// updater, the clock, the pushes and /api/history in their own files, and
// each output through outputs.List. The format is promtext's.

import (
	"fmt"

	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/sysstat"
)

func (d *daemon) writeMetrics(m *promtext.Writer) {
	m.Family("sensord_build_info", promtext.Gauge, "Build information.")
	m.Sample("sensord_build_info", fmt.Sprintf(`version=%q`, d.cfg.Build), 1)
	m.One("sensord_uptime_seconds", promtext.Gauge, "Seconds since the daemon started.", health.Uptime(d.started, d.now()))
	d.writeSensorMetrics(m)
	d.writeServerMetrics(m)
	d.writeFrontMetrics(m)
	d.update.writeMetrics(m)
	d.settings.writeMetrics(m)
	d.writeHistoryRequestMetrics(m)
	d.writeClockMetrics(m)
	d.outs.Metrics(m)
	d.writePushMetrics(m)
	d.setup.Metrics(m)
	m.One("sensord_heap_bytes", promtext.Gauge, "Go heap bytes in use.", float64(sysstat.HeapBytes()))
}
