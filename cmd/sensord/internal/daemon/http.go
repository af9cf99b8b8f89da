package daemon

import (
	"net/http"
	"strings"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/api"
	"sensord/cmd/sensord/internal/guard"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/cmd/sensord/internal/readings"
	"sensord/cmd/sensord/web"
	"sensord/sensor"
)

// routes is the whole HTTP surface, separate from Run so that the tests
// of routes_test.go mount it on httptest.
func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	// The page and its assets; every more specific pattern below wins.
	mux.Handle("GET /", web.New(d.webOptions()))
	if d.cfg.Mode != "client" {
		mux.Handle("GET /ws/sensors", d.sensors)
	}
	mux.Handle("GET /ws/api", d.api)
	mux.Handle("GET /ws/dashboard", d.dash)
	mux.Handle("GET /healthz", d.checker)
	mux.Handle("GET /api/latest", readings.Latest(d.poller.Latest))
	d.historyRoutes(mux)
	mux.Handle("GET /metrics", promtext.Handler(d.writeMetrics))
	// A push writes to the clients: the owner's gate below covers it as
	// it covers every POST. The client list is a read, so it gets the
	// owner's check of its own: sessions and addresses are the owner's.
	mux.Handle("POST /api/send", d.push.SendHandler())
	mux.Handle("GET /api/clients", d.owner.Guard(d.push.ClientsHandler()))
	d.update.register(mux)
	d.settings.register(mux)
	mux.HandleFunc("POST /api/clock", d.setClock)
	// Every request that may change something goes through the owner's
	// check here, whichever route it is for.
	h := d.owner.Writes(mux)
	if d.cfg.Token != "" {
		h = guard.Token(d.cfg.Token, d.owner, h)
	}
	// The setup page, only on the setup access point (setup.go), comes
	// before every guard: it is the one write allowed without the owner.
	return d.setup.Front(d.hostGuard(h))
}

// hostGuard puts -allowed-hosts in front of h (when it is set).
func (d *daemon) hostGuard(h http.Handler) http.Handler {
	if d.cfg.AllowedHosts == "" {
		return h
	}
	return guard.Hosts(strings.Split(d.cfg.AllowedHosts, ","), &d.hostsRefused, h)
}

// newAnswerer is /ws/api's answering function node.
func (d *daemon) newAnswerer() *api.Answerer {
	return &api.Answerer{
		Publish: func(m broadcast.Message) error { return d.api.Publish(m) },
		Now:     d.now,
		Started: d.started,
		Sensor:  d.watch.Current,
		Latest: func() (sensor.Reading, bool) {
			r, ok := d.poller.Latest()
			return r.Reading, ok
		},
	}
}

// newChecker is /healthz: the sensor watch's verdict over the poller's
// counters, the watchdog's gate, the clock as a part that only degrades,
// and the rest of the daemon's state described (the outputs, whose links
// only degrade too).
func (d *daemon) newChecker() *health.Checker {
	return &health.Checker{
		Now:      d.now,
		Started:  d.started,
		Window:   health.Window{Period: d.cfg.Period},
		Version:  d.cfg.Build,
		Sensor:   d.poller.Stats,
		Verdict:  d.watch.Current,
		Alive:    d.healthy,
		Degraded: []func() string{d.clockDown},
		Describe: d.describe,
	}
}

// describe fills what /healthz shows beside the verdict, the outputs'
// parts among it, and returns why an output degrades the daemon.
func (d *daemon) describe(h *health.Report) string {
	h.Sensor.Name = d.dev.String()
	h.Clients = map[string]int{}
	for path, s := range d.servers() {
		h.Clients[path] = s.Clients()
	}
	h.TLSFingerprint = d.tlsFingerprint
	h.Name = d.name()
	c := d.clockHealth()
	h.Clock = &c
	h.Warnings = d.warnings
	h.Extra = d.healthExtra()
	return d.outs.Health(h)
}

// redactURL is broadcast.RedactURL, for config.go's messages.
func redactURL(raw string) string { return broadcast.RedactURL(raw) }
