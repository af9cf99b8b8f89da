package mqtt

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/link"
)

// fourEntities are the daemon's: the sensor's two and the derived two.
var fourEntities = append(slices.Clone(DefaultEntities),
	Entity{Metric: "dew_point", Name: "Dew point", DeviceClass: "temperature", Unit: "°C", Precision: 1},
	Entity{Metric: "absolute_humidity", Name: "Absolute humidity", DeviceClass: "absolute_humidity", Unit: "g/m³", Precision: 1},
)

var twoRules = []AlertRule{{Name: "hot", Title: "Alert hot"}, {Name: "sensor_failing", Title: "Alert sensor_failing"}}

const (
	deviceTopic = "homeassistant/device/sensord_0123456789abcdef/config"
	uidPrefix   = "sensord_0123456789abcdef_"
)

// entityTopics are the entity form's config topics of fourEntities and
// twoRules.
func entityTopics() []string {
	var out []string
	for _, e := range fourEntities {
		out = append(out, "homeassistant/sensor/"+uidPrefix+e.Metric+"/config")
	}
	for _, r := range twoRules {
		out = append(out, "homeassistant/binary_sensor/"+uidPrefix+"alert_"+r.Name+"/config")
	}
	return out
}

// retained is what the broker retains under filter now, by topic. A
// marker published after the subscription is acknowledged ends the list:
// Mosquitto queues a new subscription's retained messages before it
// handles a publish that comes after it.
func retained(t *testing.T, broker *mosquittotest.Broker, filter string) map[string]got {
	t.Helper()
	w := watch(t, broker, filter)
	marker := strings.TrimSuffix(filter, "#") + "zz-end-of-retained"
	broker.Publish(t, marker, false, "end")
	_, end := w.Next(t, 0, "the end marker", onTopic(marker))
	out := map[string]got{}
	for _, m := range w.All()[:end] {
		if m.Retained {
			out[m.Topic] = m
		}
	}
	return out
}

// TestDeviceDiscoveryIsOneRetainedConfigWithEveryEntity checks the device
// form on the broker against Home Assistant's device discovery schema:
// origin, device, the shared availability, and a components map with
// each sensor and each alert rule's problem binary sensor.
func TestDeviceDiscoveryIsOneRetainedConfigWithEveryEntity(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", Entities: fourEntities, Alerts: twoRules})
	run(t, b)
	waitState(t, b, link.Connected)

	ret := retained(t, broker, "homeassistant/#")
	g, ok := ret[deviceTopic]
	if !ok {
		t.Fatalf("no retained config on %s; retained: %v", deviceTopic, slices.Sorted(maps.Keys(ret)))
	}
	for _, topic := range entityTopics() {
		if m, ok := ret[topic]; ok {
			t.Errorf("entity-form config retained beside the device form: %s %s", topic, m.Payload)
		}
	}
	var cfg struct {
		Device     map[string]any            `json:"device"`
		Origin     map[string]any            `json:"origin"`
		Avty       string                    `json:"availability_topic"`
		Components map[string]map[string]any `json:"cmps"`
	}
	if err := json.Unmarshal([]byte(g.Payload), &cfg); err != nil {
		t.Fatalf("device config is not JSON: %v: %s", err, g.Payload)
	}
	if ids, _ := cfg.Device["identifiers"].([]any); len(ids) != 1 || ids[0] != "sensord_0123456789abcdef" || cfg.Device["name"] != "kitchen" {
		t.Errorf("device block %v", cfg.Device)
	}
	if cfg.Origin["name"] != "sensord" || cfg.Origin["sw_version"] != "v1.2.3" {
		t.Errorf("origin block %v", cfg.Origin)
	}
	if cfg.Avty != "sensors/kitchen/status" {
		t.Errorf("availability_topic %q", cfg.Avty)
	}
	want := map[string]map[string]any{}
	for _, e := range fourEntities {
		want[uidPrefix+e.Metric] = map[string]any{
			"p": "sensor", "unique_id": uidPrefix + e.Metric, "state_topic": "sensors/kitchen/" + e.Metric,
			"device_class": e.DeviceClass, "unit_of_measurement": e.Unit, "state_class": "measurement",
			"expire_after": float64(38), "suggested_display_precision": float64(1), "name": e.Name,
		}
	}
	for _, r := range twoRules {
		id := uidPrefix + "alert_" + r.Name
		want[id] = map[string]any{
			"p": "binary_sensor", "unique_id": id, "device_class": "problem", "name": r.Title,
			"state_topic": "sensors/kitchen/alert/" + r.Name + "/state", "json_attributes_topic": "sensors/kitchen/alert/" + r.Name,
		}
	}
	if got, w := slices.Sorted(maps.Keys(cfg.Components)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, w) {
		t.Fatalf("components %v, want %v", got, w)
	}
	for id, keys := range want {
		for k, v := range keys {
			if cfg.Components[id][k] != v {
				t.Errorf("%s: %s is %v, want %v", id, k, cfg.Components[id][k], v)
			}
		}
	}
	if ah := cfg.Components[uidPrefix+"absolute_humidity"]; ah["device_class"] != "absolute_humidity" || ah["unit_of_measurement"] != "g/m³" {
		t.Errorf("absolute humidity %v, want device class absolute_humidity in g/m³", ah)
	}
}

// TestMigrationFromTheEntityFormFollowsHomeAssistantsHandshake: a card
// that announced each entity on its own topic moves to the device form
// the way Home Assistant documents it, as a subscriber on the broker sees
// it: {"migrate_discovery":true} on every old topic, then the device
// config with the same unique_ids, then the old topics emptied.
func TestMigrationFromTheEntityFormFollowsHomeAssistantsHandshake(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	old := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", DiscoveryForm: EntityForm, Entities: fourEntities, Alerts: twoRules})
	stopOld := run(t, old)
	waitState(t, old, link.Connected)
	before := retained(t, broker, "homeassistant/#")
	uids := map[string]bool{}
	for _, topic := range entityTopics() {
		m, ok := before[topic]
		if !ok {
			t.Fatalf("the entity form retained nothing on %s", topic)
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		uids[c["unique_id"].(string)] = true
	}
	stopOld()

	w := watch(t, broker, "homeassistant/#")
	_, seen := w.Next(t, 0, "the old configs, retained", func(m got) bool { return m.Topic == entityTopics()[len(entityTopics())-1] })
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", Entities: fourEntities, Alerts: twoRules})
	run(t, b)

	var lastMigrate, device, firstClear int
	var migratedAt time.Time
	for _, topic := range entityTopics() {
		m, i := w.Next(t, seen+1, "migrate_discovery on "+topic, func(m got) bool {
			return m.Topic == topic && m.Payload == `{"migrate_discovery":true}`
		})
		lastMigrate = max(lastMigrate, i)
		migratedAt = m.At
	}
	dm, device := w.Next(t, seen+1, "the device config", onTopic(deviceTopic))
	firstClear = len(w.All()) + 1<<20
	for _, topic := range entityTopics() {
		_, i := w.Next(t, seen+1, "the emptied "+topic, func(m got) bool { return m.Topic == topic && m.Payload == "" })
		firstClear = min(firstClear, i)
	}
	if !(lastMigrate < device && device < firstClear) {
		t.Errorf("order: last migrate_discovery #%d, device config #%d, first empty payload #%d; want them in that order", lastMigrate, device, firstClear)
	}
	// Home Assistant unloads the old entities before the device config
	// comes.
	if gap := dm.At.Sub(migratedAt); gap < DefaultHandoverPause/2 {
		t.Errorf("device config %s after migrate_discovery, want about %s", gap, DefaultHandoverPause)
	}
	var cfg struct {
		Components map[string]map[string]any `json:"cmps"`
	}
	if err := json.Unmarshal([]byte(dm.Payload), &cfg); err != nil {
		t.Fatal(err)
	}
	for uid := range uids {
		if c, ok := cfg.Components[uid]; !ok || c["unique_id"] != uid {
			t.Errorf("unique_id %s of the entity form is not kept in the device form: %v", uid, c)
		}
	}
	if len(cfg.Components) != len(uids) {
		t.Errorf("device form has %d entities, the entity form had %d", len(cfg.Components), len(uids))
	}

	after := retained(t, broker, "homeassistant/#")
	if _, ok := after[deviceTopic]; !ok || len(after) != 1 {
		t.Errorf("retained after the migration: %v, want the device config alone", slices.Sorted(maps.Keys(after)))
	}
}

// TestEntityFormSettingAnnouncesEachEntityAndLeavesNoDeviceConfig: the
// setting for consumers without the device form retains one config per
// entity and hands a device config a card had back the same way.
func TestEntityFormSettingAnnouncesEachEntityAndLeavesNoDeviceConfig(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	dev := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", Entities: fourEntities, Alerts: twoRules})
	stopDev := run(t, dev)
	waitState(t, dev, link.Connected)
	if _, ok := retained(t, broker, "homeassistant/#")[deviceTopic]; !ok {
		t.Fatal("the device form retained no config")
	}
	stopDev()

	w := watch(t, broker, "homeassistant/#")
	_, seen := w.Next(t, 0, "the device config, retained", onTopic(deviceTopic))
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", DiscoveryForm: EntityForm, Entities: fourEntities, Alerts: twoRules})
	run(t, b)
	_, i := w.Next(t, seen+1, "migrate_discovery on the device config", func(m got) bool {
		return m.Topic == deviceTopic && m.Payload == `{"migrate_discovery":true}`
	})
	_, j := w.Next(t, i+1, "the device config emptied", func(m got) bool { return m.Topic == deviceTopic && m.Payload == "" })
	for _, topic := range entityTopics() {
		if _, k := w.Next(t, i+1, topic, onTopic(topic)); k > j {
			t.Errorf("%s came after the device config was emptied", topic)
		}
	}

	after := retained(t, broker, "homeassistant/#")
	if m, ok := after[deviceTopic]; ok {
		t.Errorf("device config still retained in the entity form: %s", m.Payload)
	}
	for _, topic := range entityTopics() {
		m, ok := after[topic]
		if !ok {
			t.Errorf("no retained config on %s", topic)
			continue
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if c["p"] != nil || c["device"] == nil || c["origin"] == nil || c["availability_topic"] != "sensors/kitchen/status" {
			t.Errorf("%s is not a whole entity-form config: %s", topic, m.Payload)
		}
		if strings.Contains(topic, "/binary_sensor/") && c["device_class"] != "problem" {
			t.Errorf("%s: device class %v, want problem", topic, c["device_class"])
		}
	}
}
