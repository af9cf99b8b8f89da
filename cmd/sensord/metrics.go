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
	"sensord/cmd/sensord/internal/push"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/internal/link"
	"sensord/sensor"
)

func (d *daemon) writeMetrics(m *promtext.Writer) {
	st := d.poller.Stats()

	m.Family("sensord_build_info", promtext.Gauge, "Build information.")
	m.Sample("sensord_build_info", fmt.Sprintf(`version=%q`, version), 1)
	m.One("sensord_uptime_seconds", promtext.Gauge, "Seconds since the daemon started.", health.Uptime(d.started, d.now()))

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

	// One snapshot per path, so every family shows the same moment.
	stats := map[string]broadcast.ServerStats{}
	paths := make([]string, 0, 3)
	for p, srv := range d.servers() {
		stats[p] = srv.Stats()
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, c := range []struct {
		name  string
		typ   promtext.Type
		help  string
		value func(broadcast.ServerStats) uint64
	}{
		{"sensord_clients", promtext.Gauge, "Connected WebSocket clients by path.",
			func(s broadcast.ServerStats) uint64 { return uint64(s.Clients) }},
		{"sensord_messages_published_total", promtext.Counter, "Messages published by path.",
			func(s broadcast.ServerStats) uint64 { return s.Published }},
		{"sensord_messages_sent_total", promtext.Counter, "Frames written to clients by path.",
			func(s broadcast.ServerStats) uint64 { return s.Sent }},
		{"sensord_messages_lost_total", promtext.Counter, "Messages slow clients skipped after falling a whole ring behind (all topics: a filtered client may not have wanted them all).",
			func(s broadcast.ServerStats) uint64 { return s.Lost }},
		{"sensord_clients_dropped_total", promtext.Counter, "Clients disconnected for being too slow or overflowing their reply queue.",
			func(s broadcast.ServerStats) uint64 { return s.Dropped }},
		{"sensord_write_stalls_total", promtext.Counter, "Writes a client's full socket could not take at once (slow clients; the others are not held up).",
			func(s broadcast.ServerStats) uint64 { return s.Stalls }},
		{"sensord_upgrades_rejected_total", promtext.Counter, "WebSocket upgrades refused (bad filter or query, token, origin, too many clients).",
			func(s broadcast.ServerStats) uint64 { return s.Rejected }},
		{"sensord_replies_dropped_total", promtext.Counter, "Replies to a session that had gone, or over the buffer budget.",
			func(s broadcast.ServerStats) uint64 { return s.RepliesDropped }},
	} {
		m.Family(c.name, c.typ, c.help)
		for _, p := range paths {
			m.Sample(c.name, fmt.Sprintf(`path="/ws/%s"`, p), float64(c.value(stats[p])))
		}
	}
	if d.client != nil {
		cs := d.client.State()
		m.Family("sensord_client_connected", promtext.Gauge, "1 while client mode is connected to -url.")
		up := 0.0
		if cs.State == link.Connected {
			up = 1
		}
		m.Sample("sensord_client_connected", "", up)
		m.One("sensord_client_dropped_total", promtext.Counter, "Messages client mode dropped while the remote was down.", float64(cs.Dropped))
		m.One("sensord_client_backfilled_total", promtext.Counter, "Readings the buffer dropped, sent again from the history store once the remote was back.", float64(cs.Backfilled))
	}
	if d.conns != nil {
		m.One("sensord_connections", promtext.Gauge, "Open HTTP and WebSocket connections (all paths).", float64(d.conns.Open()))
		m.One("sensord_connections_max", promtext.Gauge, "The bound on open connections (below the descriptor limit and within the memory budget).", float64(d.conns.Max()))
		m.One("sensord_connections_refused_total", promtext.Counter, "Connections closed at once for being over the bound with no pending one to close instead.", float64(d.conns.Refused()))
		m.One("sensord_connections_pending", promtext.Gauge, "Open connections that have not completed a request (header, handshake, unwanted body, idle).", float64(d.conns.Pending()))
		m.One("sensord_connections_pending_max", promtext.Gauge, "The bound on those, from the memory budget.", float64(d.conns.MaxPending()))
		m.One("sensord_connections_evicted_total", promtext.Counter, "Pending connections closed, longest waiting first, to make room for new ones.", float64(d.conns.Evicted()))
	}
	d.update.writeMetrics(m)
	m.One("sensord_owner_token_wrong_total", promtext.Counter, "Requests that carried a wrong owner token (-owner-token).", float64(d.owner.Wrong()))
	m.One("sensord_owner_token_throttled_total", promtext.Counter, "Requests refused unchecked because their address sent too many wrong owner tokens.", float64(d.owner.Throttled()))
	m.One("sensord_writes_off_total", promtext.Counter, "Writing requests refused because no owner token is configured.", float64(d.owner.Off()))
	m.One("sensord_writes_foreign_total", promtext.Counter, "Writing requests refused for coming from another site's page (Origin not this host).", float64(d.owner.Foreign()))
	m.One("sensord_hosts_refused_total", promtext.Counter, "Requests refused for a Host not in -allowed-hosts.", float64(d.hostsRefused.Load()))
	m.One("sensord_ws_buffer_bytes", promtext.Gauge, "Bytes WebSocket clients hold in partial messages and queued replies (all paths).", float64(d.budget.Used()))
	m.One("sensord_ws_buffer_limit_bytes", promtext.Gauge, "The bound on those bytes.", float64(d.budget.Limit()))
	m.One("sensord_ws_buffer_refused_total", promtext.Counter, "Messages (client closed 1013) and replies refused for want of buffer memory.", float64(d.budget.Refused()))
	if d.store != nil {
		hs := d.store.Stats()
		m.One("sensord_history_written_total", promtext.Counter, "Readings committed to the history database.", float64(hs.Written))
		m.One("sensord_history_dropped_total", promtext.Counter, "Readings the history lost (queue full while the disk failed).", float64(hs.Dropped))
		m.One("sensord_history_commit_failures_total", promtext.Counter, "History commits that failed (retried).", float64(hs.Failed))
		m.One("sensord_history_queued", promtext.Gauge, "Readings waiting for the next history commit.", float64(hs.Queued))
	}
	m.One("sensord_history_requests_refused_total", promtext.Counter, "/api/history requests answered 400 (bad parameters, too many rows) and restores refused for their file.", float64(d.history.Refused()))
	m.One("sensord_history_requests_busy_total", promtext.Counter, "History queries answered 429: more long queries at once than the store runs.", float64(d.history.Busy()))
	if d.store != nil {
		failing := 0.0
		if d.store.Stats().Err != nil {
			failing = 1
		}
		m.One("sensord_history_write_failing", promtext.Gauge, "1 while history commits fail (a full disk, a damaged file), else 0.", failing)
	}
	d.writeClockMetrics(m)
	d.writeMQTTMetrics(m)
	d.alerts.writeMetrics(m)
	ps := d.push.Stats()
	m.One("sensord_pushes_total", promtext.Counter, "Messages from outside (POST /api/send, the MQTT command topic) sent to a path's clients.", float64(ps.Sent))
	m.Family("sensord_pushes_refused_total", promtext.Counter, "Messages from outside refused, by reason (invalid: malformed, empty, too large or an unknown path; rate: over the push rate bound; session: for a client that has gone or is on another path, dropped, never broadcast).")
	for _, r := range push.Reasons {
		m.Sample("sensord_pushes_refused_total", fmt.Sprintf(`reason=%q`, r), float64(ps.Refused[r]))
	}
	m.One("sensord_heap_bytes", promtext.Gauge, "Go heap bytes in use.", float64(sysstat.HeapBytes()))
}
