package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestClockBannerSaysReadingsWaitAndTheOwnerConfirmsTheClock runs the real
// daemon with -clock-hold on this machine, whose kernel says its clock is
// not synchronised: the page shows the clock banner with the readings
// held and what to do; the owner confirms the clock with this browser's
// (which agrees) and the banner goes.
func TestClockBannerSaysReadingsWaitAndTheOwnerConfirmsTheClock(t *testing.T) {
	const owner = "clock-owner-token"
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-clock-hold", "-owner-token", owner}})
	var h struct {
		Clock struct {
			Trusted bool `json:"trusted"`
			Held    int  `json:"held"`
		} `json:"clock"`
	}
	res, err := http.Get(d.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if h.Clock.Trusted {
		t.Skip("this machine's clock is synchronised (NTP): there is nothing to hold")
	}
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	text := func(sel string) string {
		var s string
		run(t, ctx, chromedp.Text(sel, &s, chromedp.ByQuery))
		return s
	}
	visible := func(sel string) bool {
		var v bool
		run(t, ctx, chromedp.Evaluate(`!document.querySelector('`+sel+`').hidden`, &v))
		return v
	}
	until(t, func() bool { return visible("#clock-banner") && text("#cb-held") != "0" }, "clock banner with held readings")
	if s := text("#clock-banner"); !strings.Contains(s, "The clock is not set") || !strings.Contains(s, "NTP_SERVER") {
		t.Errorf("the banner says %q", s)
	}
	// The first press asks for the owner token and sends nothing.
	run(t, ctx, chromedp.Click("#cb-set", chromedp.ByID))
	until(t, func() bool { return visible("#cb-owner-label") }, "the owner token field")
	run(t, ctx, chromedp.SendKeys("#cb-owner", owner, chromedp.ByID), chromedp.Click("#cb-set", chromedp.ByID))
	// The banner goes at the next health poll, which the answer asks for
	// at once; the status line said why (its text, the banner hidden).
	until(t, func() bool { return !visible("#clock-banner") }, "the banner gone")
	var status string
	run(t, ctx, chromedp.Evaluate(`document.getElementById('cb-status').textContent`, &status))
	if !strings.Contains(status, "agrees") {
		t.Errorf("the status line says %q, want that the clock agrees with the browser's", status)
	}
	var after struct {
		Clock struct {
			Trusted bool   `json:"trusted"`
			By      string `json:"by"`
		} `json:"clock"`
	}
	if res, err := http.Get(d.url("/healthz")); err == nil {
		json.NewDecoder(res.Body).Decode(&after)
		res.Body.Close()
	}
	if !after.Clock.Trusted || after.Clock.By != "owner" {
		t.Errorf("/healthz clock %+v, want trusted by the owner", after.Clock)
	}
	// The chart starts again from history, which now holds the readings.
	until(t, func() bool {
		var n int
		run(t, ctx, chromedp.Evaluate(`Number(document.getElementById('chart-svg').dataset.points)`, &n))
		return n >= 3
	}, "the chart refilled from history")
}
