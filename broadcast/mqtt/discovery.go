package mqtt

import (
	"encoding/json"
	"math"
	"time"
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
// logs with discovered entities.
type haOrigin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

// HAConfig is one Home Assistant MQTT sensor discovery config, as its MQTT
// sensor documentation names the keys.
type HAConfig struct {
	Name                string   `json:"name"`
	UniqueID            string   `json:"unique_id"`
	StateTopic          string   `json:"state_topic"`
	AvailabilityTopic   string   `json:"availability_topic"`
	PayloadAvailable    string   `json:"payload_available"`
	PayloadNotAvailable string   `json:"payload_not_available"`
	DeviceClass         string   `json:"device_class,omitempty"`
	StateClass          string   `json:"state_class"`
	Unit                string   `json:"unit_of_measurement,omitempty"`
	Precision           int      `json:"suggested_display_precision"`
	ExpireAfter         int      `json:"expire_after"`
	Device              haDevice `json:"device"`
	Origin              haOrigin `json:"origin"`
}

// minExpire is the shortest expire_after: Home Assistant marks an entity
// unavailable when no value came for that long, and a fast period must not
// make it flicker on one late reading.
const minExpire = 10 * time.Second

// expirePeriods is how many periods without a value make Home Assistant
// show the entity as unavailable: a few, so one failed read (retried with
// back-off) does not.
const expirePeriods = 5

// expireAfter is expire_after in whole seconds for readings every period.
func expireAfter(period time.Duration) int {
	d := max(expirePeriods*period, minExpire)
	return int(math.Ceil(d.Seconds()))
}

// uniqueID is the entity's unique_id: from the device's ID, not its name,
// so a rename keeps the entity and its history in Home Assistant.
func uniqueID(dev Device, e Entity) string { return "sensord_" + dev.ID + "_" + e.Metric }

// discoveryConfig builds the retained config for entity e.
func (b *Bridge) discoveryConfig(e Entity) ([]byte, error) {
	c := HAConfig{
		Name:                e.Name,
		UniqueID:            uniqueID(b.o.Device, e),
		StateTopic:          b.topic(e.Metric),
		AvailabilityTopic:   b.topic(StatusMetric),
		PayloadAvailable:    Online,
		PayloadNotAvailable: Offline,
		DeviceClass:         e.DeviceClass,
		StateClass:          "measurement",
		Unit:                e.Unit,
		Precision:           e.Precision,
		ExpireAfter:         expireAfter(b.o.Period),
		Device:              b.haDevice(),
		Origin:              haOrigin{Name: "sensord", SWVersion: b.o.Device.SWVersion},
	}
	return json.Marshal(c)
}

// haDevice is the device block every config of the bridge carries.
func (b *Bridge) haDevice() haDevice {
	return haDevice{
		Identifiers:  []string{"sensord_" + b.o.Device.ID},
		Name:         b.o.Device.Name,
		Manufacturer: "sensord",
		Model:        b.o.Device.Model,
		SWVersion:    b.o.Device.SWVersion,
		ConfigURL:    b.o.Device.ConfigURL,
	}
}

// discoveryTopic is where entity e's config is retained.
func (b *Bridge) discoveryTopic(e Entity) string {
	return b.o.Discovery + "/sensor/" + uniqueID(b.o.Device, e) + "/config"
}
