package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sensord/internal/testutil"
)

// derivedView is the line under the readings: dew point and absolute
// humidity, with the reading's timestamp they belong to.
type derivedView struct {
	TS   int64  `json:"ts"`
	Temp string `json:"temp"`
	Dew  string `json:"dew"`
	Abs  string `json:"abs"`
}

const derivedViewJS = `(() => ({
  ts: Number(document.getElementById('temp').dataset.ts || 0),
  temp: document.getElementById('temp').textContent,
  dew: document.getElementById('dew').textContent,
  abs: document.getElementById('abs').textContent,
}))()`

// TestDashboardShowsTheDaemonsDerivedValues: the page shows the dew point
// and absolute humidity the daemon sends with each reading on the hub
// stream and computes none itself. A reading pushed to the hub with values
// no formula gives shows them as they are.
func TestDashboardShowsTheDaemonsDerivedValues(t *testing.T) {
	t.Parallel()
	const owner = "derived-owner-token"
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-owner-token", owner}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	var v derivedView
	wait := func(what string, cond func() bool) {
		t.Helper()
		testutil.Until(t, 10*time.Second, func() bool {
			v = derivedView{}
			run(t, ctx, chromedp.Evaluate(derivedViewJS, &v))
			return cond()
		}, func() string { return fmt.Sprintf("%s: the page shows %+v", what, v) })
	}
	wait("a dew point", func() bool { return v.TS > 0 && strings.HasSuffix(v.Dew, " °C") })

	// The simulated sensor's readings: what the daemon derived, to the tenth.
	hist := history(t, d)
	wait("the daemon's dew point and absolute humidity", func() bool {
		r, ok := hist[v.TS]
		if !ok {
			hist = history(t, d)
			return false
		}
		return r.DewPoint != nil && v.Dew == tenth(*r.DewPoint)+" °C" && v.Abs == tenth(r.AbsoluteHumidity)+" g/m³"
	})

	// A reading from the future, so no simulated one replaces it, with
	// derived values far from what 20 °C and 50 % give (9.3 °C, 8.6 g/m³).
	at := time.Now().Add(time.Hour).UnixMilli()
	body := fmt.Sprintf(`{"payload":{"type":"sensor_update","temperature":20,"humidity":50,"timestamp":%d,"dew_point":-3.3,"absolute_humidity":1.2}}`, at)
	d.postAsOwner(t, "/api/send?path=/ws/dashboard", owner, body, http.StatusOK)
	wait("the pushed reading", func() bool { return v.TS == at })
	if v.Temp != "20.0" || v.Dew != "-3.3 °C" || v.Abs != "1.2 g/m³" {
		t.Errorf("the page shows %+v, want 20.0, -3.3 °C and 1.2 g/m³ as the daemon sent them", v)
	}
	run(t, ctx, chromedp.Click("#unit-f", chromedp.ByID))
	wait("the dew point in °F", func() bool { return v.Dew == "26.1 °F" })
}
