package daemon

import (
	"fmt"
	"slices"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/promtext"
)

// writeServerMetrics adds the WebSocket paths' counters, by path, and the
// buffer budget they share to /metrics.
func (d *daemon) writeServerMetrics(m *promtext.Writer) {
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
	m.One("sensord_ws_buffer_bytes", promtext.Gauge, "Bytes WebSocket clients hold in partial messages and queued replies (all paths).", float64(d.budget.Used()))
	m.One("sensord_ws_buffer_limit_bytes", promtext.Gauge, "The bound on those bytes.", float64(d.budget.Limit()))
	m.One("sensord_ws_buffer_refused_total", promtext.Counter, "Messages (client closed 1013) and replies refused for want of buffer memory.", float64(d.budget.Refused()))
}
