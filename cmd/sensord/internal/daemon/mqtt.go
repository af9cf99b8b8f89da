package daemon

// The MQTT bridge's wiring: the device it announces, readings handed to
// it, its messages passed to /ws/dashboard, and its state on /healthz and
// /metrics. Its flags are in config_mqtt.go; the bridge itself is
// broadcast/mqtt.

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sensord/broadcast"
	"sensord/broadcast/mqtt"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/outputs"
	"sensord/cmd/sensord/internal/promtext"
	"sensord/internal/link"
	"sensord/sensor"
	"sensord/sensor/history"
)

// machineIDFile identifies this installation: systemd makes it on the first
// boot of every card flashed from the image, so each Pi has its own, and it
// survives a rename.
const machineIDFile = "/etc/machine-id"

// deviceID is the base of the Home Assistant unique_ids: a hash of the
// machine id (systemd asks that the id itself not be published), or of the
// name where there is none.
func deviceID(name string) string {
	id, err := os.ReadFile(machineIDFile)
	seed := strings.TrimSpace(string(id))
	if err != nil || seed == "" || seed == "uninitialized" {
		seed = "name:" + name
	}
	sum := sha256.Sum256([]byte("sensord " + seed))
	return hex.EncodeToString(sum[:8])
}

// model is the device model Home Assistant shows.
func model(kind string) string {
	if kind == "sim" {
		return "DHT22 (simulated)"
	}
	return strings.ToUpper(kind)
}

// listenAddr lets dashboardURL format -listen before anything is bound.
type listenAddr string

func (a listenAddr) Network() string { return "tcp" }
func (a listenAddr) String() string  { return string(a) }

// newBridge builds the bridge from the flags; nil without -mqtt-url.
func (d *daemon) newBridge() (*mqtt.Bridge, error) {
	cfg := d.cfg
	if cfg.MQTTURL == "" {
		return nil, nil
	}
	var pool *x509.CertPool
	if cfg.MQTTCA != "" {
		p, err := loadCA(cfg.MQTTCA)
		if err != nil {
			return nil, badFlag("mqtt-ca", "%v", err)
		}
		pool = p
	}
	o := mqtt.Opts{
		URL:           cfg.MQTTURL,
		Username:      cfg.MQTTUser,
		Password:      cfg.MQTTPassword,
		RootCAs:       pool,
		Prefix:        cfg.MQTTPrefix,
		Name:          cfg.Name,
		Discovery:     cfg.MQTTDiscovery,
		DiscoveryForm: mqtt.DiscoveryForm(cfg.MQTTForm),
		Subscribe:     cfg.MQTTSubscribe,
		Period:        cfg.Period,
		Entities:      mqttEntities(),
		Alerts:        mqttAlertRules(cfg.Alerts),
		Device: mqtt.Device{
			ID:        deviceID(cfg.Name),
			Name:      cfg.Name,
			Model:     model(cfg.Sensor),
			SWVersion: cfg.Build,
			ConfigURL: dashboardURL("http", listenAddr(cfg.Listen)),
		},
		OnMessage: func(m mqtt.HubMessage) {
			if err := d.dash.Publish(broadcast.Message{Topic: m.Topic, Payload: m}); err != nil {
				d.log.Debug("publish", "path", "/ws/dashboard", "err", err)
			}
		},
		OnCommand: d.pushFromMQTT,
		OnState: func(s mqtt.LinkState) {
			if s.State == link.Disconnected && s.Reason != mqtt.ReasonStopped {
				d.log.Warn("mqtt", "broker", s.Broker, "state", s.State, "reason", s.Reason, "attempts", s.Attempts)
				return
			}
			d.log.Info("mqtt", "broker", s.Broker, "state", s.State, "reason", s.Reason)
		},
	}
	if d.store != nil && cfg.HistoryDir != "" {
		// Readings the queue drops while the broker is away come back
		// from the history: an outage as long as -history-raw-retention
		// loses nothing on the state topic.
		o.Backfill = d.mqttBackfill
		o.OnBackfill = func(n int, from, to time.Time) {
			d.log.Info("mqtt back-filled readings from history", "readings", n, "from", from.UTC().Format(time.RFC3339), "to", to.UTC().Format(time.RFC3339))
		}
	}
	b, err := mqtt.New(o)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	d.log.Info("mqtt bridge", "broker", b.Broker().String(), "user", b.Broker().Username, "name", cfg.Name,
		"topics", b.Topic("#"), "discovery", cfg.MQTTDiscovery, "discovery_form", cfg.MQTTForm, "subscribe", cfg.MQTTSubscribe)
	return b, nil
}

// mqttBackfill is the bridge's Backfill: the stored readings of [from,
// to), as mqttReadings makes them.
func (d *daemon) mqttBackfill(ctx context.Context, from, to time.Time, fn func(mqtt.Publication) error) error {
	return d.store.Export(ctx, from, to, func(bool) error { return nil }, func(p history.Point) error {
		if p.N != 1 {
			return nil // a rollup: past raw retention
		}
		return fn(mqttReading(sensor.Derive(sensor.Reading{Temperature: p.Temperature.Mean, Humidity: p.Humidity.Mean, Time: p.Time})))
	})
}

// clientBackfill is client mode's Backfill: the stored readings of (from,
// to), as publish hands them to the client. Without a history directory
// the in-memory store holds them as long as it does.
func (d *daemon) clientBackfill(ctx context.Context, from, to time.Time, emit func(broadcast.Message) error) error {
	if d.store == nil {
		return nil
	}
	return d.store.Export(ctx, from.Add(time.Millisecond), to, func(bool) error { return nil }, func(p history.Point) error {
		if p.N != 1 {
			return nil // a rollup: past raw retention
		}
		r := sensor.Reading{Temperature: p.Temperature.Mean, Humidity: p.Humidity.Mean, Time: p.Time}
		return emit(broadcast.Message{Topic: d.cfg.Topic, Payload: r, Time: r.Time})
	})
}

// runBridge is the bridge's loop.
func (d *daemon) runBridge(ctx context.Context) {
	if err := d.bridge.Run(ctx); err != nil {
		d.log.Error("mqtt", "err", err)
	}
}

// mqttOutput is the bridge as an output; nil without -mqtt-url.
func (d *daemon) mqttOutput() outputs.Output {
	if d.bridge == nil {
		return nil
	}
	return mqttReadings{d: d}
}

// mqttReadings hands every reading whose time is true to the bridge,
// which never waits for the broker.
type mqttReadings struct{ d *daemon }

func (o mqttReadings) Publish(r outputs.Reading) {
	if r.Timed() {
		o.d.bridge.Publish(mqttReading(r.Derived))
	}
}

func (o mqttReadings) Run(ctx context.Context) { o.d.runBridge(ctx) }

func (o mqttReadings) Health(h *health.Report) string {
	h.MQTT = o.d.mqttHealth()
	return o.d.mqttDown()
}

func (o mqttReadings) Metrics(m *promtext.Writer) { o.d.writeMQTTMetrics(m) }

// mqttReading is r as the bridge publishes it.
func mqttReading(r sensor.Derived) mqtt.Publication {
	return mqtt.Publication{Values: mqttValues(r), State: r.AppendJSON(make([]byte, 0, 96)), Time: r.Time}
}

// Metrics derived from each reading (sensor/derive.go), published and
// announced beside the sensor's own two.
const (
	metricDewPoint         = "dew_point"
	metricAbsoluteHumidity = "absolute_humidity"
)

// mqttEntities are the entities Home Assistant is told of: the sensor's
// temperature and humidity, and the dew point and absolute humidity
// computed from them, each with Home Assistant's device class and unit.
func mqttEntities() []mqtt.Entity {
	return append(slices.Clone(mqtt.DefaultEntities),
		mqtt.Entity{Metric: metricDewPoint, Name: "Dew point", DeviceClass: "temperature", Unit: "°C", Precision: 1},
		mqtt.Entity{Metric: metricAbsoluteHumidity, Name: "Absolute humidity", DeviceClass: "absolute_humidity", Unit: "g/m³", Precision: 1},
	)
}

// mqttValues are r's values, one a topic, in the sensor's precision. A
// reading of 0 %RH has no dew point, so it then goes without one.
func mqttValues(r sensor.Derived) []mqtt.Value {
	v := []mqtt.Value{
		{Metric: "temperature", Value: r.Temperature.String()},
		{Metric: "humidity", Value: r.Humidity.String()},
	}
	if r.HasDewPoint {
		v = append(v, mqtt.Value{Metric: metricDewPoint, Value: r.DewPoint.String()})
	}
	return append(v, mqtt.Value{Metric: metricAbsoluteHumidity, Value: r.AbsoluteHumidity.String()})
}

// mqttHealth is /healthz's view of the link.
func (d *daemon) mqttHealth() *health.MQTT {
	s, st := d.bridge.State(), d.bridge.Stats()
	return &health.MQTT{
		Broker: s.Broker, User: d.bridge.Broker().Username, State: s.State, Reason: s.Reason,
		Since: s.Since.UnixMilli(), Attempts: s.Attempts,
		Topics: d.bridge.Topic("#"), Discovery: d.cfg.MQTTDiscovery, Subscribe: d.cfg.MQTTSubscribe,
		Queued: st.Queued, Dropped: st.QueueDropped,
	}
}

// mqttDown says why the broker link is down ("" while it is up). A link
// that is down degrades health but never fails it: the watchdog's gate
// (healthy) does not look at the broker either, so a dead broker cannot
// get the daemon restarted.
func (d *daemon) mqttDown() string {
	s := d.bridge.State()
	if s.State == link.Connected {
		return ""
	}
	why := "mqtt " + string(s.State)
	if s.Reason != "" {
		why += ": " + s.Reason
	}
	return why
}

// writeMQTTMetrics adds the bridge's counters to /metrics.
func (d *daemon) writeMQTTMetrics(m *promtext.Writer) {
	s := d.bridge.Stats()
	up := 0.0
	if s.Connected {
		up = 1
	}
	for _, c := range []struct {
		name string
		typ  promtext.Type
		help string
		v    float64
	}{
		{"sensord_mqtt_connected", promtext.Gauge, "1 while the MQTT broker link is up.", up},
		{"sensord_mqtt_published_total", promtext.Counter, "MQTT messages the broker acknowledged.", float64(s.Published)},
		{"sensord_mqtt_queued", promtext.Gauge, "Readings waiting for the broker.", float64(s.Queued)},
		{"sensord_mqtt_queue_dropped_total", promtext.Counter, "Readings dropped, oldest first, from the full queue while the broker was unreachable.", float64(s.QueueDropped)},
		{"sensord_mqtt_backfilled_total", promtext.Counter, "Readings the full queue dropped, sent again from the history store (with -history-dir).", float64(s.Backfilled)},
		{"sensord_mqtt_connects_total", promtext.Counter, "Connections made to the broker.", float64(s.Connects)},
		{"sensord_mqtt_connect_errors_total", promtext.Counter, "Connection attempts that failed.", float64(s.ConnectErrors)},
		{"sensord_mqtt_publish_errors_total", promtext.Counter, "Publishes the broker did not acknowledge in time (each ends the connection).", float64(s.PublishErrors)},
		{"sensord_mqtt_received_total", promtext.Counter, "Messages that arrived on -mqtt-subscribe.", float64(s.Received)},
		{"sensord_mqtt_passed_total", promtext.Counter, "Of those, passed to /ws/dashboard.", float64(s.Passed)},
		{"sensord_mqtt_own_total", promtext.Counter, "Of those, this device's own topics, not passed to /ws/dashboard (the dashboard shows its own readings already).", float64(s.Own)},
	} {
		m.One(c.name, c.typ, c.help, c.v)
	}
	m.Family("sensord_mqtt_refused_total", promtext.Counter, "Subscribed messages not passed to /ws/dashboard, by reason (rate: over the message rate bound; size: payload or topic over the size bound; packet: over the 64 KiB packet bound, dropped as its header arrived, never read into memory).")
	m.Sample("sensord_mqtt_refused_total", `reason="rate"`, float64(s.RateDropped))
	m.Sample("sensord_mqtt_refused_total", `reason="size"`, float64(s.SizeDropped))
	m.Sample("sensord_mqtt_refused_total", `reason="packet"`, float64(s.Oversize))
	m.One("sensord_mqtt_commands_total", promtext.Counter, "Messages on the command topic <prefix>/<name>/send (refusals are in sensord_pushes_refused_total).", float64(s.Commands))
	m.One("sensord_mqtt_commands_retained_total", promtext.Counter, "Retained messages on the command topic, ignored: one left on the broker would run again at every connect.", float64(s.CommandsRetained))
	m.One("sensord_mqtt_client_events_total", promtext.Counter, "WebSocket client events (connect, disconnect, message) the broker acknowledged.", float64(s.EventsPublished))
	m.One("sensord_mqtt_client_events_dropped_total", promtext.Counter, "WebSocket client events dropped: over the size or rate bound, the queue full, or the broker away.", float64(s.EventsDropped))
}
