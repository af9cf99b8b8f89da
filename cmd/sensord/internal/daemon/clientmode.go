package daemon

// Client mode: readings and alerts sent to -url, as websocket-out in
// client mode does; the link's state on /healthz and /metrics.

import (
	"context"
	"crypto/tls"
	"time"

	"sensord/broadcast"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/internal/link"
)

// newClient builds client mode's link to -url; nil in server mode.
func (d *daemon) newClient() (*broadcast.Client, error) {
	cfg, log := d.cfg, d.log
	if cfg.Mode == "server" {
		return nil, nil
	}
	var tc *tls.Config
	if cfg.URLCA != "" {
		pool, err := loadCA(cfg.URLCA)
		if err != nil {
			return nil, badFlag("url-ca", "%v", err)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	journal := link.NewLog("client mode", "check that -url is right and that its server runs and is reachable", log, time.Now)
	c, err := broadcast.NewClient(cfg.URL, &broadcast.ClientOpts{
		TLS:      tc,
		WholeMsg: cfg.WholeMsg,
		OnState: func(s broadcast.ClientState) {
			log.Debug("client mode", "url", broadcast.RedactURL(cfg.URL), "state", s.State, "reason", s.Reason, "attempts", s.Attempts)
			switch {
			case s.State == link.Connected:
				journal.Up("url", broadcast.RedactURL(cfg.URL))
			case s.State == link.BackingOff:
				journal.Failed(s.Reason, "url", broadcast.RedactURL(cfg.URL))
			}
		},
		Backfill: d.clientBackfill,
	})
	if err != nil {
		return nil, badFlag("url", "%v", err)
	}
	return c, nil
}

// clientOutput is client mode as an output; nil in server mode.
func (d *daemon) clientOutput() outputs.Output {
	if d.client == nil {
		return nil
	}
	return clientReadings{d: d}
}

// clientReadings sends every live reading to -url.
type clientReadings struct{ d *daemon }

func (o clientReadings) Publish(r outputs.Reading) {
	if r.Live() {
		o.d.client.Publish(readingMessage(o.d.cfg.Topic, r))
	}
}

func (o clientReadings) Run(ctx context.Context) {
	if err := o.d.client.Run(ctx); err != nil && ctx.Err() == nil {
		o.d.log.Error("client mode", "err", err)
	}
}

func (o clientReadings) Health(h *health.Report) string {
	cs := o.d.client.State()
	h.Client = &health.Client{URL: broadcast.RedactURL(o.d.cfg.URL), State: cs.State, Reason: cs.Reason, Attempts: cs.Attempts, Dropped: cs.Dropped, Backfilled: cs.Backfilled}
	return ""
}

func (o clientReadings) Metrics(m *promtext.Writer) {
	cs := o.d.client.State()
	m.Family("sensord_client_connected", promtext.Gauge, "1 while client mode is connected to -url.")
	up := 0.0
	if cs.State == link.Connected {
		up = 1
	}
	m.Sample("sensord_client_connected", "", up)
	m.One("sensord_client_dropped_total", promtext.Counter, "Messages client mode dropped while the remote was down.", float64(cs.Dropped))
	m.One("sensord_client_backfilled_total", promtext.Counter, "Readings the buffer dropped, sent again from the history store once the remote was back.", float64(cs.Backfilled))
}
