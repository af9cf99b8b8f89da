package main

// The MQTT checks: a Mosquitto on the host side (package mosquitto), which
// the guest reaches through qemu's user network at 10.0.2.2 (the host's
// loopback), named in the copy's sensord.conf as SENSORD_MQTT_URL. From
// outside, a Paho client proves that the booted appliance publishes its
// readings retained, its Home Assistant discovery configs and online, and
// that the broker's last will turns it offline when the watchdog kills
// sensord.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sensord/image/boottest/harness"
	"sensord/image/boottest/mosquitto"
	"sensord/image/settings"
)

// qemuHost is the host's loopback as the guest sees it on qemu's user
// network.
const qemuHost = "10.0.2.2"

// mqttWait bounds how long the emulated appliance may take to publish: it
// starts sensord, connects and publishes on a software-emulated CPU.
const mqttWait = 3 * time.Minute

// lateCollect is how long the late client collects the retained messages
// the broker hands it on subscribing.
const lateCollect = 5 * time.Second

// mqttURL is the host's broker as the guest reaches it.
func (t *rig) mqttURL() string { return fmt.Sprintf("mqtt://%s:%d", qemuHost, t.mqtt.Port) }

// mqttRun is the MQTT checks' state: the messages a late client got
// retained, and how many the watcher had seen before the watchdog phase.
type mqttRun struct {
	*rig
	retained map[string]string
}

// mqttSteps: the readings, the status and the discovery configs, retained
// (a second client subscribing late gets them from the broker's store).
func (t *rig) mqttSteps() harness.Step {
	m := &mqttRun{rig: t}
	return harness.Group("MQTT",
		harness.Do("the appliance publishes", m.publishes),
		harness.Do("a late client gets the retained state", m.late),
		harness.Do("readings and status retained", m.checkRetained),
		harness.Do("Home Assistant's discovery retained", m.checkDiscovery),
	)
}

func (t *rig) statusPrefix() string { return "sensors/" + settings.BootTestHostname + "/" }

func (m *mqttRun) publishes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, mqttWait)
	defer cancel()
	prefix := m.statusPrefix()
	i := m.mqtt.Wait(ctx, 0, func(msg mosquitto.Msg) bool { return msg.Topic == prefix+"temperature" })
	if !m.Check(i >= 0, "the appliance publishes its readings to the host's Mosquitto (%s*)", prefix) {
		m.dumpGuest(ctx)
		return harness.ErrSkip
	}
	return nil
}

func (m *mqttRun) late(ctx context.Context) error {
	late := make(chan mosquitto.Msg, 64)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m.mqtt.Addr()).SetClientID("boottest-late"))
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		m.Fail("late MQTT client: %v", tok.Error())
		return harness.ErrSkip
	}
	defer c.Disconnect(100)
	c.Subscribe("#", 1, func(_ paho.Client, msg paho.Message) {
		select {
		case late <- mosquitto.Msg{Topic: msg.Topic(), Payload: string(msg.Payload()), Retained: msg.Retained()}:
		default:
		}
	})
	m.retained = map[string]string{}
	for collect := time.After(lateCollect); ; {
		select {
		case msg := <-late:
			if msg.Retained {
				m.retained[msg.Topic] = msg.Payload
			}
		case <-collect:
			return nil
		}
	}
}

func (m *mqttRun) checkRetained(context.Context) error {
	prefix := m.statusPrefix()
	for _, metric := range []string{"temperature", "humidity", "dew_point", "absolute_humidity"} {
		v, ok := m.retained[prefix+metric]
		_, err := strconv.ParseFloat(v, 64)
		m.Check(ok && err == nil, "%s%s is retained as a number: %q", prefix, metric, v)
	}
	m.Check(strings.HasPrefix(m.retained[prefix+"state"], `{"type":"sensor_update","temperature":`), "%sstate is retained as sensor_update JSON: %q", prefix, m.retained[prefix+"state"])
	m.Check(m.retained[prefix+"status"] == "online", "%sstatus is retained online: %q", prefix, m.retained[prefix+"status"])
	return nil
}

// checkDiscovery: Home Assistant's device-based discovery, one retained
// config for the device whose components include the four sensors.
func (m *mqttRun) checkDiscovery(context.Context) error {
	prefix := m.statusPrefix()
	var sensors []string
	for topic, v := range m.retained {
		if !strings.HasPrefix(topic, "homeassistant/device/") || !strings.HasSuffix(topic, "/config") {
			continue
		}
		var cfg struct {
			Availability string `json:"availability_topic"`
			Components   map[string]struct {
				Platform   string `json:"p"`
				StateTopic string `json:"state_topic"`
			} `json:"cmps"`
		}
		if json.Unmarshal([]byte(v), &cfg) != nil || cfg.Availability != prefix+"status" {
			continue
		}
		for _, c := range cfg.Components {
			if c.Platform == "sensor" && strings.HasPrefix(c.StateTopic, prefix) {
				sensors = append(sensors, strings.TrimPrefix(c.StateTopic, prefix))
			}
		}
	}
	slices.Sort(sensors)
	m.Check(slices.Equal(sensors, []string{"absolute_humidity", "dew_point", "humidity", "temperature"}),
		"one Home Assistant device discovery config is retained, its components the four sensors (temperature, humidity, dew point, absolute humidity): %v", sensors)
	m.mqttMark = len(m.mqtt.All())
	return nil
}

// checkMQTTWill runs after the watchdog killed and systemd restarted
// sensord: the broker's last will said offline, and the restarted sensord
// said online again.
func (t *rig) checkMQTTWill(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, mqttWait)
	defer cancel()
	status := t.statusPrefix() + "status"
	off := t.mqtt.Wait(ctx, t.mqttMark, func(m mosquitto.Msg) bool { return m.Topic == status && m.Payload == "offline" })
	if !t.Check(off >= 0, "the broker's last will publishes %s offline after the watchdog kill", status) {
		return
	}
	on := t.mqtt.Wait(ctx, off+1, func(m mosquitto.Msg) bool { return m.Topic == status && m.Payload == "online" })
	t.Check(on >= 0, "the restarted sensord publishes %s online again", status)
}
