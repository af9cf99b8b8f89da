package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/testutil"
)

type alertMsg struct {
	Type      string  `json:"type"`
	Name      string  `json:"name"`
	State     string  `json:"state"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Timestamp int64   `json:"timestamp"`
}

// alertShape is the alert message's exact shape, key order included.
const alertShape = `{"type":"alert","name":"%s","state":"%s","metric":"%s","value":%s,"threshold":%s,"timestamp":`

// A rule that fires is raised on both paths, logged and counted; a late
// joiner gets it first; ?topic= picks or skips it; across a restart it
// stays raised (no second raise) and clears on the first reading back
// below its clear value.
func TestAlertRaisedRetainedKeptAcrossARestartAndCleared(t *testing.T) {
	dir := t.TempDir()
	p := start(t, nil, "-sim-temp", "25", "-history-dir", dir, "-alert", "warm: temperature > 20 clear 19", "-alert", "damp: humidity > 99")
	testutil.Until(t, 30*time.Second, func() bool { return strings.Contains(p.logs(), "alert raised") },
		func() string { return "no alert raised:\n" + p.logs() })
	if !strings.Contains(p.logs(), `level=WARN msg="alert raised" alert=warm metric=temperature value=25.0 threshold=20.0`) {
		t.Fatalf("the raise is not a WARN line naming the rule:\n%s", p.logs())
	}
	p.waitReadings(t, 3)

	var firstAlert string
	t.Run("a late joiner on /ws/sensors and /ws/dashboard gets the alert first", func(t *testing.T) {
		for _, path := range []string{"/ws/sensors", "/ws/dashboard"} {
			c := dial(t, "ws://"+p.addr+path)
			first := readText(t, c, 10*time.Second)
			firstAlert = first
			if !strings.HasPrefix(first, fmt.Sprintf(alertShape, "warm", "raised", "temperature", "25", "20")) {
				t.Fatalf("%s: first frame %s, want the alert", path, first)
			}
			if second := readText(t, c, 10*time.Second); strings.Contains(second, `"type":"alert"`) {
				t.Fatalf("%s: a second alert frame %s", path, second)
			}
		}
	})
	t.Run("?topic= picks the alerts or skips them", func(t *testing.T) {
		c := dial(t, "ws://"+p.addr+"/ws/sensors?topic=sensors/dht22/alert/%2B")
		if got := readText(t, c, 10*time.Second); !strings.Contains(got, `"name":"warm"`) {
			t.Fatalf("alerts only: got %s", got)
		}
		c = dial(t, "ws://"+p.addr+"/ws/sensors?topic=sensors/dht22")
		for range 3 {
			if got := readText(t, c, 10*time.Second); !readingRE.MatchString(got) {
				t.Fatalf("readings only: got %s", got)
			}
		}
	})
	t.Run("/metrics counts it and shows it active", func(t *testing.T) {
		_, body := get(t, http.DefaultClient, "http://"+p.addr+"/metrics")
		for _, want := range []string{`sensord_alerts_total{state="raised"} 1`, `sensord_alert_active{name="warm"} 1`,
			`sensord_alert_active{name="damp"} 0`, `sensord_alert_active{name="sensor_failing"} 0`} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	var kept struct {
		Active []struct{ Name string } `json:"active"`
	}
	b, err := os.ReadFile(filepath.Join(dir, alertStateFile))
	if err != nil || json.Unmarshal(b, &kept) != nil || len(kept.Active) != 1 || kept.Active[0].Name != "warm" {
		t.Fatalf("state file: %s %v", b, err)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}

	var raised alertMsg
	json.Unmarshal([]byte(firstAlert), &raised)

	// Restarted still warm: the alert is still raised, with the time it
	// was raised, and not raised a second time.
	p = start(t, nil, "-sim-temp", "25", "-history-dir", dir, "-alert", "warm: temperature > 20 clear 19")
	p.waitReadings(t, 3)
	c := dial(t, "ws://"+p.addr+"/ws/dashboard?topic=sensors/dht22/alert/%2B")
	var again alertMsg
	json.Unmarshal([]byte(readText(t, c, 10*time.Second)), &again)
	if again.State != "raised" || again.Timestamp != raised.Timestamp || raised.Timestamp == 0 {
		t.Fatalf("after a restart got %+v, want %+v", again, raised)
	}
	if strings.Contains(p.logs(), "alert raised") || !strings.Contains(p.logs(), `level=WARN msg="alert active" alert=warm`) {
		t.Fatalf("after a restart, want no new raise and the active alert logged:\n%s", p.logs())
	}
	p.stop(t, syscall.SIGTERM)

	// Restarted cold: the first reading clears it, once, logged as INFO.
	p = start(t, nil, "-sim-temp", "15", "-history-dir", dir, "-alert", "warm: temperature > 20 clear 19")
	c = dial(t, "ws://"+p.addr+"/ws/sensors?topic=sensors/dht22/alert/%2B")
	// The kept raise if the client came before the first reading, then
	// the clear.
	got := readText(t, c, 10*time.Second)
	if got == firstAlert {
		got = readText(t, c, 10*time.Second)
	}
	if !strings.HasPrefix(got, fmt.Sprintf(alertShape, "warm", "cleared", "temperature", "15", "19")) {
		t.Fatalf("after a cold restart got %s, want the clear", got)
	}
	// The log line and the state file follow the frame: wait for them.
	testutil.Until(t, 10*time.Second, func() bool {
		return strings.Contains(p.logs(), `level=INFO msg="alert cleared" alert=warm metric=temperature value=15.0 threshold=19.0`)
	}, func() string { return "want an INFO clear:\n" + p.logs() })
	testutil.Until(t, 10*time.Second, func() bool {
		b, _ = os.ReadFile(filepath.Join(dir, alertStateFile))
		return strings.Contains(string(b), `"active":[]`)
	}, func() string { return fmt.Sprintf("state file after the clear: %s", b) })
	if n := strings.Count(p.logs(), "alert cleared"); n != 1 {
		t.Fatalf("want one INFO clear, got %d:\n%s", n, p.logs())
	}
}

// A sensor that never answers raises the built-in alerts by itself.
func TestDeadSensorRaisesTheBuiltinAlerts(t *testing.T) {
	p := start(t, nil, "-sim-no-response", "-alert", "warm: temperature > 20")
	c := dial(t, "ws://"+p.addr+"/ws/sensors?topic=sensors/dht22/alert/%2B")
	names := map[string]bool{}
	for len(names) < 2 {
		var m alertMsg
		if err := json.Unmarshal([]byte(readText(t, c, 30*time.Second)), &m); err != nil || m.State != "raised" || m.Metric != "reading_age" {
			t.Fatalf("got %+v, %v", m, err)
		}
		names[m.Name] = true
	}
	if !names["sensor_failing"] || !names["no_reading"] {
		t.Fatalf("raised %v", names)
	}
}

// With MQTT on, the alert is retained on the broker and each rule is a
// Home Assistant binary sensor of class problem.
func TestAlertRetainedOnTheBrokerWithABinarySensor(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	start(t, nil, "-name", "kitchen", "-mqtt-url", broker.URL(), "-sim-temp", "25", "-alert", "warm: temperature > 20")
	w := broker.Watch(t, "#")
	m, _ := w.Next(t, 0, "the alert", mosquittotest.OnTopic("sensors/kitchen/alert/warm"))
	if !strings.HasPrefix(m.Payload, fmt.Sprintf(alertShape, "warm", "raised", "temperature", "25", "20")) {
		t.Fatalf("alert on the broker: %q", m.Payload)
	}
	late := broker.Watch(t, "#")
	m, _ = late.Next(t, 0, "the retained alert", mosquittotest.OnTopic("sensors/kitchen/alert/warm"))
	if !m.Retained {
		t.Fatal("the alert is not retained")
	}
	dm, _ := late.Next(t, 0, "the device's discovery config", func(m mosquittotest.Msg) bool {
		return strings.HasPrefix(m.Topic, "homeassistant/device/sensord_") && strings.HasSuffix(m.Topic, "/config")
	})
	var dev struct {
		Components map[string]struct {
			Platform    string `json:"p"`
			UniqueID    string `json:"unique_id"`
			DeviceClass string `json:"device_class"`
			Unit        string `json:"unit_of_measurement"`
			StateTopic  string `json:"state_topic"`
		} `json:"cmps"`
	}
	if err := json.Unmarshal([]byte(dm.Payload), &dev); err != nil {
		t.Fatalf("%s: %v", dm.Topic, err)
	}
	byState := map[string]string{}
	for id, c := range dev.Components {
		if id != c.UniqueID {
			t.Errorf("component %s has unique_id %s", id, c.UniqueID)
		}
		byState[c.StateTopic] = c.Platform + " " + c.DeviceClass + " " + c.Unit
	}
	if got := byState["sensors/kitchen/absolute_humidity"]; got != "sensor absolute_humidity g/m³" {
		t.Errorf("absolute humidity announced as %q, want sensor absolute_humidity g/m³", got)
	}
	for _, rule := range []string{"warm", "sensor_failing", "no_reading"} {
		if got := byState["sensors/kitchen/alert/"+rule+"/state"]; got != "binary_sensor problem " {
			t.Errorf("%s announced as %q, want a binary_sensor of class problem", rule, got)
		}
		want := map[string]string{"warm": "ON", "sensor_failing": "OFF", "no_reading": "OFF"}[rule]
		m, _ = late.Next(t, 0, rule+"'s state", mosquittotest.OnTopic("sensors/kitchen/alert/"+rule+"/state"))
		if m.Payload != want || !m.Retained {
			t.Errorf("%s: %q retained=%v, want %s", m.Topic, m.Payload, m.Retained, want)
		}
	}
}

// -alert-webhook gets the alert as the same JSON, with ntfy's headers.
func TestAlertPostedToTheWebhook(t *testing.T) {
	t.Parallel()
	got := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Method + " " + r.Header.Get("Content-Type") + " " + r.Header.Get("Title") + " " + string(b)
	}))
	t.Cleanup(hook.Close)
	p := start(t, nil, "-sim-temp", "25", "-alert", "warm: temperature > 20", "-alert-webhook", hook.URL+"/fish-tank")
	select {
	case g := <-got:
		want := "POST application/json sensord alert warm raised " + fmt.Sprintf(alertShape, "warm", "raised", "temperature", "25", "20")
		if !strings.HasPrefix(g, want) {
			t.Fatalf("webhook got %q, want %q...", g, want)
		}
	case <-time.After(testutil.Scale(30 * time.Second)):
		t.Fatalf("no POST\n%s", p.logs())
	}
	testutil.Until(t, 10*time.Second, func() bool {
		return strings.Contains(getText(t, "http://"+p.addr+"/metrics"), "sensord_alert_webhook_sent_total 1\n")
	}, func() string { return grepLines(getText(t, "http://"+p.addr+"/metrics"), "webhook") })
}
