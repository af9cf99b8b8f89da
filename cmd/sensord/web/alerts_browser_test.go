package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"sensord/internal/testutil"
)

// alertView is what the page shows of the alerts.
type alertView struct {
	Shown     bool   `json:"shown"`
	Text      string `json:"text"`
	Count     int    `json:"count"`
	AboveCard bool   `json:"aboveCard"` // above the readings
	Apart     bool   `json:"apart"`     // not inside the sensor banner or the connection badge
	State     string `json:"state"`
}

const alertViewJS = `(() => {
  const box = document.getElementById('alerts');
  if (!box) return {shown: false, text: '', count: 0, aboveCard: false, apart: false, state: ''};
  return {
    shown: !box.hidden, text: box.textContent, count: box.querySelectorAll('li.alert').length,
    aboveCard: box.getBoundingClientRect().bottom <= document.getElementById('temp-card').getBoundingClientRect().top,
    apart: !document.getElementById('sensor-banner').contains(box) && !document.getElementById('conn').contains(box),
    state: document.getElementById('conn').dataset.state,
  };
})()`

func lookAlerts(t *testing.T, ctx context.Context) alertView {
	t.Helper()
	var v alertView
	if err := chromedp.Run(ctx, chromedp.Evaluate(alertViewJS, &v)); err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	return v
}

func waitAlerts(t *testing.T, ctx context.Context, what string, cond func(alertView) bool) alertView {
	t.Helper()
	var v alertView
	testutil.Until(t, 20*time.Second, func() bool { v = lookAlerts(t, ctx); return cond(v) },
		func() string { return fmt.Sprintf("%s: the page shows %+v", what, v) })
	return v
}

// A rule that fires shows at the top of the page in words with when it
// started; when it clears (here: the daemon restarted with the room
// cooled, keeping the alert's state in -history-dir) it goes.
func TestDashboardShowsAnAlertWhenARuleFiresAndDropsItWhenItClears(t *testing.T) {
	dir := t.TempDir()
	rule := "warm: temperature > 20 clear 19"
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-sim-temp", "25", "-history-dir", dir, "-alert", rule}})
	ctx := tab(t)
	// The person allowed notifications: a stand-in records them (headless
	// Chromium shows none).
	run(t, ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(notificationStub).Do(ctx)
		return err
	}))
	open(t, ctx, d.url("/"))
	v := waitAlerts(t, ctx, "the alert", func(v alertView) bool { return v.Shown && v.Count == 1 })
	if !strings.Contains(v.Text, "warm: Temperature 25 °C, past the threshold of 20 °C since ") {
		t.Errorf("the alert reads %q", v.Text)
	}
	if !v.AboveCard || !v.Apart {
		t.Errorf("the alert is not at the top apart from the banner and badge: %+v", v)
	}

	notes := func() []string {
		var n []string
		run(t, ctx, chromedp.Evaluate(`window.testNotes`, &n))
		return n
	}
	if n := notes(); len(n) != 1 || !strings.HasPrefix(n[0], "warm: Temperature 25 °C") {
		t.Errorf("notifications %q, want the one alert", n)
	}

	d.stop()
	waitAlerts(t, ctx, "reconnecting", func(v alertView) bool { return v.State == "reconnecting" })
	d2 := startDaemonWith(t, d.addr, daemonOpts{args: []string{"-sim-temp", "15", "-history-dir", dir, "-alert", rule}})
	testutil.Until(t, 20*time.Second, func() bool { return strings.Contains(d2.log.String(), `msg="alert cleared" alert=warm`) },
		func() string { return "the daemon did not clear the alert:\n" + d2.log.String() })
	waitAlerts(t, ctx, "the alert gone once it cleared", func(v alertView) bool { return v.State == "live" && !v.Shown && v.Count == 0 })
	if n := notes(); len(n) != 1 {
		t.Errorf("notifications %q: the kept alert was notified again", n)
	}
}

const notificationStub = `window.testNotes = [];
window.Notification = class {
  constructor(title, o) { window.testNotes.push(o.body); }
  static get permission() { return 'granted'; }
  static requestPermission() { return Promise.resolve('granted'); }
};`
