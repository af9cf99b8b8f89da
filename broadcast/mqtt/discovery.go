package mqtt

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"sensord/sensor"
)

// Entity is one measured quantity the bridge publishes and announces to Home
// Assistant.
type Entity struct {
	Metric      string // topic level: <prefix>/<name>/<Metric>
	Name        string // shown in Home Assistant, e.g. "Temperature"
	DeviceClass string // Home Assistant sensor device class, e.g. "temperature"
	Unit        string // unit_of_measurement, e.g. "°C"
	Precision   int    // decimals to display (suggested_display_precision)
}

// DefaultEntities are a temperature and humidity sensor's.
var DefaultEntities = []Entity{
	{Metric: "temperature", Name: "Temperature", DeviceClass: "temperature", Unit: "°C", Precision: 1},
	{Metric: "humidity", Name: "Humidity", DeviceClass: "humidity", Unit: "%", Precision: 1},
}

// Device describes the appliance to Home Assistant.
type Device struct {
	ID        string // stable across renames (derived from the machine); the base of every unique_id
	Name      string // the device's name, shown as the device in Home Assistant
	Model     string // e.g. "DHT22"
	SWVersion string
	ConfigURL string // the dashboard, e.g. http://kitchen.local/
}

// DiscoveryForm is how the bridge announces its entities to Home
// Assistant.
type DiscoveryForm string

const (
	// DeviceForm is one retained config for the whole device on
	// <discovery>/device/<device id>/config, its entities in a components
	// map (Home Assistant 2024.11 and later, and what it recommends for a
	// device with several entities).
	DeviceForm DiscoveryForm = "device"
	// EntityForm is one retained config per entity on
	// <discovery>/<platform>/<unique_id>/config, for consumers that do not
	// read the device form.
	EntityForm DiscoveryForm = "entity"
	// DefaultDiscoveryForm is DeviceForm.
	DefaultDiscoveryForm = DeviceForm
)

// DiscoveryForms lists the forms, the default first.
func DiscoveryForms() []DiscoveryForm { return []DiscoveryForm{DeviceForm, EntityForm} }

// migratePayload is Home Assistant's hand-over between the two forms: sent
// to the configs of the form being left, it unloads their entities but
// keeps them (unique_id, entity_id, history) for the other form's config
// to take over.
const migratePayload = `{"migrate_discovery":true}`

// haDevice is the discovery config's device block.
type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
	ConfigURL    string   `json:"configuration_url,omitempty"`
}

// haOrigin names the software that sent the config, which Home Assistant
// logs with discovered entities (and requires in the device form).
type haOrigin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

// haShared are the keys every config of the bridge carries: once at the
// top of the device form's config, in each config of the entity form.
type haShared struct {
	AvailabilityTopic   string   `json:"availability_topic"`
	PayloadAvailable    string   `json:"payload_available"`
	PayloadNotAvailable string   `json:"payload_not_available"`
	Device              haDevice `json:"device"`
	Origin              haOrigin `json:"origin"`
}

// haComponent is one entity's own keys, as Home Assistant's MQTT sensor
// and binary sensor documentation names them.
type haComponent struct {
	// Platform ("p") names the entity's platform inside the device form's
	// components map; the entity form says it in the topic instead.
	Platform            string `json:"p,omitempty"`
	Name                string `json:"name"`
	UniqueID            string `json:"unique_id"`
	StateTopic          string `json:"state_topic"`
	JSONAttributesTopic string `json:"json_attributes_topic,omitempty"`
	DeviceClass         string `json:"device_class,omitempty"`
	StateClass          string `json:"state_class,omitempty"`
	Unit                string `json:"unit_of_measurement,omitempty"`
	Precision           *int   `json:"suggested_display_precision,omitempty"`
	ExpireAfter         int    `json:"expire_after,omitempty"`
}

// haEntityConfig is the entity form's config: an entity's keys and the
// shared ones side by side.
type haEntityConfig struct {
	haComponent
	haShared
}

// haDeviceConfig is the device form's config: the shared keys once, each
// entity under its key in "cmps" (components).
type haDeviceConfig struct {
	haShared
	Components map[string]haComponent `json:"cmps"`
}

// expireFailures is how many failed reads in a row Home Assistant waits
// out before it shows an entity as unavailable: a DHT22 that fails one
// read in two runs into five in a row about once in 32 runs, and the
// poller's back-off stretches those reads to half a minute and more.
const expireFailures = 5

// minExpire is the shortest expire_after: with a fast period the
// back-off is short too, and one reading held up on its way (a busy
// broker, a Wi-Fi retry) must not make the entity flicker.
const minExpire = 10 * time.Second

// expireAfter is expire_after in whole seconds for readings every period:
// longer than the poller is silent while expireFailures reads in a row
// fail and are retried with its back-off, plus one period for the reads
// themselves and the way to the broker, and at least minExpire.
func expireAfter(period time.Duration) int {
	d := max(sensor.PeriodicOpts(period).Silence(expireFailures)+period, minExpire)
	return int(math.Ceil(d.Seconds()))
}

// uniqueID is the entity's unique_id: from the device's ID, not its name,
// so a rename keeps the entity and its history in Home Assistant.
func uniqueID(dev Device, e Entity) string { return "sensord_" + dev.ID + "_" + e.Metric }

// alertUniqueID is the unique_id of rule's binary sensor.
func alertUniqueID(dev Device, rule string) string { return "sensord_" + dev.ID + "_alert_" + rule }

// deviceObjectID is the device's id in Home Assistant: its identifier and
// the object id of the device form's topic.
func deviceObjectID(dev Device) string { return "sensord_" + dev.ID }

// announced is one entity as the discovery configs carry it.
type announced struct {
	platform string // "sensor" or "binary_sensor"
	c        haComponent
}

// announcedEntities are every entity the bridge announces: the readings'
// sensors, then each alert rule's binary sensor.
func (b *Bridge) announcedEntities() []announced {
	var out []announced
	for _, e := range b.o.Entities {
		prec := e.Precision
		out = append(out, announced{"sensor", haComponent{
			Name:        e.Name,
			UniqueID:    uniqueID(b.o.Device, e),
			StateTopic:  b.topic(e.Metric),
			DeviceClass: e.DeviceClass,
			StateClass:  "measurement",
			Unit:        e.Unit,
			Precision:   &prec,
			ExpireAfter: expireAfter(b.o.Period),
		}})
	}
	for _, r := range b.o.Alerts {
		out = append(out, announced{"binary_sensor", haComponent{
			Name:                r.Title,
			UniqueID:            alertUniqueID(b.o.Device, r.Name),
			StateTopic:          b.AlertTopic(r.Name) + "/" + StateMetric,
			JSONAttributesTopic: b.AlertTopic(r.Name),
			DeviceClass:         "problem",
		}})
	}
	return out
}

// shared is the keys every config carries.
func (b *Bridge) shared() haShared {
	return haShared{
		AvailabilityTopic:   b.topic(StatusMetric),
		PayloadAvailable:    Online,
		PayloadNotAvailable: Offline,
		Device:              b.haDevice(),
		Origin:              haOrigin{Name: "sensord", SWVersion: b.o.Device.SWVersion},
	}
}

// haDevice is the device block every config of the bridge carries.
func (b *Bridge) haDevice() haDevice {
	return haDevice{
		Identifiers:  []string{deviceObjectID(b.o.Device)},
		Name:         b.o.Device.Name,
		Manufacturer: "sensord",
		Model:        b.o.Device.Model,
		SWVersion:    b.o.Device.SWVersion,
		ConfigURL:    b.o.Device.ConfigURL,
	}
}

// entityTopic is where entity a's config is retained in the entity form.
func (b *Bridge) entityTopic(a announced) string {
	return b.o.Discovery + "/" + a.platform + "/" + a.c.UniqueID + "/config"
}

// discoveryTopic is where entity e's config is retained in the entity
// form.
func (b *Bridge) discoveryTopic(e Entity) string {
	return b.entityTopic(announced{platform: "sensor", c: haComponent{UniqueID: uniqueID(b.o.Device, e)}})
}

// DeviceTopic is where the device form's config is retained:
// <discovery>/device/sensord_<device id>/config.
func (b *Bridge) DeviceTopic() string {
	return b.o.Discovery + "/device/" + deviceObjectID(b.o.Device) + "/config"
}

// entityConfigs are the entity form's configs, one per entity.
func (b *Bridge) entityConfigs() ([]message, error) {
	sh := b.shared()
	var msgs []message
	for _, a := range b.announcedEntities() {
		cfg, err := json.Marshal(haEntityConfig{haComponent: a.c, haShared: sh})
		if err != nil {
			return nil, fmt.Errorf("mqtt: discovery config: %w", err)
		}
		msgs = append(msgs, message{b.entityTopic(a), cfg, true})
	}
	return msgs, nil
}

// deviceConfig is the device form's config. Each entity's key in the
// components map is its unique_id, the object id its entity-form topic
// had, so that Home Assistant's migration finds it.
func (b *Bridge) deviceConfig() (message, error) {
	c := haDeviceConfig{haShared: b.shared(), Components: map[string]haComponent{}}
	for _, a := range b.announcedEntities() {
		a.c.Platform = a.platform
		c.Components[a.c.UniqueID] = a.c
	}
	cfg, err := json.Marshal(c)
	if err != nil {
		return message{}, fmt.Errorf("mqtt: discovery config: %w", err)
	}
	return message{b.DeviceTopic(), cfg, true}, nil
}

// discovery is what announce sends to Home Assistant, in steps each sent
// and acknowledged HandoverPause before the next: the configs of the configured form,
// and at the first announce of a run (handover) the documented
// migrate_discovery handshake from the other form around them, so that
// entities a card announced in the other form keep their unique_id and
// history:
//
//  1. {"migrate_discovery":true}, retained, on each config of the other
//     form: Home Assistant unloads those entities and keeps them;
//  2. the configs of this form: it takes the entities over;
//  3. an empty retained payload on each config of the other form: the
//     broker forgets them.
//
// Home Assistant ignores steps 1 and 3 on a topic it never discovered, so
// a card that never ran the other form loses nothing by them.
func (b *Bridge) discovery(handover bool) ([][]message, error) {
	if b.o.Discovery == "" {
		return nil, nil
	}
	entities, err := b.entityConfigs()
	if err != nil {
		return nil, err
	}
	device, err := b.deviceConfig()
	if err != nil {
		return nil, err
	}
	these, others := []message{device}, entities
	if b.o.DiscoveryForm == EntityForm {
		these, others = entities, []message{device}
	}
	if !handover {
		return [][]message{these}, nil
	}
	migrate := make([]message, len(others))
	clear := make([]message, len(others))
	for i, m := range others {
		migrate[i] = message{m.topic, []byte(migratePayload), true}
		clear[i] = message{m.topic, []byte{}, true}
	}
	return [][]message{migrate, these, clear}, nil
}
