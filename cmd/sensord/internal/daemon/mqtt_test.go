package daemon

// The MQTT bridge end to end: the real sensord binary against a real
// Mosquitto that the test starts and stops.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/cmd/sensord/internal/health"
	"sensord/internal/link"
	"sensord/internal/testutil"
)

// stateTS is the timestamp of a sensor_update payload.
var stateTS = regexp.MustCompile(`"timestamp":(\d+)\}$`)

func timestampOf(t *testing.T, payload string) int64 {
	t.Helper()
	m := stateTS.FindStringSubmatch(payload)
	if m == nil {
		t.Fatalf("no timestamp in %q", payload)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

func TestMQTTPublishesRetainedReadingsDiscoveryAndOnlineThenTheWillAfterKill9(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	p := start(t, nil, "-name", "kitchen", "-mqtt-url", broker.URL())
	w := broker.Watch(t, "#")
	for _, topic := range []string{"sensors/kitchen/temperature", "sensors/kitchen/humidity", "sensors/kitchen/dew_point", "sensors/kitchen/absolute_humidity"} {
		m, _ := w.Next(t, 0, topic, mosquittotest.OnTopic(topic))
		if !regexp.MustCompile(`^-?\d+\.\d$`).MatchString(m.Payload) {
			t.Errorf("%s: %q is not a number in the sensor's precision", topic, m.Payload)
		}
	}
	m, _ := w.Next(t, 0, "state", mosquittotest.OnTopic("sensors/kitchen/state"))
	if !readingRE.MatchString(m.Payload) {
		t.Errorf("state %q is not the sensor_update JSON", m.Payload)
	}
	// Everything the daemon retains must have reached the broker before a
	// late subscriber can be expected to get it from there: the status,
	// the discovery config and the alerts' states may go out after the
	// first readings.
	w.Next(t, 0, "online", func(m mosquittotest.Msg) bool {
		return m.Topic == "sensors/kitchen/status" && m.Payload == "online"
	})
	w.Next(t, 0, "the device's discovery config", func(m mosquittotest.Msg) bool {
		return strings.HasPrefix(m.Topic, "homeassistant/device/") && strings.HasSuffix(m.Topic, "/config")
	})
	// The hand-over from the entity form ends with its last step: the old
	// per-entity configs emptied, the last rule's last.
	_, end := w.Next(t, 0, "the end of the discovery hand-over", func(m mosquittotest.Msg) bool {
		return strings.HasSuffix(m.Topic, "_alert_no_reading/config") && m.Payload == ""
	})
	// Then the alerts' states.
	w.Next(t, end, "the built-in alerts' state", mosquittotest.OnTopic("sensors/kitchen/alert/no_reading/state"))
	// Retained: a subscriber arriving later gets all of it from the broker.
	late := broker.Watch(t, "#")
	seen := map[string]bool{}
	// Four values, state, status, the device's discovery config and the
	// two built-in alerts' states.
	for i := 0; len(seen) < 9; {
		m, j := late.Next(t, i, "retained message", func(m mosquittotest.Msg) bool { return m.Retained })
		seen[m.Topic] = true
		i = j + 1
		if m.Topic == "sensors/kitchen/status" && m.Payload != "online" {
			t.Errorf("status %q, want online", m.Payload)
		}
		if strings.HasSuffix(m.Topic, "/config") {
			var c map[string]any
			if err := json.Unmarshal([]byte(m.Payload), &c); err != nil || c["cmps"] == nil || c["device"] == nil || c["origin"] == nil {
				t.Errorf("discovery %s: %v %s", m.Topic, err, m.Payload)
			}
		}
	}
	for _, topic := range []string{"sensors/kitchen/temperature", "sensors/kitchen/humidity", "sensors/kitchen/dew_point", "sensors/kitchen/absolute_humidity", "sensors/kitchen/state", "sensors/kitchen/status"} {
		if !seen[topic] {
			t.Errorf("%s not retained (saw %v)", topic, seen)
		}
	}
	n := len(w.All())
	p.stop(t, syscall.SIGKILL)
	m, _ = w.Next(t, n, "offline from the last will", mosquittotest.OnTopic("sensors/kitchen/status"))
	if m.Payload != "offline" {
		t.Errorf("status after kill -9: %q", m.Payload)
	}
	after := broker.Watch(t, "sensors/kitchen/status")
	if m, _ := after.Next(t, 0, "retained status", mosquittotest.OnTopic("sensors/kitchen/status")); m.Payload != "offline" || !m.Retained {
		t.Errorf("retained status %q (retained %v), want offline", m.Payload, m.Retained)
	}
}

func TestMQTTCleanStopPublishesOffline(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	p := start(t, nil, "-name", "pantry", "-mqtt-url", broker.URL())
	w := broker.Watch(t, "sensors/pantry/status")
	_, i := w.Next(t, 0, "online", func(m mosquittotest.Msg) bool { return m.Payload == "online" })
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	w.Next(t, i+1, "offline after SIGTERM", func(m mosquittotest.Msg) bool { return m.Payload == "offline" })
}

func TestMQTTMessagesReachTheDashboardHubInTheFlowsShape(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	p := start(t, nil, "-name", "hall", "-mqtt-url", broker.URL(), "-mqtt-discovery", "")
	waitMQTT(t, p, "connected")
	c := dial(t, "ws://"+p.addr+"/ws/dashboard")
	before := time.Now().UnixMilli()
	broker.Publish(t, "sensors/kitchen/temperature", false, "21.4")
	deadline := time.Now().Add(mosquittotest.Wait)
	for time.Now().Before(deadline) {
		var m map[string]any
		if err := json.Unmarshal([]byte(readText(t, c, mosquittotest.Wait)), &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] != "mqtt" || m["source"] != "kitchen" {
			continue
		}
		ts, _ := m["timestamp"].(float64)
		if m["metric"] != "temperature" || m["value"] != "21.4" || int64(ts) < before || len(m) != 5 {
			t.Fatalf("hub message %v", m)
		}
		return
	}
	t.Fatal("no mqtt message on /ws/dashboard")
}

// waitMQTT waits until /healthz reports the MQTT link in state.
func waitMQTT(t *testing.T, p *proc, state link.State) health.Report {
	t.Helper()
	var h health.Report
	testutil.Until(t, mosquittotest.Wait, func() bool {
		h = health.Report{}
		getJSON(t, "http://"+p.addr+"/healthz", &h)
		return h.MQTT != nil && h.MQTT.State == state
	}, func() string { return fmt.Sprintf("mqtt state %+v, want %s", h.MQTT, state) })
	return h
}

// TestMQTTBrokerDownForThirtySecondsDelaysNothing stops the broker for
// 30 s. Throughout, readings keep reaching a WebSocket client at the
// sensor's pace, the watchdog keeps being pinged, /healthz stays 200
// (degraded, with the reason) and the queue bound holds; after the restart
// sensord reconnects and the first reading it publishes is the newest.
func TestMQTTBrokerDownForThirtySecondsDelaysNothing(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	sock, notes := testutil.NotifySocket(t)
	p := start(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=2000000"}, "-name", "cellar", "-mqtt-url", broker.URL(), "-mqtt-subscribe", "", "-period", "20ms")
	waitMQTT(t, p, "connected")
	ws := dial(t, "ws://"+p.addr+"/ws/sensors")

	broker.Stop()
	outage := time.Now()
	var pings []time.Time
	readings := 0
	var gap time.Duration
	last := time.Now()
	for time.Since(outage) < 30*time.Second {
		readText(t, ws, 5*time.Second) // at -period 20ms, a reading is 250x overdue by then
		readings++
		gap = max(gap, time.Since(last))
		last = time.Now()
	drain:
		for {
			select {
			case n := <-notes:
				if n.Text == "WATCHDOG=1" {
					pings = append(pings, n.At)
				}
			default:
				break drain
			}
		}
	}
	var h health.Report
	if code := getJSON(t, "http://"+p.addr+"/healthz", &h); code != http.StatusOK || h.Status != "degraded" || !strings.Contains(h.Reason, "mqtt") {
		t.Errorf("healthz during the outage: %d %s %q", code, h.Status, h.Reason)
	}
	// -period 20ms for 30 s is a thousand readings or so (a read takes a
	// few ms on top): more than the queue's 256, so the oldest went and
	// were counted.
	metrics := getText(t, "http://"+p.addr+"/metrics")
	if !regexp.MustCompile(`(?m)^sensord_mqtt_queued 256$`).MatchString(metrics) ||
		regexp.MustCompile(`(?m)^sensord_mqtt_queue_dropped_total 0$`).MatchString(metrics) {
		t.Errorf("queue bound: %s", grepLines(metrics, "sensord_mqtt_queue"))
	}
	t.Logf("outage: %d readings on /ws/sensors in 30 s, longest gap %s, %d watchdog pings", readings, gap, len(pings))
	if readings < 300 {
		t.Errorf("only %d readings in 30 s at -period 20ms: the sensor loop was held up", readings)
	}
	if len(pings) < 10 {
		t.Errorf("%d watchdog pings in 30 s at WATCHDOG_USEC=2s (one a second expected)", len(pings))
	}

	broker.Start()
	w := broker.Watch(t, "sensors/cellar/state")
	first, i := w.Next(t, 0, "first state after the outage", mosquittotest.OnTopic("sensors/cellar/state"))
	newest := timestampOf(t, first.Payload)
	// The backlog that follows is older, oldest first.
	prev := int64(0)
	for k := 0; k < 20; k++ {
		m, j := w.Next(t, i+1, "backlog", mosquittotest.OnTopic("sensors/cellar/state"))
		ts := timestampOf(t, m.Payload)
		if m.Retained || ts >= newest {
			break // the backlog is done; this is a live reading
		}
		if ts <= prev {
			t.Errorf("backlog out of order: %d after %d", ts, prev)
		}
		prev, i = ts, j
	}
	if prev == 0 {
		t.Error("no backlog followed the newest reading")
	}
	waitMQTT(t, p, "connected")
}

func TestMQTTPasswordIsNeverShownAndAWrongOneIsAClearRateLimitedError(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{Users: map[string]string{"pi": "Corr3ct-h0rse"}})
	good := start(t, []string{"SENSORD_MQTT_PASSWORD=Corr3ct-h0rse"}, "-name", "attic", "-mqtt-url", broker.URL(), "-mqtt-user", "pi")
	waitMQTT(t, good, "connected")

	bad := start(t, nil, "-name", "shed", "-mqtt-url", strings.Replace(broker.URL(), "mqtt://", "mqtt://pi:Wr0ng-h0rse@", 1))
	waitMQTT(t, bad, "disconnected")
	// Degraded once the sensor has read (before that the verdict is
	// "starting", which a loaded machine can stretch past the first
	// refused login).
	var h health.Report
	testutil.Until(t, mosquittotest.Wait, func() bool {
		h = health.Report{}
		getJSON(t, "http://"+bad.addr+"/healthz", &h)
		return h.Status != "starting"
	}, func() string { return "healthz still starting" })
	if h.MQTT == nil || !strings.Contains(h.MQTT.Reason, "refused the login") || h.Status != "degraded" {
		t.Errorf("healthz %s %+v", h.Status, h.MQTT)
	}
	// Wait for a few refused attempts (the back-off starts at 1 s).
	testutil.Until(t, mosquittotest.Wait, func() bool {
		return regexp.MustCompile(`(?m)^sensord_mqtt_connect_errors_total [3-9]`).MatchString(getText(t, "http://"+bad.addr+"/metrics"))
	}, func() string { return "no third refused attempt" })
	if n := strings.Count(bad.logs(), "refused the login"); n != 1 {
		t.Errorf("refusal logged %d times over three attempts, want once:\n%s", n, bad.logs())
	}
	for _, p := range []*proc{good, bad} {
		for _, path := range []string{"/healthz", "/metrics", "/", "/api/latest"} {
			if body := getText(t, "http://"+p.addr+path); strings.Contains(body, "h0rse") {
				t.Errorf("%s shows the password", path)
			}
		}
		if strings.Contains(p.logs(), "h0rse") {
			t.Errorf("the log shows the password:\n%s", p.logs())
		}
	}
}

func TestMQTTOverTLSWithTheGivenCA(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{TLS: true})
	p := start(t, nil, "-name", "loft", "-mqtt-url", broker.URL(), "-mqtt-ca", broker.CAFile)
	waitMQTT(t, p, "connected")
}

func getText(t *testing.T, url string) string {
	t.Helper()
	_, body := get(t, http.DefaultClient, url)
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
