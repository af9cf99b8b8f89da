package mqtt

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/link"
)

func newBridge(t *testing.T, o Opts) *Bridge {
	t.Helper()
	if o.Name == "" {
		o.Name = "kitchen"
	}
	if o.Period == 0 {
		o.Period = 2 * time.Second
	}
	if o.Device.ID == "" {
		o.Device = Device{ID: "0123456789abcdef", Model: "DHT22", SWVersion: "v1.2.3", ConfigURL: "http://kitchen.local/"}
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadingsArriveOnEveryTopicRetainedWithOnlineAndDiscovery(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", DiscoveryForm: EntityForm})
	run(t, b)
	waitState(t, b, link.Connected)
	b.Publish(reading("21.4", "48.2", 1763856000123))
	waitStats(t, b, "reading published", func(s Stats) bool { return s.Published >= 6 && s.Queued == 0 })

	// A subscriber arriving later gets every value from the broker's
	// retained store.
	w := watch(t, broker, "#")
	want := map[string]string{
		"sensors/kitchen/temperature": "21.4",
		"sensors/kitchen/humidity":    "48.2",
		"sensors/kitchen/state":       `{"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123}`,
		"sensors/kitchen/status":      "online",
	}
	for topic, payload := range want {
		g, _ := w.Next(t, 0, topic, onTopic(topic))
		if g.Payload != payload || !g.Retained {
			t.Errorf("%s: got %q retained=%v, want %q retained", topic, g.Payload, g.Retained, payload)
		}
	}
	for _, m := range []string{"temperature", "humidity"} {
		topic := "homeassistant/sensor/sensord_0123456789abcdef_" + m + "/config"
		g, _ := w.Next(t, 0, topic, onTopic(topic))
		if !g.Retained {
			t.Errorf("%s not retained", topic)
		}
	}
}

// TestDiscoveryConfigsCarryWhatHomeAssistantNeeds checks each config
// against the MQTT sensor schema of Home Assistant's docs: the keys it
// needs to make an entity without YAML, with the types it parses.
func TestDiscoveryConfigsCarryWhatHomeAssistantNeeds(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", DiscoveryForm: EntityForm, Period: 2 * time.Second})
	run(t, b)
	w := watch(t, broker, "homeassistant/#")
	for _, tt := range []struct{ metric, class, unit string }{
		{"temperature", "temperature", "°C"},
		{"humidity", "humidity", "%"},
	} {
		t.Run(tt.metric, func(t *testing.T) {
			topic := "homeassistant/sensor/sensord_0123456789abcdef_" + tt.metric + "/config"
			g, _ := w.Next(t, 0, topic, onTopic(topic))
			var c map[string]any
			if err := json.Unmarshal([]byte(g.Payload), &c); err != nil {
				t.Fatalf("config is not JSON: %v: %s", err, g.Payload)
			}
			str := func(k string) string {
				s, ok := c[k].(string)
				if !ok {
					t.Errorf("%s: %v is not a string", k, c[k])
				}
				return s
			}
			if got := str("device_class"); got != tt.class {
				t.Errorf("device_class %q, want %q", got, tt.class)
			}
			if got := str("unit_of_measurement"); got != tt.unit {
				t.Errorf("unit_of_measurement %q, want %q", got, tt.unit)
			}
			if got := str("state_class"); got != "measurement" {
				t.Errorf("state_class %q", got)
			}
			if got := str("state_topic"); got != "sensors/kitchen/"+tt.metric {
				t.Errorf("state_topic %q", got)
			}
			if got := str("availability_topic"); got != "sensors/kitchen/status" {
				t.Errorf("availability_topic %q", got)
			}
			if got := str("unique_id"); got != "sensord_0123456789abcdef_"+tt.metric {
				t.Errorf("unique_id %q", got)
			}
			if str("name") == "" {
				t.Error("no name")
			}
			if exp, ok := c["expire_after"].(float64); !ok || exp != 38 || exp != float64(int(exp)) {
				t.Errorf("expire_after %v, want the integer 38 (the poller's retries at a 2 s period, and one period)", c["expire_after"])
			}
			dev, ok := c["device"].(map[string]any)
			if !ok {
				t.Fatalf("device block missing: %v", c)
			}
			ids, _ := dev["identifiers"].([]any)
			if len(ids) != 1 || ids[0] != "sensord_0123456789abcdef" {
				t.Errorf("device identifiers %v", dev["identifiers"])
			}
			for k, want := range map[string]string{"name": "kitchen", "model": "DHT22", "sw_version": "v1.2.3", "configuration_url": "http://kitchen.local/"} {
				if dev[k] != want {
					t.Errorf("device %s %v, want %q", k, dev[k], want)
				}
			}
		})
	}
}

func TestARenameKeepsTheUniqueIDs(t *testing.T) {
	t.Parallel()
	dev := Device{ID: "feedc0de"}
	a := newBridge(t, Opts{URL: "mqtt://127.0.0.1", Name: "kitchen", Device: dev, Discovery: "homeassistant"})
	b := newBridge(t, Opts{URL: "mqtt://127.0.0.1", Name: "pantry", Device: dev, Discovery: "homeassistant"})
	for _, e := range DefaultEntities {
		if a.discoveryTopic(e) != b.discoveryTopic(e) {
			t.Errorf("%s: %s renamed to %s", e.Metric, a.discoveryTopic(e), b.discoveryTopic(e))
		}
	}
}

func TestHomeAssistantBirthGetsTheConfigsAndStateAgain(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), Discovery: "homeassistant", DiscoveryForm: EntityForm, BirthDelay: 200 * time.Millisecond})
	run(t, b)
	waitState(t, b, link.Connected)
	b.Publish(reading("19.5", "40", 1763856000000))
	waitStats(t, b, "reading published", func(s Stats) bool { return s.Queued == 0 && s.Published >= 6 })
	// Home Assistant lost its retained view (a broker without
	// persistence restarted, say): clear the config, then announce.
	cfg := "homeassistant/sensor/sensord_0123456789abcdef_temperature/config"
	publishRaw(t, broker, cfg, true, "")
	w := watch(t, broker, "#")
	publishRaw(t, broker, "homeassistant/status", false, "online")
	g, i := w.Next(t, 0, "config after the birth message", func(g got) bool { return g.Topic == cfg && g.Payload != "" })
	if !strings.Contains(g.Payload, `"unique_id":"sensord_0123456789abcdef_temperature"`) {
		t.Errorf("config resent as %s", g.Payload)
	}
	s, _ := w.Next(t, i, "temperature after the birth message", onTopic("sensors/kitchen/temperature"))
	if s.Payload != "19.5" {
		t.Errorf("state resent as %q, want 19.5", s.Payload)
	}
}

func TestSubscribedMessagesReachTheHubInTheFlowsShape(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	var mu sync.Mutex
	var hub []HubMessage
	b := newBridge(t, Opts{URL: broker.URL(), Subscribe: "sensors/#", Now: func() time.Time { return time.UnixMilli(1763856000999) },
		OnMessage: func(m HubMessage) { mu.Lock(); hub = append(hub, m); mu.Unlock() }})
	run(t, b)
	waitState(t, b, link.Connected)
	// The bridge is "kitchen": its own topics come back on sensors/# and
	// are left out; the others arrive in the flow's shape.
	publishRaw(t, broker, "sensors/kitchen/temperature", false, "99.9")
	publishRaw(t, broker, "sensors/attic/temperature", false, "21.4")
	publishRaw(t, broker, "sensors/garage", false, "up")
	want := []string{
		`{"type":"mqtt","source":"attic","metric":"temperature","value":"21.4","timestamp":1763856000999}`,
		`{"type":"mqtt","source":"garage","value":"up","timestamp":1763856000999}`,
	}
	deadline := time.Now().Add(waitLong)
	for {
		mu.Lock()
		var gotJSON []string
		for _, m := range hub {
			gotJSON = append(gotJSON, string(m.AppendJSON(nil)))
		}
		mu.Unlock()
		if slices.Equal(gotJSON, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub got %q, want %q", gotJSON, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := b.Stats(); s.Own == 0 {
		t.Errorf("stats %+v: the own message is not counted", s)
	}
}

func TestAFloodIsBoundedInRateAndSizeAndCounted(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	now := time.UnixMilli(1763856000000) // a frozen clock: no tokens refill
	b := newBridge(t, Opts{URL: broker.URL(), Subscribe: "flood/#", MaxRate: 10, MaxBurst: 20, MaxPayload: 8,
		Now: func() time.Time { return now }, OnMessage: func(HubMessage) {}})
	run(t, b)
	waitState(t, b, link.Connected)
	payloads := make([]string, 100)
	for i := range payloads {
		payloads[i] = "1"
	}
	publishRaw(t, broker, "flood/a/b", false, payloads...)
	publishRaw(t, broker, "flood/a/big", false, "123456789")
	s := waitStats(t, b, "all 101 received", func(s Stats) bool { return s.Received == 101 })
	if s.Passed != 20 || s.RateDropped != 80 || s.SizeDropped != 1 {
		t.Errorf("passed %d, rate-dropped %d, size-dropped %d; want 20, 80, 1", s.Passed, s.RateDropped, s.SizeDropped)
	}
}

// TestBrokerOutageQueuesBoundedAndPublishesTheNewestFirst stops the broker,
// publishes more readings than the queue holds, and starts it again.
func TestBrokerOutageQueuesBoundedAndPublishesTheNewestFirst(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), QueueLen: 5})
	run(t, b)
	waitState(t, b, link.Connected)
	broker.Stop()
	waitState(t, b, link.Disconnected)
	for i := range 20 {
		b.Publish(reading("20."+string(rune('0'+i%10)), "50", int64(1763856000000+i)))
	}
	if s := b.Stats(); s.Queued != 5 || s.QueueDropped != 15 {
		t.Fatalf("queued %d, dropped %d; want 5, 15", s.Queued, s.QueueDropped)
	}
	broker.Start()
	w := watch(t, broker, "sensors/#")
	waitStats(t, b, "queue drained", func(s Stats) bool { return s.Queued == 0 && s.Connected })
	// Live delivery: the newest first, then the four older survivors,
	// oldest first.
	var order []string
	for i := 0; len(order) < 5; {
		m, j := w.Next(t, i, "state", onTopic("sensors/kitchen/state"))
		order = append(order, m.Payload[len(m.Payload)-3:len(m.Payload)-1])
		i = j + 1
	}
	if want := []string{"19", "15", "16", "17", "18"}; !slices.Equal(order, want) {
		t.Errorf("states after the outage end in %v, want %v", order, want)
	}
	// Retained: only the newest (a subscriber arriving now sees it).
	late := watch(t, broker, "sensors/kitchen/state")
	g, _ := late.Next(t, 0, "retained state", onTopic("sensors/kitchen/state"))
	if !g.Retained || !strings.HasSuffix(g.Payload, `"timestamp":1763856000019}`) {
		t.Errorf("retained state %q (retained %v), want the newest", g.Payload, g.Retained)
	}
}

// TestAPausedBrokerNeverDelaysPublish freezes the broker with SIGSTOP: its
// socket stays open and takes bytes, it never answers. Publish must keep
// returning at once, the queue bound must hold, and after SIGCONT the link
// must recover.
func TestAPausedBrokerNeverDelaysPublish(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL(), QueueLen: 8})
	run(t, b)
	waitState(t, b, link.Connected)
	broker.Pause()
	done := make(chan struct{})
	go func() {
		for i := range 10000 {
			b.Publish(reading("20.0", "50", int64(i)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatal("Publish blocked behind a paused broker")
	}
	if s := b.Stats(); s.Queued > 8 || s.QueueDropped == 0 {
		t.Errorf("queued %d, dropped %d: the bound of 8 did not hold", s.Queued, s.QueueDropped)
	}
	broker.Resume()
	waitStats(t, b, "queue drained", func(s Stats) bool { return s.Queued == 0 && s.Connected })
	w := watch(t, broker, "sensors/kitchen/state")
	w.Next(t, 0, "the newest state, retained", func(g got) bool { return g.Retained && strings.HasSuffix(g.Payload, `"timestamp":9999}`) })
}

func TestTLSWithTheGivenCA(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{TLS: true})
	b := newBridge(t, Opts{URL: broker.URL(), RootCAs: broker.CAPool})
	run(t, b)
	waitState(t, b, link.Connected)

	// Without the CA the system roots do not trust the broker.
	untrusted := newBridge(t, Opts{URL: broker.URL(), Name: "untrusted"})
	run(t, untrusted)
	s := waitState(t, untrusted, link.Disconnected)
	if !errors.Is(untrusted.lastErr(), ErrConnect) || !strings.Contains(s.Reason, "certificate") {
		t.Errorf("untrusted broker: reason %q", s.Reason)
	}
}

func TestUserAndPasswordAndAClearRateLimitedErrorForAWrongOne(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{Users: map[string]string{"sensord": "s3cret-pw"}})
	good := newBridge(t, Opts{URL: broker.URL(), Username: "sensord", Password: "s3cret-pw"})
	run(t, good)
	waitState(t, good, link.Connected)

	var mu sync.Mutex
	var reports []LinkState
	bad := newBridge(t, Opts{URL: strings.Replace(broker.URL(), "mqtt://", "mqtt://sensord:wrong-pw@", 1), Name: "bad",
		OnState: func(s LinkState) { mu.Lock(); reports = append(reports, s); mu.Unlock() }})
	run(t, bad)
	waitStats(t, bad, "three refused attempts", func(s Stats) bool { return s.ConnectErrors >= 3 })
	s := bad.State()
	if !errors.Is(bad.lastErr(), ErrAuth) || !strings.Contains(s.Reason, "refused the login") || !strings.Contains(s.Reason, `"sensord"`) {
		t.Errorf("reason %q does not say the login was refused", s.Reason)
	}
	mu.Lock()
	defer mu.Unlock()
	refused := 0
	for _, r := range reports {
		if strings.Contains(r.Reason, "wrong-pw") || strings.Contains(r.Broker, "wrong-pw") {
			t.Errorf("password shown in %+v", r)
		}
		if r.State == link.Disconnected {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d disconnected reports for %d refusals; want 1 (rate-limited)", refused, bad.Stats().ConnectErrors)
	}
}

func TestBackoffDoublesWithJitterAndNeverUnderASecond(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		b := newBridge(t, Opts{URL: "mqtt://127.0.0.1", Rand: func() float64 { return r }})
		prev := time.Duration(0)
		for n := 1; n < 40; n++ {
			d := b.backoff(n)
			if d < MinBackoff || d > MaxBackoff {
				t.Fatalf("rand %v, failure %d: %s outside %s..%s", r, n, d, MinBackoff, MaxBackoff)
			}
			if d < prev {
				t.Fatalf("rand %v: back-off fell from %s to %s", r, prev, d)
			}
			prev = d
		}
		if prev < MaxBackoff/2 {
			t.Errorf("rand %v: back-off tops out at %s", r, prev)
		}
	}
}

// TestRunStopsWithinTheDaemonsStopTimeoutBehindAPausedBroker: a clean stop
// must not wait out publishTimeout for acknowledgements that never come.
func TestRunStopsWithinTheDaemonsStopTimeoutBehindAPausedBroker(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	b := newBridge(t, Opts{URL: broker.URL()})
	stop := run(t, b)
	waitState(t, b, link.Connected)
	broker.Pause()
	b.Publish(reading("20.0", "50", 1))
	waitStats(t, b, "the reading taken from the queue", func(s Stats) bool { return s.Queued == 0 })
	begin := time.Now()
	stop()
	// shutdownPublish (2 s) for offline, plus Paho's disconnect; the daemon
	// allows 5 s for its whole stop.
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Run took %s to stop behind a paused broker", d)
	}
	broker.Resume()
}
