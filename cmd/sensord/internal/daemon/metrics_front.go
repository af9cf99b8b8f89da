package daemon

import "sensord/cmd/sensord/internal/promtext"

// writeFrontMetrics adds the front door's counters to /metrics: the
// connection bound (once the listeners are open), the owner's gate and
// -allowed-hosts.
func (d *daemon) writeFrontMetrics(m *promtext.Writer) {
	if d.conns != nil {
		m.One("sensord_connections", promtext.Gauge, "Open HTTP and WebSocket connections (all paths).", float64(d.conns.Open()))
		m.One("sensord_connections_max", promtext.Gauge, "The bound on open connections (below the descriptor limit and within the memory budget).", float64(d.conns.Max()))
		m.One("sensord_connections_refused_total", promtext.Counter, "Connections closed at once for being over the bound with no pending one to close instead.", float64(d.conns.Refused()))
		m.One("sensord_connections_pending", promtext.Gauge, "Open connections that have not completed a request (header, handshake, unwanted body, idle).", float64(d.conns.Pending()))
		m.One("sensord_connections_pending_max", promtext.Gauge, "The bound on those, from the memory budget.", float64(d.conns.MaxPending()))
		m.One("sensord_connections_evicted_total", promtext.Counter, "Pending connections closed, longest waiting first, to make room for new ones.", float64(d.conns.Evicted()))
	}
	m.One("sensord_owner_token_wrong_total", promtext.Counter, "Requests that carried a wrong owner token (-owner-token).", float64(d.owner.Wrong()))
	m.One("sensord_owner_token_throttled_total", promtext.Counter, "Requests refused unchecked because their address sent too many wrong owner tokens.", float64(d.owner.Throttled()))
	m.One("sensord_writes_off_total", promtext.Counter, "Writing requests refused because no owner token is configured.", float64(d.owner.Off()))
	m.One("sensord_writes_foreign_total", promtext.Counter, "Writing requests refused for coming from another site's page (Origin not this host).", float64(d.owner.Foreign()))
	m.One("sensord_hosts_refused_total", promtext.Counter, "Requests refused for a Host not in -allowed-hosts.", float64(d.hostsRefused.Load()))
}
