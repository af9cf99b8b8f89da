package main

// The MQTT checks: a Mosquitto on the host side, which the guest reaches
// through qemu's user network at 10.0.2.2 (the host's loopback), named in
// the copy's sensord.conf as SENSORD_MQTT_URL. From outside, a Paho client
// proves that the booted appliance publishes its readings retained, its
// Home Assistant discovery configs and online, and that the broker's last
// will turns it offline when the watchdog kills sensord.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sensord/image/settings"
)

// qemuHost is the host's loopback as the guest sees it on qemu's user
// network.
const qemuHost = "10.0.2.2"

// mqttWait bounds how long the emulated appliance may take to publish: it
// starts sensord, connects and publishes on a software-emulated CPU.
const mqttWait = 3 * time.Minute

// hostBroker is the host side's Mosquitto and a client watching all of it.
type hostBroker struct {
	cmd  *exec.Cmd
	done chan struct{}
	port int
	c    paho.Client
	mark int // messages seen before the watchdog phase

	mu   sync.Mutex
	msgs []brokerMsg
}

type brokerMsg struct {
	topic, payload string
	retained       bool
}

// startBroker starts Mosquitto on a free loopback port and points the
// settings at it.
func (t *test) startBroker(set map[string]string) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	b := &hostBroker{port: ports[0], done: make(chan struct{})}
	conf := fmt.Sprintf("per_listener_settings false\npersistence false\nlog_dest stderr\nlistener %d 127.0.0.1\nallow_anonymous true\n", b.port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // it would otherwise drop to user mosquitto, which cannot read t.dir
	}
	path := filepath.Join(t.dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(t.dir, "mosquitto.log"))
	if err != nil {
		return err
	}
	b.cmd = exec.Command("/usr/sbin/mosquitto", "-c", path)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("mosquitto (make image-deps installs it): %w", err)
	}
	go func() { b.cmd.Wait(); log.Close(); close(b.done) }()
	t.mqtt = b
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto not accepting on %s: %w", addr, err)
		}
	}
	t.logf("mosquitto pid %d on %s; the guest's SENSORD_MQTT_URL is mqtt://%s:%d", b.cmd.Process.Pid, addr, qemuHost, b.port)
	set["SENSORD_MQTT_URL"] = fmt.Sprintf("mqtt://%s:%d", qemuHost, b.port)

	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("boottest-watcher").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second)
	o.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe("#", 1, func(_ paho.Client, m paho.Message) {
			b.mu.Lock()
			b.msgs = append(b.msgs, brokerMsg{m.Topic(), string(m.Payload()), m.Retained()})
			b.mu.Unlock()
		})
	})
	b.c = paho.NewClient(o)
	if tok := b.c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		return fmt.Errorf("watching mosquitto: %v", tok.Error())
	}
	return nil
}

// stopBroker ends the watcher and Mosquitto (by PID).
func (t *test) stopBroker() {
	b := t.mqtt
	if b == nil {
		return
	}
	t.mqtt = nil // stopped once, whichever scenario's cleanup comes first
	b.c.Disconnect(100)
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
	}
}

func (b *hostBroker) all() []brokerMsg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]brokerMsg(nil), b.msgs...)
}

// waitMsg returns the index of the first message from index from on that
// matches, or -1 when none came before ctx ended.
func (b *hostBroker) waitMsg(ctx context.Context, from int, match func(brokerMsg) bool) int {
	for {
		msgs := b.all()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return i
			}
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkMQTT: the readings, the status and the discovery configs, retained
// (a second client subscribing late gets them from the broker's store).
func (t *test) checkMQTT(ctx context.Context) {
	b := t.mqtt
	ctx, cancel := context.WithTimeout(ctx, mqttWait)
	defer cancel()
	prefix := "sensors/" + settings.BootTestHostname + "/"
	i := b.waitMsg(ctx, 0, func(m brokerMsg) bool { return m.topic == prefix+"temperature" })
	if !t.check(i >= 0, "the appliance publishes its readings to the host's Mosquitto (%s*)", prefix) {
		t.dumpGuest(ctx)
		return
	}
	late := make(chan brokerMsg, 64)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", b.port)).SetClientID("boottest-late"))
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.fail("late MQTT client: %v", tok.Error())
		return
	}
	defer c.Disconnect(100)
	c.Subscribe("#", 1, func(_ paho.Client, m paho.Message) {
		select {
		case late <- brokerMsg{m.Topic(), string(m.Payload()), m.Retained()}:
		default:
		}
	})
	retained := map[string]string{}
	for collect := time.After(5 * time.Second); ; {
		select {
		case m := <-late:
			if m.retained {
				retained[m.topic] = m.payload
			}
			continue
		case <-collect:
		}
		break
	}
	for _, metric := range []string{"temperature", "humidity", "dew_point", "absolute_humidity"} {
		v, ok := retained[prefix+metric]
		_, err := strconv.ParseFloat(v, 64)
		t.check(ok && err == nil, "%s%s is retained as a number: %q", prefix, metric, v)
	}
	t.check(strings.HasPrefix(retained[prefix+"state"], `{"type":"sensor_update","temperature":`), "%sstate is retained as sensor_update JSON: %q", prefix, retained[prefix+"state"])
	t.check(retained[prefix+"status"] == "online", "%sstatus is retained online: %q", prefix, retained[prefix+"status"])
	// Home Assistant's device-based discovery: one retained config for
	// the device whose components include the four sensors.
	var sensors []string
	for topic, v := range retained {
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
	t.check(slices.Equal(sensors, []string{"absolute_humidity", "dew_point", "humidity", "temperature"}),
		"one Home Assistant device discovery config is retained, its components the four sensors (temperature, humidity, dew point, absolute humidity): %v", sensors)
	b.mark = len(b.all())
}

// checkMQTTWill runs after the watchdog killed and systemd restarted
// sensord: the broker's last will said offline, and the restarted sensord
// said online again.
func (t *test) checkMQTTWill(ctx context.Context) {
	b := t.mqtt
	ctx, cancel := context.WithTimeout(ctx, mqttWait)
	defer cancel()
	status := "sensors/" + settings.BootTestHostname + "/status"
	off := b.waitMsg(ctx, b.mark, func(m brokerMsg) bool { return m.topic == status && m.payload == "offline" })
	if !t.check(off >= 0, "the broker's last will publishes %s offline after the watchdog kill", status) {
		return
	}
	on := b.waitMsg(ctx, off+1, func(m brokerMsg) bool { return m.topic == status && m.payload == "online" })
	t.check(on >= 0, "the restarted sensord publishes %s online again", status)
}
