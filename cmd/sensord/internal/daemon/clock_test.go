package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/cmd/sensord/internal/health"
	"sensord/cmd/sensord/internal/timesync"
	"sensord/internal/testutil"
	"sensord/sensor/history"
)

// liveFrame is a /ws/sensors frame: Node-RED's four keys.
type liveFrame struct {
	Type        string   `json:"type"`
	Temperature *float64 `json:"temperature"`
	Humidity    *float64 `json:"humidity"`
	Timestamp   int64    `json:"timestamp"`
}

// TestHeldReadingsAreStoredAndPublishedWithTheClocksTimeOnceItIsSet runs
// the daemon with -clock-hold on a clock that is not set: readings go
// live, but neither to history nor to a real Mosquitto; then the clock
// is set, 2 years and 17 minutes ahead of the one the readings were
// taken on, and every held reading is stored and published once, in
// order, at its live timestamp plus that step.
func TestHeldReadingsAreStoredAndPublishedWithTheClocksTimeOnceItIsSet(t *testing.T) {
	t.Parallel()
	const step = 2*365*24*time.Hour + 17*time.Minute
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	w := broker.Watch(t, "sensors/attic/state")
	p := newInproc(t, "-clock-hold", "-name", "attic", "-history-dir", t.TempDir(), "-history-commit-interval", "1s",
		"-mqtt-url", broker.URL(), "-mqtt-subscribe", "")
	var synced atomic.Bool
	c := p.d.clk.clock
	c.Source = func() timesync.Verdict {
		if synced.Load() {
			return timesync.Verdict{Trusted: true, By: timesync.ByTimesyncd}
		}
		return timesync.Verdict{Why: "no time server has answered"}
	}
	c.Every = 10 * time.Millisecond
	c.Now = func() time.Time { return time.Now().Add(step) } // the clock NTP sets
	p.wg.Go(func() { p.d.runHistory(p.ctx) })
	p.wg.Go(func() { p.d.runClock(p.ctx) })
	p.wg.Go(func() { p.d.runBridge(p.ctx) })
	testutil.Until(t, mosquittotest.Wait, func() bool { return p.d.mqttDown() == "" }, func() string { return "mqtt: " + p.d.mqttDown() })

	conn := dial(t, p.ws("/ws/sensors"))
	p.runPoller()
	var live []liveFrame
	for len(live) < 10 {
		var f liveFrame
		if err := json.Unmarshal([]byte(readText(t, conn, testutil.Scale(10*time.Second))), &f); err != nil {
			t.Fatal(err)
		}
		if f.Type != "sensor_update" || f.Temperature == nil || f.Humidity == nil || f.Timestamp == 0 {
			t.Fatalf("live frame %+v lacks Node-RED's keys", f)
		}
		live = append(live, f)
	}

	p.judge(t)
	code, h := p.healthz(t)
	if code != http.StatusOK || h.Status != health.StatusDegraded || !strings.HasPrefix(h.Reason, "clock not set: ") ||
		h.Clock.Trusted || !h.Clock.Hold || h.Clock.Held < 10 || h.Clock.Problem == "" || h.Clock.Fix == "" {
		t.Fatalf("/healthz while held: %d %q %q %+v", code, h.Status, h.Reason, h.Clock)
	}
	if m := getText(t, p.url("/metrics")); !strings.Contains(m, "\nsensord_clock_trusted 0\n") {
		t.Errorf("/metrics while held:\n%s", grepLines(m, "sensord_clock"))
	}
	// A commit has passed (1 s), yet nothing is stored; nothing reached MQTT.
	testutil.Until(t, 10*time.Second, func() bool { return p.d.store.Stats().Commits >= 2 }, func() string { return "no commits" })
	if st := p.d.store.Stats(); st.Written != 0 {
		t.Fatalf("%d readings written while the clock was not set", st.Written)
	}
	if n := len(w.All()); n != 0 {
		t.Fatalf("%d states reached MQTT while the clock was not set", n)
	}
	if n := strings.Count(p.log.String(), "clock not set: readings are held"); n != 1 {
		t.Errorf("the journal says the clock is not set %d times, want once:\n%s", n, p.log.String())
	}

	synced.Store(true)
	testutil.Until(t, 10*time.Second, func() bool { return strings.Contains(p.log.String(), "clock set: held readings stored") },
		func() string { return "no line saying the clock is set" })
	_, h = p.healthz(t)
	if !h.Clock.Trusted || h.Clock.By != timesync.ByTimesyncd || h.Clock.Held != 0 || strings.HasPrefix(h.Reason, "clock") {
		t.Errorf("/healthz once set: %q %+v", h.Reason, h.Clock)
	}

	// Every live frame seen while held is in history at its timestamp
	// plus the step (to within the few ms between a read and its
	// publish), once, in order.
	stored := func() []history.Point {
		var ps []history.Point
		err := p.d.store.Export(context.Background(), time.UnixMilli(live[0].Timestamp).Add(step-time.Minute), time.Now().Add(step+time.Minute),
			func(bool) error { return nil }, func(pt history.Point) error { ps = append(ps, pt); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	testutil.Until(t, 10*time.Second, func() bool { return len(stored()) >= len(live) }, func() string { return fmt.Sprintf("%d stored", len(stored())) })
	ps := stored()
	const slack = 100 * time.Millisecond
	for i, f := range live {
		got := ps[i].Time.Sub(time.UnixMilli(f.Timestamp).Add(step))
		if got < -slack || got > slack {
			t.Errorf("reading %d stored at %s, %s from its live time plus the step", i, ps[i].Time.UTC(), got)
		}
	}
	for i := 1; i < len(ps); i++ {
		if !ps[i].Time.After(ps[i-1].Time) {
			t.Fatalf("stored out of order at %d: %s then %s", i, ps[i-1].Time, ps[i].Time)
		}
	}
	// MQTT: each held reading once, stamped as in history. The bridge
	// sends the newest of a batch first, retained, then the older ones
	// oldest first (broadcast/mqtt), so the set is compared, not the order.
	testutil.Until(t, mosquittotest.Wait, func() bool { return len(w.All()) >= len(live) }, func() string { return fmt.Sprintf("%d states", len(w.All())) })
	seen := map[int64]int{}
	for _, m := range w.All() {
		seen[timestampOf(t, m.Payload)]++
	}
	for i := range live {
		if n := seen[ps[i].Time.UnixMilli()]; n != 1 {
			t.Errorf("held reading %d (%d) reached MQTT %d times, want once", i, ps[i].Time.UnixMilli(), n)
		}
	}
	if n := strings.Count(p.log.String(), "clock set:"); n != 1 {
		t.Errorf("the journal says the clock is set %d times, want once", n)
	}
}

// TestWithoutClockHoldReadingsAreStoredAtOnce: the default (make run, a
// development machine whose kernel says "unsynchronised" of a right clock).
func TestWithoutClockHoldReadingsAreStoredAtOnce(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-history-dir", t.TempDir(), "-history-commit-interval", "1s")
	p.d.clk.clock.Source = func() timesync.Verdict { return timesync.Verdict{Why: "no time server has answered"} }
	p.wg.Go(func() { p.d.runHistory(p.ctx) })
	p.wg.Go(func() { p.d.runClock(p.ctx) })
	p.runPoller()
	testutil.Until(t, 10*time.Second, func() bool { return p.d.store.Stats().Written >= 3 }, func() string { return "nothing stored" })
	_, h := p.healthz(t)
	if h.Clock.Trusted || h.Clock.Hold || h.Clock.Held != 0 || strings.HasPrefix(h.Reason, "clock") {
		t.Errorf("/healthz without -clock-hold: %q %+v", h.Reason, h.Clock)
	}
}

// postClock posts body to /api/clock with the owner token owner ("" none).
func postClock(t *testing.T, p *inproc, owner, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url("/api/clock"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if owner != "" {
		req.Header.Set("Authorization", "Bearer "+owner)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// neverSynced is a system whose clock no time server has set.
func neverSynced() timesync.Verdict {
	return timesync.Verdict{Why: "no time server has answered"}
}

// TestTheOwnerSetsTheClockFromTheBrowser: a browser whose clock agrees
// confirms the clock at once and the held readings are stored; one whose
// clock differs leaves a request for the root helper, and the clock is
// trusted once it reads what the browser said. Bad bodies get 400 with
// the reason; without the owner token nothing happens.
func TestTheOwnerSetsTheClockFromTheBrowser(t *testing.T) {
	t.Parallel()
	const owner = "owner-token-1"
	t.Run("a browser that agrees confirms the clock", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t, "-clock-hold", "-owner-token", owner, "-history-dir", t.TempDir(), "-history-commit-interval", "1s")
		p.d.clk.clock.Source = neverSynced
		p.wg.Go(func() { p.d.runHistory(p.ctx) })
		p.wg.Go(func() { p.d.runClock(p.ctx) })
		p.runPoller()
		testutil.Until(t, 10*time.Second, func() bool { return p.d.clockHealth().Held >= 3 }, func() string { return "nothing held" })

		if code, _ := postClock(t, p, "", fmt.Sprintf(`{"time":%d}`, time.Now().UnixMilli())); code != http.StatusUnauthorized {
			t.Errorf("without the owner token: %d, want 401", code)
		}
		for _, body := range []string{`{"time":1765008000}`, `{"time":"now"}`, `not json`, `{"time":1,"x":2}`} {
			if code, msg := postClock(t, p, owner, body); code != http.StatusBadRequest || !strings.Contains(msg, `"error"`) {
				t.Errorf("%s: %d %s, want 400 with the reason", body, code, msg)
			}
		}
		if m := getText(t, p.url("/metrics")); !strings.Contains(m, "\nsensord_clock_requests_refused_total 4\n") {
			t.Errorf("refusals not counted:\n%s", grepLines(m, "sensord_clock"))
		}
		if p.d.clk.clock.Status().Trusted {
			t.Fatal("trusted after refused requests")
		}
		code, msg := postClock(t, p, owner, fmt.Sprintf(`{"time":%d}`, time.Now().UnixMilli()))
		if code != http.StatusOK || !strings.Contains(msg, `"trusted":true`) {
			t.Fatalf("a browser that agrees: %d %s", code, msg)
		}
		testutil.Until(t, 10*time.Second, func() bool { return p.d.store.Stats().Written >= 3 }, func() string { return "held readings not stored" })
		if h := p.d.clockHealth(); !h.Trusted || h.By != timesync.BySetting {
			t.Errorf("clock %+v, want trusted by the owner", h)
		}
	})
	t.Run("a browser that differs asks the helper, and the clock follows", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t, "-clock-hold", "-owner-token", owner)
		p.d.cfg.RuntimeDir = t.TempDir()
		c := p.d.clk.clock
		var polls atomic.Int64
		c.Source = func() timesync.Verdict { polls.Add(1); return neverSynced() }
		c.Every = 10 * time.Millisecond
		// The appliance's clock: the card's saved date, until the helper
		// sets it.
		var set atomic.Bool
		const behind = 400 * 24 * time.Hour
		c.Now = func() time.Time {
			if set.Load() {
				return time.Now()
			}
			return time.Now().Add(-behind)
		}
		p.wg.Go(func() { p.d.runClock(p.ctx) })
		browser := time.Now()
		code, msg := postClock(t, p, owner, fmt.Sprintf(`{"time":%d}`, browser.UnixMilli()))
		if code != http.StatusAccepted || !strings.Contains(msg, `"requested":true`) {
			t.Fatalf("a browser that differs: %d %s", code, msg)
		}
		b, err := os.ReadFile(filepath.Join(p.d.cfg.RuntimeDir, "clock-request"))
		if err != nil || !strings.HasPrefix(string(b), fmt.Sprintf("%d ", browser.UnixMilli())) {
			t.Fatalf("request for the helper: %q %v", b, err)
		}
		// Three polls after the request: nothing changes before the clock does.
		seen := polls.Load()
		testutil.Until(t, 10*time.Second, func() bool { return polls.Load() >= seen+3 }, func() string { return "the clock is not polled" })
		if c.Status().Trusted {
			t.Fatal("trusted before the clock was set")
		}
		set.Store(true) // what sensord-setclock does
		testutil.Until(t, 10*time.Second, func() bool { return c.Status().Trusted }, func() string { return "the set clock is not trusted" })
		if c.Status().By != timesync.BySetting {
			t.Errorf("trusted by %q", c.Status().By)
		}
	})
	t.Run("without the helper the owner is told to set the clock", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t, "-clock-hold", "-owner-token", owner)
		p.d.clk.clock.Source = neverSynced
		code, msg := postClock(t, p, owner, fmt.Sprintf(`{"time":%d}`, time.Now().Add(time.Hour).UnixMilli()))
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, "timedatectl") {
			t.Errorf("%d %s", code, msg)
		}
	})
}
