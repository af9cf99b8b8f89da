package daemon

// The -mqtt-* flags and their rules; the bridge's wiring is in mqtt.go.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"sensord/broadcast"
	"sensord/broadcast/mqtt"
	"sensord/cmd/sensord/internal/flagenv"
)

// maxMQTTText bounds every MQTT string flag (the URL, the login, the
// topic prefixes and the filter): a topic or a login of more than a few
// dozen bytes is a mistake, and each of these goes into every packet the
// bridge sends or names every message it gets; 256 bytes is far more than
// any real one, and refusing it at start beats truncating it later.
const maxMQTTText = 256

// bounded is check with the length bound of maxMQTTText in front.
func bounded(check func(string) error) func(string) error {
	return func(v string) error {
		if len(v) > maxMQTTText {
			return fmt.Errorf("is %d bytes long, more than the %d an MQTT setting may have", len(v), maxMQTTText)
		}
		if check == nil {
			return nil
		}
		return check(v)
	}
}

// mqttURLExamples ends a bad -mqtt-url's message.
const mqttURLExamples = " (for example mqtt://homeassistant.local:1883 or mqtts://broker:8883)"

// mqttSettings defines the -mqtt-* flags. The topic flags are
// checked even while -mqtt-url is empty, so a mistake shows before the
// bridge is turned on.
func (c *Config) mqttSettings(s *flagenv.Set) {
	s.Var(flagenv.Text{P: &c.MQTTURL, Check: bounded(checkMQTTURL)}, "mqtt-url", "MQTT broker, mqtt://host:1883 or mqtts://host:8883 (empty: MQTT off)").Show = redactMQTTURL
	s.Var(flagenv.Text{P: &c.MQTTUser, Check: bounded(nil)}, "mqtt-user", "MQTT user name")
	s.Var(flagenv.Text{P: &c.MQTTPassword, Check: bounded(nil)}, "mqtt-password", "MQTT password (never logged or shown)").Show = secret
	s.Var(flagenv.Text{P: &c.MQTTCA}, "mqtt-ca", "PEM file of the CA that signed an mqtts:// broker's certificate (default: the system's roots)")
	s.Var(flagenv.Text{P: &c.MQTTPrefix, Default: "sensors", Check: bounded(checkMQTTPrefix)}, "mqtt-prefix", "first level of the topics readings go to: <prefix>/<name>/temperature")
	s.Var(flagenv.Text{P: &c.MQTTDiscovery, Default: "homeassistant", Check: bounded(checkMQTTDiscovery)}, "mqtt-discovery", "Home Assistant's discovery prefix (empty: no discovery)")
	s.Var(flagenv.Choice{P: &c.MQTTForm, Default: string(mqtt.DefaultDiscoveryForm), Choices: discoveryForms()}, "mqtt-discovery-form",
		"Home Assistant discovery: device (one config for the device, Home Assistant 2024.11 and later; entities announced one by one before move over with their history) or entity (one config per entity, for consumers without the device form)")
	s.Var(flagenv.Text{P: &c.MQTTSubscribe, Default: "sensors/#", Check: bounded(checkMQTTSubscribe)}, "mqtt-subscribe", "MQTT topic filter passed to /ws/dashboard (empty: subscribe nothing)")
}

// discoveryForms are -mqtt-discovery-form's values.
func discoveryForms() []string {
	var out []string
	for _, f := range mqtt.DiscoveryForms() {
		out = append(out, string(f))
	}
	return out
}

// redactMQTTURL is how messages show -mqtt-url: without its password,
// and otherwise as typed (mqtt.Redact would show mqtt:// as mqtt:).
func redactMQTTURL(v string) string {
	if !strings.Contains(v, "@") {
		return v
	}
	return mqtt.Redact(v)
}

// checkMQTTURL refuses what mqtt.ParseURL does, in its words without the
// URL, which the message shows (redacted) in front.
func checkMQTTURL(v string) error {
	if v == "" {
		return nil
	}
	_, err := mqtt.ParseURL(v)
	if err == nil {
		return nil
	}
	why := strings.TrimPrefix(err.Error(), mqtt.ErrURL.Error()+": "+strconv.Quote(mqtt.Redact(v)))
	why = strings.TrimSpace(strings.TrimPrefix(why, ": "))
	if !strings.HasPrefix(why, "is ") && !strings.HasPrefix(why, "has ") {
		why = "is not a broker URL: " + why
	}
	return errors.New(why + mqttURLExamples)
}

func checkMQTTPrefix(v string) error {
	if v == "" || strings.ContainsAny(v, "+#") || strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") {
		return errors.New("must be a non-empty topic without + and # and without a leading or trailing /")
	}
	return nil
}

func checkMQTTDiscovery(v string) error {
	if strings.ContainsAny(v, "+#") || strings.HasSuffix(v, "/") {
		return errors.New("must be a topic prefix without + and # and without a trailing / (empty: no discovery)")
	}
	return nil
}

func checkMQTTSubscribe(v string) error {
	if v != "" && !broadcast.ValidFilter(v) {
		return errors.New("is not an MQTT topic filter (+ and # only as whole levels, # last; empty: subscribe nothing)")
	}
	return nil
}

// checkMQTT is the rule that -mqtt-ca goes with an mqtts:// -mqtt-url and
// holds a certificate; without -mqtt-url it is not used.
func (c *Config) checkMQTT() error {
	if c.MQTTURL == "" || c.MQTTCA == "" {
		return nil
	}
	b, err := mqtt.ParseURL(c.MQTTURL)
	if err != nil {
		return err // checkMQTTURL let it through: it cannot fail here
	}
	if !b.TLS {
		return flagenv.Blame("mqtt-ca", "is for mqtts:// URLs; -mqtt-url is %s", b)
	}
	if _, err := loadCA(c.MQTTCA); err != nil {
		return flagenv.Blame("mqtt-ca", "is no CA file: %v", err)
	}
	return nil
}
