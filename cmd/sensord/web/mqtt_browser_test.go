package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/internal/testutil"
)

// mqttView is what the MQTT panel shows.
type mqttView struct {
	H1     string
	Hidden bool
	Link   string
	State  string
	Rows   [][]string // source, metric, value, age
}

const mqttViewJS = `(() => {
  const p = document.getElementById('mqtt');
  const link = document.getElementById('mqtt-link');
  return {
    H1: document.querySelector('.brand h1').textContent,
    Hidden: !p || p.hidden,
    Link: link ? link.textContent : '',
    State: link ? (link.dataset.state || '') : '',
    Rows: p ? [...p.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(c => c.textContent)) : [],
  };
})()`

func waitMQTTView(t *testing.T, ctx context.Context, what string, cond func(mqttView) bool) mqttView {
	t.Helper()
	var v mqttView
	testutil.Until(t, mosquittotest.Wait, func() bool {
		v = mqttView{}
		if err := chromedp.Run(ctx, chromedp.Evaluate(mqttViewJS, &v)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return cond(v)
	}, func() string { return fmt.Sprintf("%s: the panel shows %+v", what, v) })
	return v
}

func row(v mqttView, source, metric string) []string {
	for _, r := range v.Rows {
		if len(r) == 4 && r[0] == source && r[1] == metric {
			return r
		}
	}
	return nil
}

func TestMQTTPanelShowsEverySourceAndTheLinkState(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-name", "kitchen", "-mqtt-url", broker.URL(), "-mqtt-discovery", ""}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	v := waitMQTTView(t, ctx, "the link connected", func(v mqttView) bool { return v.State == "connected" })
	if v.Hidden || v.H1 != "kitchen" || !strings.Contains(v.Link, broker.Addr()) {
		t.Errorf("panel %+v", v)
	}
	// The device's own readings come back on sensors/# but are not listed
	// as another source; other devices' are, sorted by source.
	own := broker.Watch(t, "sensors/kitchen/temperature")
	broker.Publish(t, "sensors/garage/door", false, "open")
	broker.Publish(t, "sensors/attic/temperature", false, "12.5")
	v = waitMQTTView(t, ctx, "two other sources", func(v mqttView) bool {
		return row(v, "garage", "door") != nil && row(v, "attic", "temperature") != nil
	})
	if r := row(v, "garage", "door"); r[2] != "open" || !strings.HasSuffix(r[3], " s") {
		t.Errorf("garage row %q", r)
	}
	if r := row(v, "attic", "temperature"); r[2] != "12.5 °C" {
		t.Errorf("attic row %q: want the value with its unit", r)
	}
	if v.Rows[0][0] != "attic" || v.Rows[1][0] != "garage" {
		t.Errorf("rows %q not sorted by source", v.Rows)
	}
	// Messages reach the panel in the order the broker sent them: once a
	// later marker shows, an own reading before it would have shown too.
	own.Next(t, 0, "an own reading on the broker", func(mosquittotest.Msg) bool { return true })
	broker.Publish(t, "sensors/garage/door", false, "closed")
	v = waitMQTTView(t, ctx, "the marker after an own reading", func(v mqttView) bool {
		r := row(v, "garage", "door")
		return r != nil && r[2] == "closed"
	})
	if row(v, "kitchen", "temperature") != nil || len(v.Rows) != 2 {
		t.Errorf("the device lists itself as another source: rows %q", v.Rows)
	}
	// Both panels live on the page's one socket (hub.js): the daemon
	// counts one dashboard client, not one per panel.
	if got := dashboardClients(t, d); got != 1 {
		t.Errorf("the page holds %d /ws/dashboard sockets, want 1", got)
	}
	broker.Stop()
	waitMQTTView(t, ctx, "the link down", func(v mqttView) bool { return v.State == "disconnected" && strings.Contains(v.Link, "disconnected") })
	waitFor(t, ctx, "health degraded, with the reason", mosquittotest.Wait, func(v view) bool {
		return strings.HasPrefix(v.Status, "Degraded") && strings.Contains(v.Status, "mqtt")
	})
}

// dashboardClients is /healthz's count of /ws/dashboard clients.
func dashboardClients(t *testing.T, d *daemon) int {
	t.Helper()
	res, err := insecure.Get(d.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h struct{ Clients map[string]int }
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Clients["dashboard"]
}

// TestMQTTPanelGivesADeeperTopicItsOwnRow: a topic deeper than
// sensors/<source>/<metric> is listed under its source with every level
// after it as its metric, without a unit, and never replaces the
// metric's own row.
func TestMQTTPanelGivesADeeperTopicItsOwnRow(t *testing.T) {
	t.Parallel()
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-name", "kitchen", "-mqtt-url", broker.URL(), "-mqtt-discovery", ""}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	waitMQTTView(t, ctx, "the link connected", func(v mqttView) bool { return v.State == "connected" })
	broker.Publish(t, "sensors/attic/temperature", false, "12.5")
	waitMQTTView(t, ctx, "attic's temperature", func(v mqttView) bool { return row(v, "attic", "temperature") != nil })
	// The broker keeps the order: once the deeper rows show, the plain
	// temperature has had every chance to be overwritten.
	broker.Publish(t, "sensors/attic/temperature/raw", false, "1250")
	broker.Publish(t, "sensors/attic/temperature/raw/adc", false, "3071")
	v := waitMQTTView(t, ctx, "the deeper topics' rows", func(v mqttView) bool {
		return row(v, "attic", "temperature/raw") != nil && row(v, "attic", "temperature/raw/adc") != nil
	})
	if r := row(v, "attic", "temperature"); r[2] != "12.5 °C" {
		t.Errorf("attic's temperature row %q: a deeper topic replaced it", r)
	}
	if r := row(v, "attic", "temperature/raw"); r[2] != "1250" {
		t.Errorf("the deeper row %q: want the value as sent, without a unit", r)
	}
	if len(v.Rows) != 3 || v.Rows[0][1] != "temperature" || v.Rows[1][1] != "temperature/raw" || v.Rows[2][1] != "temperature/raw/adc" {
		t.Errorf("rows %q: want attic's three, sorted by metric", v.Rows)
	}
}
