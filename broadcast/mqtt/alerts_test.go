package mqtt

import (
	"encoding/json"
	"testing"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/link"
)

// Each rule is announced as a binary sensor of class problem whose state
// follows the retained alert message; the broker keeps the latest, also
// when it changed while the broker was away.
func TestAlertsAreRetainedAndAnnouncedAsProblemBinarySensors(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant",
		Alerts: []AlertRule{{Name: "hot", Title: "Alert hot"}, {Name: "sensor_failing", Title: "Alert sensor_failing"}}})
	run(t, b)
	waitState(t, b, link.Connected)
	raised := `{"type":"alert","name":"hot","state":"raised","metric":"temperature","value":30.4,"threshold":30,"timestamp":1763856000123}`
	live := watch(t, broker, "sensors/kitchen/alert/#")
	b.PublishAlert("sensor_failing", false, nil)
	b.PublishAlert("hot", true, []byte(raised))
	live.Next(t, 0, "hot's state", onTopic("sensors/kitchen/alert/hot/state"))
	live.Next(t, 0, "sensor_failing's state", onTopic("sensors/kitchen/alert/sensor_failing/state"))

	// A subscriber that comes later gets it all from the retained store.
	w := watch(t, broker, "#")
	for topic, want := range map[string]string{"sensors/kitchen/alert/hot": raised, "sensors/kitchen/alert/hot/state": "ON",
		"sensors/kitchen/alert/sensor_failing/state": "OFF"} {
		g, _ := w.Next(t, 0, topic, onTopic(topic))
		if g.Payload != want || !g.Retained {
			t.Fatalf("%s: got %q retained=%v, want %q", topic, g.Payload, g.Retained, want)
		}
	}
	dc, _ := w.Next(t, 0, "the device config", onTopic(deviceTopic))
	var dev struct {
		Device     map[string]any            `json:"device"`
		Components map[string]map[string]any `json:"cmps"`
	}
	if err := json.Unmarshal([]byte(dc.Payload), &dev); err != nil || !dc.Retained {
		t.Fatalf("%s: %v retained=%v", deviceTopic, err, dc.Retained)
	}
	if ids, _ := dev.Device["identifiers"].([]any); len(ids) != 1 || ids[0] != "sensord_0123456789abcdef" {
		t.Errorf("device %v is not the sensors' device", dev.Device)
	}
	for _, rule := range []string{"hot", "sensor_failing"} {
		id := "sensord_0123456789abcdef_alert_" + rule
		cfg := dev.Components[id]
		for k, want := range map[string]any{
			"p": "binary_sensor", "device_class": "problem", "state_topic": "sensors/kitchen/alert/" + rule + "/state", "name": "Alert " + rule,
			"json_attributes_topic": "sensors/kitchen/alert/" + rule, "unique_id": id,
		} {
			if cfg[k] != want {
				t.Errorf("%s: %s is %v, want %v", id, k, cfg[k], want)
			}
		}
	}

	// Raised and cleared while the broker is down: the broker gets the
	// clear, retained, when it is back.
	broker.Stop()
	waitState(t, b, link.Disconnected)
	cleared := `{"type":"alert","name":"hot","state":"cleared","metric":"temperature","value":28.9,"threshold":29,"timestamp":1763856060123}`
	b.PublishAlert("hot", true, []byte(raised))
	b.PublishAlert("hot", false, []byte(cleared))
	broker.Start()
	waitState(t, b, link.Connected)
	late := watch(t, broker, "sensors/kitchen/alert/#")
	g, _ := late.Next(t, 0, "the alert after the outage", onTopic("sensors/kitchen/alert/hot"))
	if g.Payload != cleared || !g.Retained {
		t.Fatalf("after the outage: got %q retained=%v, want the clear", g.Payload, g.Retained)
	}
	g, _ = late.Next(t, 0, "the state after the outage", onTopic("sensors/kitchen/alert/hot/state"))
	if g.Payload != "OFF" || !g.Retained {
		t.Fatalf("after the outage: state %q retained=%v, want OFF", g.Payload, g.Retained)
	}
}
