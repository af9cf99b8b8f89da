package daemon

import (
	"fmt"

	"sensord/cmd/sensord/internal/powercycle"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/sensor"
)

// writeSensorMetrics adds the poller's counters, the sensor watch's
// window, the power cycles and the latest reading to /metrics.
func (d *daemon) writeSensorMetrics(m *promtext.Writer) {
	st := d.poller.Stats()
	m.One("sensord_sensor_reads_total", promtext.Counter, "Sensor read attempts.", float64(st.Reads))
	m.One("sensord_sensor_successes_total", promtext.Counter, "Sensor reads that passed every check.", float64(st.Successes))
	m.One("sensord_sensor_held_total", promtext.Counter, "Readings held back by the plausibility filter.", float64(st.Held))
	m.Family("sensord_sensor_errors_total", promtext.Counter, "Failed sensor reads by kind.")
	for _, k := range sensor.ErrorKinds() {
		m.Sample("sensord_sensor_errors_total", fmt.Sprintf(`kind=%q`, k), float64(st.Errors[k]))
	}
	m.Family("sensord_sensor_failures_total", promtext.Counter, "Failed sensor reads by likely cause, as the driver told it from the line (unknown: not told).")
	for _, c := range sensor.Causes() {
		m.Sample("sensord_sensor_failures_total", fmt.Sprintf(`cause=%q`, c), float64(st.Causes[c]))
	}
	if pc, ok := d.rawDev.(*powercycle.Sensor); ok {
		ps := pc.Stats()
		m.One("sensord_sensor_power_cycles_total", promtext.Counter, "Times -power-pin switched the sensor off and on again after a run of failed reads.", float64(ps.Cycles))
		m.One("sensord_sensor_power_cycles_helped_total", promtext.Counter, "Power cycles after which the sensor read well again.", float64(ps.Helped))
		m.One("sensord_sensor_power_cycles_failed_total", promtext.Counter, "Power cycles whose switching failed.", float64(ps.Failed))
	}
	vs := d.watch.Current()
	m.One("sensord_sensor_window_reads", promtext.Gauge, "Sensor reads in the verdict's window (see /healthz sensor.window_seconds).", float64(vs.WindowReads))
	m.One("sensord_sensor_window_failed", promtext.Gauge, "Failed sensor reads in the verdict's window.", float64(vs.WindowFailed))
	if !st.LastSuccess.IsZero() {
		m.One("sensord_sensor_last_success_timestamp_seconds", promtext.Gauge, "Unix time of the last good reading.", float64(st.LastSuccess.UnixMilli())/1000)
	}
	if rd, ok := d.poller.Latest(); ok {
		m.One("sensord_temperature_celsius", promtext.Gauge, "Last temperature reading.", rd.Temperature.Float())
		m.One("sensord_humidity_percent", promtext.Gauge, "Last relative humidity reading.", rd.Humidity.Float())
	}
}
