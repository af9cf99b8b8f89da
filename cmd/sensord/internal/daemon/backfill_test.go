package daemon

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sensord/broadcast/mqtt"
	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/testutil"
)

// linkDies is how long after the broker's exit the bridge may still take
// publishes for acknowledged: under load, paho has completed QoS 1
// tokens without error for readings stamped up to ~0.1 s after the
// broker process had exited.
const linkDies = time.Second

// TestMQTTBackFillsEveryReadingTheQueueDroppedFromHistory stops a real
// Mosquitto for longer than the bridge's queue (256 readings) lasts at
// -period 20ms; once it is back, every reading of the outage reaches a
// subscriber on the state topic, once.
func TestMQTTBackFillsEveryReadingTheQueueDroppedFromHistory(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	w := broker.Watch(t, "sensors/cellar/state")
	p := start(t, nil, "-name", "cellar", "-mqtt-url", broker.URL(), "-mqtt-subscribe", "", "-period", "20ms",
		"-history-dir", t.TempDir(), "-history-commit-interval", "1s")
	waitMQTT(t, p, "connected")
	testutil.Until(t, mosquittotest.Wait, func() bool { return len(w.All()) >= 10 }, func() string { return "no 10 states before the outage" })

	broker.Stop()
	// Readings published as the broker went (acknowledged and never
	// forwarded, or taken for acknowledged by the client library as the
	// link died) are lost at the link, not by the queue: they are
	// counted and reported, and from linkDies on every one must arrive.
	stopped := time.Now().Add(linkDies).UnixMilli()
	before := w.All()
	dropped := regexp.MustCompile(`(?m)^sensord_mqtt_queue_dropped_total (\d+)$`)
	testutil.Until(t, mosquittotest.Wait, func() bool {
		m := dropped.FindStringSubmatch(getText(t, "http://"+p.addr+"/metrics"))
		n, _ := strconv.Atoi(m[1])
		return n >= 100 // 356 readings and more: the queue's 256 and 100 it dropped
	}, func() string { return "the queue dropped no 100 readings" })
	broker.Start()
	// The bridge may be waiting out its longest back-off as the broker
	// comes back.
	testutil.Until(t, mosquittotest.Wait+mqtt.MaxBackoff, func() bool { return strings.Contains(p.logs(), "mqtt back-filled readings from history") },
		func() string { return "no back-fill line:\n" + p.logs() })
	restarted := time.Now().UnixMilli()
	// Live readings again, after the back-fill and the queue's backlog.
	var all []mosquittotest.Msg
	testutil.Until(t, mosquittotest.Wait, func() bool {
		all = w.All()
		return len(all) > 0 && timestampOf(t, all[len(all)-1].Payload) > restarted+1000
	}, func() string { return "no live state after the back-fill" })

	last := int64(0)
	for _, m := range before {
		last = max(last, timestampOf(t, m.Payload))
	}
	end := timestampOf(t, all[len(all)-1].Payload)
	// A cycle sends the newest reading first and the older ones it holds
	// after it: wait for ten more messages, so that those older than end
	// have arrived too.
	n := len(all)
	testutil.Until(t, mosquittotest.Wait, func() bool { all = w.All(); return len(all) >= n+10 }, func() string { return "no ten more states" })
	seen := map[int64]int{}
	for _, m := range all {
		if ts := timestampOf(t, m.Payload); ts > last && ts <= end {
			seen[ts]++
		}
	}
	var stored []struct{ Timestamp int64 }
	u := fmt.Sprintf("http://%s/api/history?from=%d&to=%d", p.addr, last+1, end+1)
	if code := getJSON(t, u, &stored); code != http.StatusOK {
		t.Fatalf("%s: %d", u, code)
	}
	missing, doubled, atStop := 0, 0, 0
	for _, r := range stored {
		switch seen[r.Timestamp] {
		case 0:
			if r.Timestamp <= stopped { // the link's loss as it died, not the queue's
				atStop++
				continue
			}
			missing++
			t.Logf("missing %d (stopped at %d, last before %d)", r.Timestamp, stopped-linkDies.Milliseconds(), last)
		case 1:
		default:
			doubled++
		}
	}
	if m := regexp.MustCompile(`(?m)^sensord_mqtt_backfilled_total (\d+)$`).FindStringSubmatch(getText(t, "http://"+p.addr+"/metrics")); m == nil || m[1] == "0" {
		t.Errorf("sensord_mqtt_backfilled_total: %v, want the readings sent from history", m)
	}
	t.Logf("outage and after: %d readings stored, %d received; %d missing, %d doubled, %d lost by the broker as it stopped; %s",
		len(stored), len(seen), missing, doubled, atStop, grepLines(p.logs(), "back-filled"))
	if len(stored) < 300 || missing > 0 || doubled > 0 || len(seen)+atStop != len(stored) {
		t.Fatalf("want every one of the %d stored readings (at least 300) once: %d missing, %d doubled, %d received", len(stored), missing, doubled, len(seen))
	}
}
