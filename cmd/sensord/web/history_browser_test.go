package web

// The dashboard's ranges over a store filled beforehand, the CSV download,
// and the sensor failure banner, in a real browser against the real daemon.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"sensord/internal/testutil"
)

// fillStore writes a year of history ending now into dir's database, as
// the daemon would have kept it, with sensor/history/internal/fillyear
// (per-minute rollups for the year, a reading every 2 s for the last seven
// days). It runs as a process of its own, built without -race: the race
// detector slows SQLite's translated C down by minutes for half a million
// rows.
func fillStore(t *testing.T, dir string) {
	t.Helper()
	fillOnce.Do(func() {
		fillBin = filepath.Join(shared.dir, "fillyear")
		out, err := exec.Command("go", "build", "-o", fillBin, "sensord/sensor/history/internal/fillyear").CombinedOutput()
		if err != nil {
			fillErr = fmt.Errorf("go build fillyear: %v\n%s", err, out)
		}
	})
	if fillErr != nil {
		t.Fatal(fillErr)
	}
	if out, err := exec.Command(fillBin, filepath.Join(dir, "history.db")).CombinedOutput(); err != nil {
		t.Fatalf("fillyear: %v\n%s", err, out)
	}
}

var (
	fillOnce sync.Once
	fillBin  string
	fillErr  error
)

// chartState is what the chart shows for a range.
type chartState struct {
	Range  string   `json:"range"`
	Points int      `json:"points"`
	Band   int      `json:"band"` // length of the temperature band's path
	XAxis  []string `json:"xaxis"`
	YAxis  []string `json:"yaxis"`
	Title  string   `json:"title"`
	Href   string   `json:"href"`
}

const chartJS = `(() => {
  const svg = document.getElementById('chart-svg');
  const band = svg.querySelector('path[data-band="temperature"]');
  return {
    range: svg.dataset.range || '', points: Number(svg.dataset.points),
    band: band ? band.getAttribute('d').length : 0,
    xaxis: [...svg.querySelectorAll('text[text-anchor="middle"]')].filter(e => !e.closest('.tip')).map(e => e.textContent),
    yaxis: [...svg.querySelectorAll('text.ax-t')].map(e => e.textContent),
    title: document.title, href: document.getElementById('download').href,
  };
})()`

var (
	dateLabel  = regexp.MustCompile(`^\d{1,2} [A-Z][a-z]{2}$`)
	clockLabel = regexp.MustCompile(`^\d\d:\d\d$`)
)

func TestDashboardRangesShowTheStoredHistory(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir)
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-history-dir", dir}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	// The 1 h range is raw or a step a minute by the sensor's period,
	// which the page learns from /healthz: wait for its answer (the
	// status shows), or a click before it asks for raw rows.
	waitFor(t, ctx, "live with values and the health known", 10*time.Second, func(v view) bool {
		return v.State == "live" && hasValues(v) && v.Status != "–"
	})

	for _, tc := range []struct {
		rng       string
		minPoints int
		dates     bool // the time axis is labelled with dates
		band      bool
	}{
		{"1h", 45, false, true}, // 200 ms readings: too many for raw, so a step a minute
		{"24h", 650, false, true},
		{"7d", 600, true, true},
		{"30d", 650, true, true},
		{"1y", 650, true, true},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			run(t, ctx, chromedp.Click(`.ranges button[data-range="`+tc.rng+`"]`, chromedp.ByQuery))
			c := waitChart(t, ctx, "range "+tc.rng, func(c chartState) bool { return c.Range == tc.rng && c.Points >= tc.minPoints })
			dates, clocks := 0, 0
			for _, l := range c.XAxis {
				switch {
				case dateLabel.MatchString(l):
					dates++
				case clockLabel.MatchString(l):
					clocks++
				}
			}
			if tc.dates && dates < 3 {
				t.Errorf("range %s: time axis %q, want dates", tc.rng, c.XAxis)
			}
			if !tc.dates && clocks < 3 {
				t.Errorf("range %s: time axis %q, want times of day", tc.rng, c.XAxis)
			}
			if tc.band && c.Band == 0 {
				t.Errorf("range %s: no min/max band", tc.rng)
			}
			for _, y := range c.YAxis {
				// Round steps: whole degrees or tenths ending in 0, 2, 4, 5, 6, 8.
				if strings.Contains(y, ".") && !regexp.MustCompile(`\.[024568]°$`).MatchString(y) {
					t.Errorf("range %s: temperature tick %q is not a round step (axis %q)", tc.rng, y, c.YAxis)
				}
			}
			if !strings.Contains(c.Href, "format=csv") || !strings.Contains(c.Href, "from=") {
				t.Errorf("range %s: download link %q does not ask for the range as CSV", tc.rng, c.Href)
			}
		})
	}

	t.Run("the download is the CSV of the range shown", func(t *testing.T) {
		run(t, ctx, chromedp.Click(`.ranges button[data-range="1y"]`, chromedp.ByQuery))
		var csv string
		run(t, ctx, chromedp.Evaluate(`(async () => {
			const a = document.getElementById('download');
			a.dispatchEvent(new Event('focus'));
			const r = await fetch(a.href);
			return r.headers.get('Content-Disposition') + '\n' + await r.text();
		})()`, &csv, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		lines := strings.Split(strings.TrimSpace(csv), "\n")
		if len(lines) < 700 || !strings.HasPrefix(lines[0], "attachment; filename=") ||
			!strings.HasPrefix(lines[1], "time,timestamp,temperature_c,humidity_percent,dew_point_c,absolute_humidity_g_m3,readings,temperature_min_c") {
			t.Fatalf("CSV download: %d lines, starting %q", len(lines), lines[:min(3, len(lines))])
		}
	})

	t.Run("the range survives a reload", func(t *testing.T) {
		run(t, ctx, chromedp.Reload())
		waitChart(t, ctx, "the 1 y range after a reload", func(c chartState) bool { return c.Range == "1y" && c.Points >= 650 })
	})
}

func TestHistoryOutlivesARestartAndTheChartShowsTheHoursBefore(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir)
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-history-dir", dir}})
	addr := d.addr
	d.cmd.Process.Kill() // SIGKILL: no flush, the imported history is on disk already
	<-d.exited
	d = startDaemonWith(t, addr, daemonOpts{args: []string{"-history-dir", dir}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	run(t, ctx, chromedp.Click(`.ranges button[data-range="24h"]`, chromedp.ByQuery))
	waitChart(t, ctx, "the 24 h chart after SIGKILL and restart", func(c chartState) bool { return c.Range == "24h" && c.Points >= 650 })
}

// waitChart polls the chart until cond holds.
func waitChart(t *testing.T, ctx context.Context, what string, cond func(chartState) bool) chartState {
	t.Helper()
	var c chartState
	testutil.Until(t, 20*time.Second, func() bool { c = chartState{}; run(t, ctx, chromedp.Evaluate(chartJS, &c)); return cond(c) },
		func() string { return fmt.Sprintf("%s: the chart shows %+v", what, c) })
	return c
}

// bannerView is the sensor banner and the connection badge.
type bannerView struct {
	Shown   bool   `json:"shown"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
	State   string `json:"state"`
	Status  string `json:"status"`
}

const bannerJS = `(() => ({
  shown: !document.getElementById('sensor-banner').hidden,
  problem: document.getElementById('sb-problem').textContent,
  fix: document.getElementById('sb-fix').textContent,
  state: document.getElementById('conn').dataset.state,
  status: document.getElementById('h-status').textContent,
}))()`

func waitBanner(t *testing.T, ctx context.Context, what string, cond func(bannerView) bool) bannerView {
	t.Helper()
	var b bannerView
	testutil.Until(t, 20*time.Second, func() bool { b = bannerView{}; run(t, ctx, chromedp.Evaluate(bannerJS, &b)); return cond(b) },
		func() string { return fmt.Sprintf("%s: the page shows %+v", what, b) })
	return b
}

func TestSensorFailureBannerIsPlainAndSeparateFromTheConnectionBadge(t *testing.T) {
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-sim-no-response"}, noReading: true})
	addr := d.addr
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	// Until the first good read the page never says OK.
	b := waitBanner(t, ctx, "the failure banner", func(b bannerView) bool {
		if strings.HasPrefix(b.Status, "OK") {
			t.Fatalf("status says %q while the sensor has never answered", b.Status)
		}
		return b.Shown
	})
	if b.State != "live" {
		t.Errorf("connection badge = %q while the page is connected, want live", b.State)
	}
	if !strings.Contains(b.Problem, "The sensor on GPIO4 does not answer at all") || !strings.Contains(b.Fix, "pull-up resistor") || !strings.Contains(b.Fix, "-pin") {
		t.Errorf("banner = %q / %q, want plain words with the likely fix", b.Problem, b.Fix)
	}

	// The daemon goes away: the badge says so, and the banner keeps what
	// it knew (a lost connection says nothing about the sensor).
	d.stop()
	b = waitBanner(t, ctx, "the badge shows the lost connection", func(b bannerView) bool { return b.State != "live" })
	if !b.Shown {
		t.Errorf("the banner went with the connection: %+v", b)
	}

	// A working sensor on the same address: the page reconnects by itself
	// and the banner goes.
	startDaemonWith(t, addr, daemonOpts{})
	waitBanner(t, ctx, "recovery", func(b bannerView) bool {
		return !b.Shown && b.State == "live" && strings.HasPrefix(b.Status, "OK")
	})
}

func TestAHungReadGetsABannerAWarningAndNoLiveBadge(t *testing.T) {
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-sim-hang-after", "1s"}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	b := waitBanner(t, ctx, "the hung-read banner", func(b bannerView) bool { return b.Shown && b.State != "live" })
	if !strings.Contains(b.Problem, "has not returned for") || !strings.Contains(b.Fix, "watchdog") || b.State != "stale" {
		t.Errorf("page %+v, want a banner for the hung read and a badge that does not say live", b)
	}
	testutil.Until(t, 10*time.Second, func() bool { return strings.Contains(d.log.String(), `level=WARN msg="sensor read hung"`) },
		func() string { return "no WARN line for the hung read:\n" + d.log.String() })
}

func TestChecksumErrorsShowAsGarbledAnswers(t *testing.T) {
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-sim-error-rate", "1"}, noReading: true})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	b := waitBanner(t, ctx, "the failure banner", func(b bannerView) bool { return b.Shown })
	if !strings.Contains(b.Problem, "garbled") || b.State != "live" {
		t.Errorf("banner %+v, want garbled answers while the page is live", b)
	}
}

// TestDashboardScreenshots writes docs/dashboard-{light,dark,phone}.png,
// the 30 d range over a filled store, with SENSORD_UPDATE_SCREENSHOT=1;
// otherwise it proves the three render.
func TestDashboardScreenshots(t *testing.T) {
	update := os.Getenv(screenshotEnv) == "1"
	dir := t.TempDir()
	fillStore(t, dir)
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-history-dir", dir, "-period", "2s"}})
	for _, shot := range []struct {
		name          string
		scheme        string
		width, height int
		mobile        bool
	}{
		{"light", "light", 1200, 0, false},
		{"dark", "dark", 1200, 0, false},
		{"phone", "dark", 390, 844, true},
	} {
		t.Run(shot.name, func(t *testing.T) {
			ctx := tab(t)
			vp := []chromedp.EmulateViewportOption{}
			if shot.mobile {
				vp = append(vp, chromedp.EmulateScale(1), chromedp.EmulateMobile)
			}
			run(t, ctx, chromedp.EmulateViewport(int64(shot.width), 900, vp...),
				emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: shot.scheme}}))
			open(t, ctx, d.url("/"))
			run(t, ctx, chromedp.Click(`.ranges button[data-range="30d"]`, chromedp.ByQuery))
			waitFor(t, ctx, "a chart worth a picture", 20*time.Second, func(v view) bool {
				return v.State == "live" && hasValues(v) && v.Points >= 600 && v.Status != "–" && (!update || v.CPU != "–")
			})
			img := screenshot(t, ctx, shot.width, shot.height)
			if !update {
				return
			}
			out := filepath.Join(filepath.Dir(screenshotFile), "dashboard-"+shot.name+".png")
			if err := writePNG(out, img); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", out)
		})
	}
}

func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func TestANewDevicesLongRangesShowItsFirstReadingsAndSayWhereHistoryStarts(t *testing.T) {
	d := startDaemonWith(t, "", daemonOpts{args: []string{"-history-dir", t.TempDir()}})
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	waitFor(t, ctx, "live with values and the health known", 10*time.Second, func(v view) bool {
		return v.State == "live" && hasValues(v) && v.Status != "–"
	})
	// A few seconds of readings held, so that there is a line to draw.
	waitChart(t, ctx, "fifteen live readings", func(c chartState) bool { return c.Range == "live" && c.Points >= 15 })
	for _, rng := range []string{"30d", "1y"} {
		t.Run(rng, func(t *testing.T) {
			run(t, ctx, chromedp.Click(`.ranges button[data-range="`+rng+`"]`, chromedp.ByQuery))
			waitChart(t, ctx, "range "+rng+" with the first readings", func(c chartState) bool { return c.Range == rng && c.Points >= 2 })
			var note string
			run(t, ctx, chromedp.Evaluate(`(() => { const e = document.getElementById('history-start'); return e.hidden ? '' : e.textContent; })()`, &note))
			if !strings.HasPrefix(note, "History starts ") {
				t.Errorf("range %s: history-start note %q, want where the history begins", rng, note)
			}
		})
	}
}

// After the page's socket was cut for longer than the chart's gap (10 s),
// the reconnect fills the chart from history: the live line is one piece
// again, with the readings of the cut in it.
func TestTheLiveChartHasNoGapAfterThePagesSocketWasCut(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	type line struct {
		Segments int `json:"segments"`
		Points   int `json:"points"`
	}
	const lineJS = `(() => {
  const svg = document.getElementById('chart-svg');
  return { segments: Number(svg.dataset.segments || 0), points: Number(svg.dataset.points || 0) };
})()`
	read := func() line {
		var l line
		run(t, ctx, chromedp.Evaluate(lineJS, &l))
		return l
	}
	var l line
	testutil.Until(t, 20*time.Second, func() bool { l = read(); return l.Points >= 10 && l.Segments == 1 },
		func() string { return fmt.Sprintf("no live line of one piece: %+v", l) })

	run(t, ctx, network.Enable(), network.EmulateNetworkConditions(true, 0, -1, -1))
	waitFor(t, ctx, "offline", 5*time.Second, func(v view) bool { return v.State == "offline" })
	cut := time.Now().UnixMilli()
	// The daemon reads on meanwhile: wait until its readings span more
	// than the chart's gap since the cut.
	testutil.Until(t, 60*time.Second, func() bool {
		res, err := http.Get(d.url("/api/latest"))
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var r struct{ Timestamp int64 }
		return json.NewDecoder(res.Body).Decode(&r) == nil && r.Timestamp > cut+11000
	}, func() string { return "the daemon made no readings for 11 s after the cut" })
	run(t, ctx, network.EmulateNetworkConditions(false, 0, -1, -1))
	back := time.Now()
	waitFor(t, ctx, "live after the socket came back", 15*time.Second, func(v view) bool { return v.State == "live" && v.TS >= back.UnixMilli() })
	testutil.Until(t, 20*time.Second, func() bool { l = read(); return l.Segments == 1 },
		func() string {
			return fmt.Sprintf("the live line is broken in %d pieces after the reconnect: %+v", l.Segments, l)
		})
}
