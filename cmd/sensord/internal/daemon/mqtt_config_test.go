package daemon

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sensord/broadcast/mqtt"
	"sensord/sensor"
)

func TestMQTTAndNameFlags(t *testing.T) {
	t.Run("MQTT is off by default and the name is the hostname's first label", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-sensor", "sim"}, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := os.Hostname()
		if c.MQTTURL != "" || c.Name != strings.Split(h, ".")[0] || c.MQTTPrefix != "sensors" || c.MQTTDiscovery != "homeassistant" || c.MQTTSubscribe != "sensors/#" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("discovery takes the device form unless told the entity form", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-sensor", "sim"}, env(), io.Discard)
		if err != nil || c.MQTTForm != "device" {
			t.Errorf("default form %q, %v; want device", c.MQTTForm, err)
		}
		c, _, err = ParseConfig([]string{"-sensor", "sim"}, env("SENSORD_MQTT_DISCOVERY_FORM", "entity"), io.Discard)
		if err != nil || c.MQTTForm != "entity" {
			t.Errorf("SENSORD_MQTT_DISCOVERY_FORM=entity gave %q, %v", c.MQTTForm, err)
		}
		_, _, err = ParseConfig([]string{"-sensor", "sim", "-mqtt-discovery-form", "devices"}, env(), io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), "-mqtt-discovery-form") || strings.Contains(err.Error(), "\n") {
			t.Errorf("a bad form: %v, want one line naming -mqtt-discovery-form", err)
		}
	})
	t.Run("every flag also comes from SENSORD_*", func(t *testing.T) {
		c, _, err := ParseConfig(nil, env("SENSORD_SENSOR", "sim", "SENSORD_NAME", "kitchen", "SENSORD_MQTT_URL", "mqtt://ha.local",
			"SENSORD_MQTT_USER", "u", "SENSORD_MQTT_PASSWORD", "p", "SENSORD_MQTT_PREFIX", "home/sensors",
			"SENSORD_MQTT_DISCOVERY", "", "SENSORD_MQTT_SUBSCRIBE", "home/+/temperature"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != "kitchen" || c.MQTTURL != "mqtt://ha.local" || c.MQTTUser != "u" || c.MQTTPassword != "p" ||
			c.MQTTPrefix != "home/sensors" || c.MQTTDiscovery != "" || c.MQTTSubscribe != "home/+/temperature" {
			t.Errorf("%+v", c)
		}
	})
	ca := filepath.Join(t.TempDir(), "not-a-ca.pem")
	os.WriteFile(ca, []byte("hello"), 0o600)
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"-name", "kitchen.local"}, "name"},
		{[]string{"-name", "küche"}, "name"},
		{[]string{"-name", strings.Repeat("a", 64)}, "name"},
		{[]string{"-mqtt-url", "http://broker"}, "mqtt-url"},
		{[]string{"-mqtt-url", "mqtt://broker/sensors"}, "mqtt-url"},
		{[]string{"-mqtt-url", "mqtt://broker", "-mqtt-ca", ca}, "mqtt-ca"},
		{[]string{"-mqtt-url", "mqtts://broker", "-mqtt-ca", ca}, "mqtt-ca"},
		{[]string{"-mqtt-url", "mqtt://broker", "-mqtt-prefix", "sensors/#"}, "mqtt-prefix"},
		{[]string{"-mqtt-url", "mqtt://broker", "-mqtt-prefix", ""}, "mqtt-prefix"},
		{[]string{"-mqtt-url", "mqtt://broker", "-mqtt-discovery", "ha/+"}, "mqtt-discovery"},
		{[]string{"-mqtt-url", "mqtt://broker", "-mqtt-subscribe", "sensors/#/x"}, "mqtt-subscribe"},
		{[]string{"-mqtt-prefix", strings.Repeat("p", 64<<10)}, "mqtt-prefix"},
		{[]string{"-mqtt-prefix", strings.Repeat("p", maxMQTTText+1)}, "mqtt-prefix"},
		{[]string{"-mqtt-subscribe", strings.Repeat("s/", 200) + "#"}, "mqtt-subscribe"},
		{[]string{"-mqtt-discovery", strings.Repeat("d", maxMQTTText+1)}, "mqtt-discovery"},
		{[]string{"-mqtt-url", "mqtt://" + strings.Repeat("b", maxMQTTText)}, "mqtt-url"},
		{[]string{"-mqtt-user", strings.Repeat("u", maxMQTTText+1)}, "mqtt-user"},
		{[]string{"-mqtt-password", strings.Repeat("w", maxMQTTText+1)}, "mqtt-password"},
		{[]string{"-topic", strings.Repeat("t", maxMQTTText+1)}, "topic"},
	} {
		t.Run("refuses "+strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := ParseConfig(append([]string{"-sensor", "sim"}, tt.args...), env(), io.Discard)
			var ue *usageError
			if !errors.As(err, &ue) || ue.Flag != tt.flag {
				t.Errorf("err %v, want a usage error naming -%s", err, tt.flag)
			}
		})
	}
	t.Run("settings at the length bound are taken", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-sensor", "sim", "-mqtt-prefix", strings.Repeat("p", maxMQTTText)}, env(), io.Discard)
		if err != nil || len(c.MQTTPrefix) != maxMQTTText {
			t.Errorf("err %v", err)
		}
	})
	t.Run("a bad URL from the environment is reported without its password", func(t *testing.T) {
		_, w, err := ParseConfig(nil, env("SENSORD_ENV_ERRORS", "warn", "SENSORD_SENSOR", "sim", "SENSORD_MQTT_URL", "http://pi:hunter2@broker"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(w) != 1 || strings.Contains(w[0], "hunter2") || !strings.Contains(w[0], "mqtt-url") {
			t.Errorf("warnings %q", w)
		}
		_, _, err = ParseConfig(nil, env("SENSORD_SENSOR", "sim", "SENSORD_MQTT_URL", "http://pi:hunter2@broker"), io.Discard)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %v", err)
		}
	})
}

func TestMQTTValuesCarryTheDerivedMetrics(t *testing.T) {
	r := sensor.Derive(sensor.Reading{Temperature: 214, Humidity: 482, Time: time.UnixMilli(1763856000123)})
	want := []mqtt.Value{
		{Metric: "temperature", Value: "21.4"},
		{Metric: "humidity", Value: "48.2"},
		{Metric: "dew_point", Value: r.DewPoint.String()},
		{Metric: "absolute_humidity", Value: r.AbsoluteHumidity.String()},
	}
	if got := mqttValues(r); !slices.Equal(got, want) {
		t.Errorf("mqttValues = %v, want %v", got, want)
	}
	// The values are the reading's, computed once by the poller, not again.
	r.DewPoint, r.AbsoluteHumidity = 99, 77
	if got := mqttValues(r); got[2].Value != "9.9" || got[3].Value != "7.7" {
		t.Errorf("mqttValues = %v, want the reading's own derived values 9.9 and 7.7", got)
	}
	dry := mqttValues(sensor.Derive(sensor.Reading{Temperature: 214, Humidity: 0}))
	for _, v := range dry {
		if v.Metric == "dew_point" {
			t.Errorf("a reading at 0 %%RH published a dew point: %v", dry)
		}
	}
	var metrics []string
	for _, e := range mqttEntities() {
		metrics = append(metrics, e.Metric)
	}
	for _, v := range want {
		if !slices.Contains(metrics, v.Metric) {
			t.Errorf("%s is published but not announced to Home Assistant (%v)", v.Metric, metrics)
		}
	}
}
