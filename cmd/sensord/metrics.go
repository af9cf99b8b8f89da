package main

// The catalogue of /metrics: which of the daemon's counters is exposed
// under which name. The format is promtext's.

import (
	"fmt"
	"slices"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/powercycle"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/sensor"
)

func (d *daemon) writeMetrics(m *promtext.Writer) {
	st := d.poller.Stats()

	m.Family("sensord_build_info", "gauge", "Build information.")
	m.Sample("sensord_build_info", fmt.Sprintf(`version=%q`, version), 1)
	m.One("sensord_uptime_seconds", "gauge", "Seconds since the daemon started.", health.Uptime(d.started, d.now()))

	m.One("sensord_sensor_reads_total", "counter", "Sensor read attempts.", float64(st.Reads))
	m.One("sensord_sensor_successes_total", "counter", "Sensor reads that passed every check.", float64(st.Successes))
	m.One("sensord_sensor_held_total", "counter", "Readings held back by the plausibility filter.", float64(st.Held))
	m.Family("sensord_sensor_errors_total", "counter", "Failed sensor reads by kind.")
	for _, k := range sensor.Kinds() {
		m.Sample("sensord_sensor_errors_total", fmt.Sprintf(`kind=%q`, k), float64(st.Errors[k]))
	}
	m.Family("sensord_sensor_failures_total", "counter", "Failed sensor reads by likely cause, as the driver told it from the line (unknown: not told).")
	for _, c := range sensor.Causes() {
		m.Sample("sensord_sensor_failures_total", fmt.Sprintf(`cause=%q`, c), float64(st.Causes[c]))
	}
	if pc, ok := d.rawDev.(*powercycle.Sensor); ok {
		ps := pc.Stats()
		m.One("sensord_sensor_power_cycles_total", "counter", "Times -power-pin switched the sensor off and on again after a run of failed reads.", float64(ps.Cycles))
		m.One("sensord_sensor_power_cycles_helped_total", "counter", "Power cycles after which the sensor read well again.", float64(ps.Helped))
		m.One("sensord_sensor_power_cycles_failed_total", "counter", "Power cycles whose switching failed.", float64(ps.Failed))
	}
	vs := d.watch.Current()
	m.One("sensord_sensor_window_reads", "gauge", "Sensor reads in the verdict's window (see /healthz sensor.window_seconds).", float64(vs.WindowReads))
	m.One("sensord_sensor_window_failed", "gauge", "Failed sensor reads in the verdict's window.", float64(vs.WindowFailed))
	if !st.LastSuccess.IsZero() {
		m.One("sensord_sensor_last_success_timestamp_seconds", "gauge", "Unix time of the last good reading.", float64(st.LastSuccess.UnixMilli())/1000)
	}
	if rd, ok := d.poller.Latest(); ok {
		m.One("sensord_temperature_celsius", "gauge", "Last temperature reading.", rd.Temperature.Float())
		m.One("sensord_humidity_percent", "gauge", "Last relative humidity reading.", rd.Humidity.Float())
	}

	// One snapshot per path, so every family shows the same moment.
	stats := map[string]broadcast.ServerStats{}
	paths := make([]string, 0, 3)
	for p, srv := range d.servers() {
		stats[p] = srv.Stats()
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, c := range []struct {
		name, typ, help string
		value           func(broadcast.ServerStats) uint64
	}{
		{"sensord_clients", "gauge", "Connected WebSocket clients by path.",
			func(s broadcast.ServerStats) uint64 { return uint64(s.Clients) }},
		{"sensord_messages_published_total", "counter", "Messages published by path.",
			func(s broadcast.ServerStats) uint64 { return s.Published }},
		{"sensord_messages_sent_total", "counter", "Frames written to clients by path.",
			func(s broadcast.ServerStats) uint64 { return s.Sent }},
		{"sensord_messages_lost_total", "counter", "Messages slow clients skipped after falling a whole ring behind (all topics: a filtered client may not have wanted them all).",
			func(s broadcast.ServerStats) uint64 { return s.Lost }},
		{"sensord_clients_dropped_total", "counter", "Clients disconnected for being too slow or overflowing their reply queue.",
			func(s broadcast.ServerStats) uint64 { return s.Dropped }},
		{"sensord_write_stalls_total", "counter", "Writes a client's full socket could not take at once (slow clients; the others are not held up).",
			func(s broadcast.ServerStats) uint64 { return s.Stalls }},
		{"sensord_upgrades_rejected_total", "counter", "WebSocket upgrades refused (bad filter or query, token, origin, too many clients).",
			func(s broadcast.ServerStats) uint64 { return s.Rejected }},
		{"sensord_replies_dropped_total", "counter", "Replies to a session that had gone, or over the buffer budget.",
			func(s broadcast.ServerStats) uint64 { return s.RepliesDropped }},
	} {
		m.Family(c.name, c.typ, c.help)
		for _, p := range paths {
			m.Sample(c.name, fmt.Sprintf(`path="/ws/%s"`, p), float64(c.value(stats[p])))
		}
	}
	if d.client != nil {
		cs := d.client.State()
		m.Family("sensord_client_connected", "gauge", "1 while client mode is connected to -url.")
		up := 0.0
		if cs.State == "connected" {
			up = 1
		}
		m.Sample("sensord_client_connected", "", up)
		m.One("sensord_client_dropped_total", "counter", "Messages client mode dropped while the remote was down.", float64(cs.Dropped))
	}
	if d.conns != nil {
		m.One("sensord_connections", "gauge", "Open HTTP and WebSocket connections (all paths).", float64(d.conns.Open()))
		m.One("sensord_connections_max", "gauge", "The bound on open connections (below the descriptor limit and within the memory budget).", float64(d.conns.Max()))
		m.One("sensord_connections_refused_total", "counter", "Connections closed at once for being over the bound with no pending one to close instead.", float64(d.conns.Refused()))
		m.One("sensord_connections_pending", "gauge", "Open connections that have not completed a request (header, handshake, unwanted body, idle).", float64(d.conns.Pending()))
		m.One("sensord_connections_pending_max", "gauge", "The bound on those, from the memory budget.", float64(d.conns.MaxPending()))
		m.One("sensord_connections_evicted_total", "counter", "Pending connections closed, longest waiting first, to make room for new ones.", float64(d.conns.Evicted()))
	}
	d.update.writeMetrics(m)
	m.One("sensord_owner_token_wrong_total", "counter", "Requests that carried a wrong owner token (-owner-token).", float64(d.owner.Wrong()))
	m.One("sensord_owner_token_throttled_total", "counter", "Requests refused unchecked because their address sent too many wrong owner tokens.", float64(d.owner.Throttled()))
	m.One("sensord_writes_off_total", "counter", "Writing requests refused because no owner token is configured.", float64(d.owner.Off()))
	m.One("sensord_hosts_refused_total", "counter", "Requests refused for a Host not in -allowed-hosts.", float64(d.hostsRefused.Load()))
	m.One("sensord_ws_buffer_bytes", "gauge", "Bytes WebSocket clients hold in partial messages and queued replies (all paths).", float64(d.budget.Used()))
	m.One("sensord_ws_buffer_limit_bytes", "gauge", "The bound on those bytes.", float64(d.budget.Limit()))
	m.One("sensord_ws_buffer_refused_total", "counter", "Messages (client closed 1013) and replies refused for want of buffer memory.", float64(d.budget.Refused()))
	if d.store != nil {
		hs := d.store.Stats()
		m.One("sensord_history_written_total", "counter", "Readings committed to the history database.", float64(hs.Written))
		m.One("sensord_history_dropped_total", "counter", "Readings the history lost (queue full while the disk failed).", float64(hs.Dropped))
		m.One("sensord_history_commit_failures_total", "counter", "History commits that failed (retried).", float64(hs.Failed))
		m.One("sensord_history_queued", "gauge", "Readings waiting for the next history commit.", float64(hs.Queued))
	}
	m.One("sensord_history_requests_refused_total", "counter", "/api/history requests answered 400 (bad parameters, too many rows) and restores refused for their file.", float64(d.history.Refused()))
	m.One("sensord_history_requests_busy_total", "counter", "History queries answered 429: more long queries at once than the store runs.", float64(d.history.Busy()))
	if d.store != nil {
		failing := 0.0
		if d.store.Stats().Err != nil {
			failing = 1
		}
		m.One("sensord_history_write_failing", "gauge", "1 while history commits fail (a full disk, a damaged file), else 0.", failing)
	}
	d.writeMQTTMetrics(m)
	d.alerts.writeMetrics(m)
	m.One("sensord_heap_bytes", "gauge", "Go heap bytes in use.", float64(sysstat.HeapBytes()))
}
