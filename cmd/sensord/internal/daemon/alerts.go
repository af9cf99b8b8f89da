package daemon

// The alerts' wiring: the rules of -alert judge every reading, the
// built-in rules the sensor's health, and each alert raised or cleared
// goes to every output: /ws/sensors and /ws/dashboard (retained for late
// joiners while active), client mode, the log, the MQTT bridge and the
// webhook. The rules themselves are sensor/alert; the flags are in
// config_alert.go.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"sensord/broadcast"
	"sensord/broadcast/mqtt"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/image/paths"
	"sensord/internal/link"
	"sensord/sensor/alert"
)

// alertStateFile holds the active alerts in -history-dir, so a restart
// neither raises them again nor forgets to clear them.
const alertStateFile = paths.AlertStateFile

// alertCheckEvery is how often the built-in rules look at the sensor's
// health: as often as the sensor watch decides it.
const alertCheckEvery = time.Second

// alertTopicLevel separates an alert's topic from the readings': alerts
// go to <-topic>/alert/<name>, so ?topic=<-topic> keeps to readings,
// ?topic=<-topic>/alert/+ picks the alerts and <-topic>/# both.
const alertTopicLevel = "/alert/"

// alertOutput is one place alerts go besides the WebSocket paths.
type alertOutput interface {
	// sendAlert hands over ev; it must not wait for a network.
	sendAlert(ev alert.Event)
}

// alerting joins the engine to the outputs. It is an output of readings
// itself: every live reading is judged by the rules.
type alerting struct {
	d    *daemon
	eng  *alert.Engine
	outs []alertOutput
	// webhook is -alert-webhook's sender, nil without one.
	webhook *alert.Webhook
	// mu makes judging and sending one step, so the outputs get the
	// events of the poller and of the health checks in the engine's order.
	mu sync.Mutex
}

// newAlerts builds the engine on the rules of -alert and the state kept
// in -history-dir. A state file that cannot be read is logged and the
// alerts start clear.
func (d *daemon) newAlerts() *alerting {
	o := alert.Options{Rules: d.cfg.Alerts, Period: d.cfg.Period, FailingAfter: d.watch.Window.Length(), Now: d.now}
	if dir := d.cfg.HistoryDir; dir != "" {
		o.Store = alert.FileStore{Path: filepath.Join(dir, alertStateFile)}
	}
	eng, err := alert.New(o)
	if err != nil {
		d.log.Error("alert state lost", "err", err, "fix", "the alerts start clear; the file is replaced at the next alert")
	}
	for _, r := range eng.Rules() {
		d.log.Debug("alert rule", "rule", r.String())
	}
	a := &alerting{d: d, eng: eng}
	if d.bridge != nil {
		a.outs = append(a.outs, mqttAlerts{d.bridge})
	}
	if u := d.cfg.AlertWebhook; u != "" {
		journal := link.NewLog("alert webhook", "check that -alert-webhook is right and its receiver runs and is reachable", d.log, time.Now)
		wh, err := alert.NewWebhook(u, alert.WebhookOpts{OnResult: func(ev alert.Event, err error) {
			switch {
			case err == nil:
				journal.Up("url", redactURL(u))
			case errors.Is(err, alert.ErrRefused):
				d.log.Error("alert webhook refused an alert", "alert", ev.Name, "state", ev.State, "err", err, "fix", "check -alert-webhook's URL")
			default:
				journal.Failed(err.Error(), "url", redactURL(u))
			}
		}})
		if err != nil { // checkWebhook let it through: it cannot fail here
			d.log.Error("alert webhook off", "err", err)
		} else {
			a.webhook = wh
			a.outs = append(a.outs, webhookAlerts{wh})
		}
	}
	return a
}

// mqttAlerts retains each rule's latest alert and state on the broker.
type mqttAlerts struct{ b *mqtt.Bridge }

func (m mqttAlerts) sendAlert(ev alert.Event) {
	m.b.PublishAlert(ev.Name, ev.State == alert.Raised, ev.AppendJSON(nil))
}

// webhookAlerts queues each alert for -alert-webhook.
type webhookAlerts struct{ w *alert.Webhook }

func (h webhookAlerts) sendAlert(ev alert.Event) { h.w.Send(ev) }

// mqttAlertRules are the rules Home Assistant is told of, the built-in
// ones included.
func mqttAlertRules(rules []alert.Rule) []mqtt.AlertRule {
	var out []mqtt.AlertRule
	for _, r := range rules {
		out = append(out, mqtt.AlertRule{Name: r.Name, Title: "Alert " + r.Name})
	}
	return append(out,
		mqtt.AlertRule{Name: alert.SensorFailing, Title: "Sensor failing"},
		mqtt.AlertRule{Name: alert.NoReading, Title: "No reading"})
}

// topic is ev's topic on the WebSocket paths.
func (a *alerting) topic(name string) string { return a.d.cfg.Topic + alertTopicLevel + name }

// Run publishes the alerts active at start (kept across a restart), then
// checks the built-in rules until ctx ends.
func (a *alerting) Run(ctx context.Context) {
	// Under mu, so a first reading that clears one of them comes after.
	a.mu.Lock()
	active := map[string]bool{}
	for _, ev := range a.eng.Active() {
		active[ev.Name] = true
		a.d.log.Warn("alert active", "alert", ev.Name, "metric", ev.Metric, "value", ev.Value, "threshold", ev.Threshold, "since", ev.Time)
		a.publishWS(ev)
		if a.d.bridge != nil {
			mqttAlerts{a.d.bridge}.sendAlert(ev)
		}
	}
	// The broker learns every other rule's state too: one it retains as
	// raised from an earlier run whose state was not kept is stale.
	for _, r := range a.eng.Rules() {
		if a.d.bridge != nil && !active[r.Name] {
			a.d.bridge.PublishAlert(r.Name, false, nil)
		}
	}
	a.mu.Unlock()
	if a.webhook != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { a.webhook.Run(ctx) })
	}
	t := time.NewTicker(alertCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h := alert.Health{Failing: a.d.watch.Failing(), LastGood: a.d.poller.Stats().LastSuccess, Started: a.d.started}
			a.mu.Lock()
			a.dispatch(a.eng.Check(h))
			a.mu.Unlock()
		}
	}
}

// Publish judges a good reading when it is taken (a held one too: the
// rules judge what the sensor reads, whatever the clock says).
func (a *alerting) Publish(r outputs.Reading) {
	if !r.Live() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dispatch(a.eng.Observe(r.Derived))
}

// Health adds nothing: the alerts are their own messages, and a failing
// webhook has its log lines and counters.
func (a *alerting) Health(*health.Report) string { return "" }

// dispatch sends each event everywhere, in order; a.mu is held.
func (a *alerting) dispatch(evs []alert.Event, saveErr error) {
	if saveErr != nil {
		a.d.log.Error("alert state not kept", "err", saveErr, "fix", "check that -history-dir is writable; a restart would forget these alerts")
	}
	for _, ev := range evs {
		args := []any{"alert", ev.Name, "metric", ev.Metric, "value", ev.Value, "threshold", ev.Threshold}
		if ev.State == alert.Raised {
			a.d.log.Warn("alert raised", args...)
		} else {
			a.d.log.Info("alert cleared", args...)
		}
		a.publishWS(ev)
		for _, o := range a.outs {
			o.sendAlert(ev)
		}
	}
}

// publishWS sends ev on /ws/sensors and /ws/dashboard, retained while it
// is raised, and to client mode's -url.
func (a *alerting) publishWS(ev alert.Event) {
	m := broadcast.Message{Topic: a.topic(ev.Name), Payload: ev}
	keep := ev.State == alert.Raised
	for path, s := range map[string]*broadcast.Server{"/ws/sensors": a.d.sensors, "/ws/dashboard": a.d.dash} {
		if err := s.PublishRetained(m, keep); err != nil {
			a.d.log.Warn("publish", "path", path, "err", err)
		}
	}
	if a.d.client != nil {
		a.d.client.Publish(m)
	}
}

// Metrics adds the alerts' counters and states to /metrics.
func (a *alerting) Metrics(m *promtext.Writer) {
	st := a.eng.Stats()
	m.Family("sensord_alerts_total", promtext.Counter, "Alerts raised and cleared, by state.")
	m.Sample("sensord_alerts_total", fmt.Sprintf(`state=%q`, alert.Raised), float64(st.Raised))
	m.Sample("sensord_alerts_total", fmt.Sprintf(`state=%q`, alert.Cleared), float64(st.Cleared))
	active := map[string]bool{}
	for _, ev := range st.Active {
		active[ev.Name] = true
	}
	m.Family("sensord_alert_active", promtext.Gauge, "1 while the rule's alert is raised, by rule.")
	for _, r := range a.eng.Rules() {
		v := 0.0
		if active[r.Name] {
			v = 1
		}
		m.Sample("sensord_alert_active", fmt.Sprintf(`name=%q`, r.Name), v)
	}
	if a.webhook != nil {
		ws := a.webhook.Stats()
		m.One("sensord_alert_webhook_sent_total", promtext.Counter, "Alerts -alert-webhook's receiver took.", float64(ws.Sent))
		m.One("sensord_alert_webhook_failures_total", promtext.Counter, "POSTs to -alert-webhook that failed and were retried.", float64(ws.Failures))
		m.One("sensord_alert_webhook_refused_total", promtext.Counter, "Alerts -alert-webhook's receiver refused for good (4xx), not retried.", float64(ws.Refused))
		m.One("sensord_alert_webhook_dropped_total", promtext.Counter, "Alerts dropped, oldest first, from the full webhook queue.", float64(ws.Dropped))
		m.One("sensord_alert_webhook_queued", promtext.Gauge, "Alerts waiting for -alert-webhook's receiver.", float64(ws.Queued))
	}
	m.One("sensord_alert_state_errors_total", promtext.Counter, "Writes of the active alerts to -history-dir that failed.", float64(st.SaveErrors))
}
