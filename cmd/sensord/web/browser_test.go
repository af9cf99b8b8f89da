package web

// The page proven in a real browser: Debian's Chromium, driven headless by
// chromedp, against the real sensord binary (built once per run, started
// with the simulated sensor). Every test starts its own daemon on its own
// port, so each gets a fresh origin and with it fresh localStorage.
//
// With SENSORD_UPDATE_SCREENSHOT=1, TestDashboardScreenshot also rewrites
// docs/dashboard.png, the picture in the README.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"sensord/internal/testutil"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// screenshotEnv set to 1 makes TestDashboardScreenshot write screenshotFile.
	screenshotEnv  = "SENSORD_UPDATE_SCREENSHOT"
	screenshotFile = "../../../docs/dashboard.png"
	// simPeriod is fast so the tests see many readings in a few seconds.
	simPeriod = "200ms"
	// binEnv names a prebuilt sensord to test instead of building one.
	binEnv = "SENSORD_TEST_BIN"
)

// suite holds what the browser tests share: the daemon binary and one
// Chromium. Both are made on first use, so the plain handler tests never pay
// for them, and torn down by TestMain.
type suite struct {
	dir string // temporary directory for the binary and the browser profile

	buildOnce sync.Once
	bin       string
	buildErr  error

	browserOnce sync.Once
	browser     context.Context // a started Chromium; tabs are children of it
	browserErr  error
	closeAlloc  context.CancelFunc
	closeBrowse context.CancelFunc
}

var shared suite

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sensord-web-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	if shared.closeBrowse != nil {
		shared.closeBrowse()
		shared.closeAlloc()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemonBinary builds sensord once per test run.
func daemonBinary(t *testing.T) string {
	t.Helper()
	shared.buildOnce.Do(func() {
		if bin := os.Getenv(binEnv); bin != "" {
			shared.bin = bin
			return
		}
		shared.bin, shared.buildErr = testutil.Build(shared.dir, "sensord/cmd/sensord", "sensord", false)
	})
	if shared.buildErr != nil {
		t.Fatal(shared.buildErr)
	}
	return shared.bin
}

// browser starts the shared Chromium with the flags an offline machine
// needs: nothing may try to reach the internet.
func browser(t *testing.T) context.Context {
	t.Helper()
	shared.browserOnce.Do(func() {
		if _, err := os.Stat(chromiumPath); err != nil {
			shared.browserErr = fmt.Errorf("%s: %w (install Debian's chromium package; make test does)", chromiumPath, err)
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(chromiumPath),
			chromedp.Flag("headless", true),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-quic", true),
			chromedp.NoFirstRun,
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("hide-scrollbars", true),
			chromedp.Flag("mute-audio", true),
			// The tests' daemons serve self-signed certificates.
			chromedp.Flag("ignore-certificate-errors", true),
			chromedp.UserDataDir(filepath.Join(shared.dir, "chromium-profile")),
			chromedp.WindowSize(1200, 900),
		}
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
		// cdproto lags Chromium: events with enum values it does not know
		// (a new IPAddressSpace) fail to decode and are logged, harmlessly,
		// by chromedp. Keep the test output for real errors.
		bctx, cancelB := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
			if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
				fmt.Fprintln(os.Stderr, "chromedp:", msg)
			}
		}))
		shared.closeAlloc, shared.closeBrowse = cancelA, cancelB
		// The first Run starts the browser and ties its life to the context
		// it is given, so it must be bctx itself, not a child with a timeout.
		if err := chromedp.Run(bctx); err != nil {
			shared.browserErr = fmt.Errorf("starting chromium: %w", err)
			return
		}
		shared.browser = bctx
	})
	if shared.browserErr != nil {
		t.Fatal(shared.browserErr)
	}
	return shared.browser
}

// tab opens a new tab that fails the test on any uncaught JavaScript
// exception or Content-Security-Policy violation, and closes with the test.
func tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t))
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			if strings.Contains(ev.Entry.Text, "Content Security Policy") {
				problems = append(problems, "CSP: "+ev.Entry.Text)
			}
		}
	})
	if err := chromedp.Run(ctx, cdplog.Enable()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("page: %s", p)
		}
	})
	return ctx
}

// daemon is one sensord process a browser test started: its address, the
// options it was started with, the command and what it logged.
type daemon struct {
	t      *testing.T
	addr   string
	opts   daemonOpts
	cmd    *exec.Cmd
	log    *testutil.Buffer
	exited chan struct{}
}

// daemonOpts adds to the default command line (-sensor sim, -period 200ms).
type daemonOpts struct {
	token string   // -token, and what the readiness probe sends
	args  []string // more flags
	env   []string // more environment, NAME=value
	// noReading: start-up waits for /healthz only, for a sensor that
	// never answers.
	noReading bool
	// tls serves HTTPS with a self-signed certificate made in a temporary
	// directory (-tls-auto); url and the probes then speak https.
	tls bool
}

// insecure trusts any certificate: the tests' own daemons serve a
// self-signed one, which the test compares by its fingerprint instead.
var insecure = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// startDaemon runs sensord with the simulated sensor on addr ("" picks a
// free port) and waits until it has a reading.
func startDaemon(t *testing.T, addr string) *daemon {
	t.Helper()
	return startDaemonWith(t, addr, daemonOpts{})
}

func startDaemonWith(t *testing.T, addr string, o daemonOpts) *daemon {
	t.Helper()
	bin := daemonBinary(t)
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	d := &daemon{t: t, addr: addr, opts: o, log: &testutil.Buffer{}, exited: make(chan struct{})}
	args := []string{"-sensor", "sim", "-listen", addr, "-period", simPeriod}
	if o.token != "" {
		args = append(args, "-token", o.token)
	}
	if o.tls {
		args = append(args, "-tls-auto", t.TempDir())
	}
	d.cmd = exec.Command(bin, append(args, o.args...)...)
	// The test runner's own SENSORD_* switches are not the daemon's.
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SENSORD_") {
			environ = append(environ, kv)
		}
	}
	d.cmd.Env = append(environ, o.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("sensord on %s logged:\n%s", d.addr, d.log.String())
		}
	})
	probe := "/api/latest"
	if o.noReading {
		probe = "/healthz"
	}
	var err error
	exited := false
	testutil.Until(t, 15*time.Second, func() bool {
		select {
		case <-d.exited:
			exited = true
			return true
		default:
		}
		var res *http.Response
		if res, err = insecure.Get(d.url(probe)); err != nil {
			return false
		}
		res.Body.Close()
		err = fmt.Errorf("%s answered %s", probe, res.Status)
		return res.StatusCode == http.StatusOK || (o.noReading && res.StatusCode == http.StatusServiceUnavailable)
	}, func() string {
		return fmt.Sprintf("sensord on %s has no reading (last: %v):\n%s", addr, err, d.log.String())
	})
	if exited {
		t.Fatalf("sensord exited during start-up:\n%s", d.log.String())
	}
	return d
}

// url is an absolute URL of the daemon, carrying the token if it has one.
func (d *daemon) url(path string) string {
	scheme := "http"
	if d.opts.tls {
		scheme = "https"
	}
	u := scheme + "://" + d.addr + path
	if d.opts.token != "" {
		u += "?access_token=" + d.opts.token
	}
	return u
}

// postAsOwner POSTs a JSON body to path with the owner's credential and
// fails the test unless sensord answers want.
func (d *daemon) postAsOwner(t *testing.T, path, owner, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+owner)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("POST %s: %s, want %d", path, res.Status, want)
	}
}

// stop sends SIGTERM, as systemd does, and waits for the exit.
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.t.Errorf("sensord on %s ignored SIGTERM for 10 s; killing it", d.addr)
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// view is what the page shows, read in one evaluation so the parts agree.
type view struct {
	State    string  `json:"state"`
	Temp     string  `json:"temp"`
	Unit     string  `json:"unit"`
	Hum      string  `json:"hum"`
	Celsius  float64 `json:"celsius"`
	TS       int64   `json:"ts"`
	Points   int     `json:"points"`
	TempPath int     `json:"tempPath"` // points on the drawn temperature line
	HumPath  int     `json:"humPath"`
	Updated  string  `json:"updated"`
	Status   string  `json:"status"`
	Clients  string  `json:"clients"`
	CPU      string  `json:"cpu"`
	Mem      string  `json:"mem"`
	Marker   string  `json:"marker"` // set by a test to prove the page was not reloaded
	Rate     string  `json:"rate"`
	Error    string  `json:"error"`
	Warnings string  `json:"warnings"` // "" while the warnings box is hidden
	Auth     bool    `json:"auth"`     // the "needs a token" banner shows
}

const viewJS = `(() => {
  const $ = (id) => document.getElementById(id);
  const segs = (s) => { const p = document.querySelector('#chart-svg path[data-series="' + s + '"]'); return p ? (p.getAttribute('d').match(/[ML]/g) || []).length : 0; };
  return {
    state: $('conn').dataset.state, temp: $('temp').textContent, unit: $('temp-unit').textContent,
    hum: $('hum').textContent, celsius: Number($('temp').dataset.celsius || 'NaN') || 0, ts: Number($('temp').dataset.ts || 0),
    points: Number($('chart-svg').dataset.points), tempPath: segs('temperature'), humPath: segs('humidity'),
    updated: $('updated').textContent, status: $('h-status').textContent, clients: $('h-clients').textContent,
    cpu: $('h-cpu').textContent, mem: $('h-mem').textContent, marker: String(window.testMarker || ''),
    rate: $('h-rate').textContent, error: $('h-error').textContent,
    warnings: $('warnings').hidden ? '' : $('warning-list').textContent, auth: !$('auth').hidden,
  };
})()`

func look(t *testing.T, ctx context.Context) view {
	t.Helper()
	var v view
	if err := chromedp.Run(ctx, chromedp.Evaluate(viewJS, &v)); err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	return v
}

// waitFor polls the page until cond holds or the timeout (scaled, see
// testutil.Scale) passes.
func waitFor(t *testing.T, ctx context.Context, what string, timeout time.Duration, cond func(view) bool) view {
	t.Helper()
	var v view
	testutil.Until(t, timeout, func() bool { v = look(t, ctx); return cond(v) },
		func() string { return fmt.Sprintf("%s: the page shows %+v", what, v) })
	return v
}

func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func hasValues(v view) bool { return isDecimal(v.Temp) && isDecimal(v.Hum) && v.TS > 0 }

func isDecimal(s string) bool {
	i := strings.IndexByte(s, '.')
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && i > 0 && i == len(s)-2
}

// tenth formats v the way the page does: one decimal.
func tenth(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64) }

type wireReading struct {
	Type        string  `json:"type"`
	Temperature float64 `json:"temperature"`
	Humidity    float64 `json:"humidity"`
	Timestamp   int64   `json:"timestamp"`
	// The daemon's derived values; DewPoint is nil in dry air.
	DewPoint         *float64 `json:"dew_point"`
	AbsoluteHumidity float64  `json:"absolute_humidity"`
}

// history fetches the daemon's retained readings by timestamp.
func history(t *testing.T, d *daemon) map[int64]wireReading {
	t.Helper()
	res, err := http.Get(d.url("/api/history"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var list []wireReading
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		t.Fatalf("/api/history: %v", err)
	}
	m := make(map[int64]wireReading, len(list))
	for _, r := range list {
		m[r.Timestamp] = r
	}
	return m
}

// checkShowsDaemonReading asserts the page shows exactly the reading the
// daemon recorded at the page's timestamp.
func checkShowsDaemonReading(t *testing.T, d *daemon, v view) {
	t.Helper()
	r, ok := history(t, d)[v.TS]
	if !ok {
		t.Fatalf("the page shows a reading stamped %d that the daemon's history does not hold", v.TS)
	}
	if v.Temp != tenth(r.Temperature) || v.Hum != tenth(r.Humidity) || v.Celsius != r.Temperature {
		t.Errorf("page shows %s °C / %s %% for %d, daemon recorded %+v", v.Temp, v.Hum, v.TS, r)
	}
}

func TestDashboardShowsLiveReadings(t *testing.T) {
	d := startDaemon(t, "")
	ctx := tab(t)
	start := time.Now()
	open(t, ctx, d.url("/"))
	first := waitFor(t, ctx, "temperature and humidity appear", 5*time.Second-time.Since(start), hasValues)
	t.Logf("values after %s: %s °C, %s %%", time.Since(start).Round(time.Millisecond), first.Temp, first.Hum)
	first = waitFor(t, ctx, "the connection shows live", 5*time.Second, func(v view) bool { return v.State == "live" })
	checkShowsDaemonReading(t, d, first)

	t.Run("values change when the simulated values change", func(t *testing.T) {
		v := waitFor(t, ctx, "a different value", 15*time.Second, func(v view) bool {
			return hasValues(v) && (v.Temp != first.Temp || v.Hum != first.Hum)
		})
		t.Logf("%s °C %s %% -> %s °C %s %%", first.Temp, first.Hum, v.Temp, v.Hum)
		checkShowsDaemonReading(t, d, v)
		if v.Unit != "°C" {
			t.Errorf("unit = %q, want °C by default", v.Unit)
		}
	})

	t.Run("the chart has points and grows live", func(t *testing.T) {
		v := waitFor(t, ctx, "chart points", 5*time.Second, func(v view) bool { return v.Points >= 5 && v.TempPath >= 5 && v.HumPath >= 5 })
		waitFor(t, ctx, "the chart grows", 5*time.Second, func(w view) bool { return w.Points > v.Points })
		// Every reading the daemon retained is on the chart: history from
		// the load plus each live frame, none lost, none doubled. A reading
		// may be in flight, so look again until both sides agree.
		var w view
		held := 0
		testutil.Until(t, 5*time.Second, func() bool {
			w, held = look(t, ctx), 0
			for ts := range history(t, d) {
				if ts <= w.TS {
					held++
				}
			}
			return w.Points == held
		}, func() string {
			return fmt.Sprintf("the chart has %d readings up to %d, the daemon retained %d", w.Points, w.TS, held)
		})

		var axis []string
		run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll('#chart-svg text')].map(e => e.textContent)`, &axis))
		var temps, hums int
		for _, a := range axis {
			switch {
			case strings.HasSuffix(a, "°"):
				temps++
			case strings.HasSuffix(a, "%"):
				hums++
			}
		}
		if temps < 3 || hums < 3 {
			t.Errorf("axis labels %q: want >= 3 temperature (°) and >= 3 humidity (%%) labels on their own axes", axis)
		}

		// Pointing at the chart reads out the reading under the pointer.
		var box struct{ X, Y, W, H float64 }
		run(t, ctx, chromedp.Evaluate(`(() => { const r = document.getElementById('chart-svg').getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`, &box))
		run(t, ctx, chromedp.MouseEvent(input.MouseMoved, box.X+box.W/2, box.Y+box.H/2))
		var tip string
		run(t, ctx, chromedp.Evaluate(`document.querySelector('#chart-svg .tip text')?.textContent || ''`, &tip))
		if !regexp.MustCompile(`^\d\d:\d\d:\d\d  -?\d+\.\d °C  \d+\.\d %$`).MatchString(tip) {
			t.Errorf("pointer read-out = %q, want time, temperature and humidity", tip)
		}
	})

	t.Run("the updated line ticks", func(t *testing.T) {
		v := look(t, ctx)
		if !strings.HasPrefix(v.Updated, "updated ") {
			t.Errorf("updated line = %q", v.Updated)
		}
	})

	t.Run("health shows status, clients and system stats", func(t *testing.T) {
		// System stats come every 5 s on the hub stream.
		v := waitFor(t, ctx, "health and system stats", 8*time.Second, func(v view) bool {
			return v.Status != "–" && strings.Contains(v.Clients, "dashboard 1") && v.CPU != "–" && v.Mem != "–"
		})
		if !strings.HasPrefix(v.Status, "OK") {
			t.Errorf("status = %q, want OK", v.Status)
		}
		if _, err := strconv.ParseFloat(v.CPU, 64); err != nil {
			t.Errorf("cpu load = %q, want a number", v.CPU)
		}
		if !strings.HasSuffix(v.Mem, " %") {
			t.Errorf("memory = %q, want a percentage", v.Mem)
		}
		var rate string
		run(t, ctx, chromedp.Text("#h-rate", &rate, chromedp.ByQuery))
		if !strings.Contains(rate, "%") || !strings.Contains(rate, "reads") {
			t.Errorf("success rate = %q", rate)
		}
	})

	t.Run("values and state are announced to screen readers", func(t *testing.T) {
		var got map[string]string
		run(t, ctx, chromedp.Evaluate(`({
			temp: document.getElementById('temp').closest('[aria-live]')?.getAttribute('aria-live') || '',
			hum: document.getElementById('hum').closest('[aria-live]')?.getAttribute('aria-live') || '',
			conn: document.getElementById('conn').getAttribute('role') + ' ' + document.getElementById('conn').getAttribute('aria-live'),
			chart: document.getElementById('chart-svg').getAttribute('role') + ' ' + (document.getElementById('chart-desc')?.textContent || ''),
			unnamed: [...document.querySelectorAll('button')].filter(b => !(b.getAttribute('aria-label') || b.textContent).trim()).length + '',
		})`, &got))
		want := map[string]string{"temp": "polite", "hum": "polite", "conn": "status polite", "unnamed": "0"}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s = %q, want %q", k, got[k], w)
			}
		}
		if !strings.HasPrefix(got["chart"], "img Chart of the last") {
			t.Errorf("chart = %q, want role img with a description", got["chart"])
		}
	})
}

func TestDashboardReconnectsWithoutReload(t *testing.T) {
	d := startDaemon(t, "")
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	before := waitFor(t, ctx, "live with values", 5*time.Second, func(v view) bool { return v.State == "live" && hasValues(v) })
	run(t, ctx, chromedp.Evaluate(`window.testMarker = 'same page'`, nil))

	d.stop()
	v := waitFor(t, ctx, "reconnecting after the daemon stopped", 5*time.Second, func(v view) bool { return v.State == "reconnecting" })
	t.Logf("daemon stopped; page shows %q, %s", v.State, v.Updated)
	// While reconnects fail the age of the last reading keeps ticking.
	waitFor(t, ctx, "the age ticking while the daemon is down (updated N s ago)", 10*time.Second, func(v view) bool {
		return v.State == "reconnecting" && regexp.MustCompile(`^updated ([2-9]|[1-9][0-9]+) s ago$`).MatchString(v.Updated)
	})

	restarted := time.Now()
	d2 := startDaemon(t, d.addr)
	v = waitFor(t, ctx, "live again after the daemon returned", 15*time.Second, func(v view) bool { return v.State == "live" })
	t.Logf("live again %s after the restart", time.Since(restarted).Round(time.Millisecond))
	v = waitFor(t, ctx, "a reading from the new daemon", 5*time.Second, func(v view) bool { return v.TS >= restarted.UnixMilli() })
	if v.Marker != "same page" {
		t.Errorf("the page was reloaded (marker %q); it must reconnect in place", v.Marker)
	}
	if v.TS <= before.TS {
		t.Errorf("timestamp %d not after %d", v.TS, before.TS)
	}
	checkShowsDaemonReading(t, d2, v)

	t.Run("offline when the browser loses the network, live when it returns", func(t *testing.T) {
		run(t, ctx, network.Enable(), network.EmulateNetworkConditions(true, 0, -1, -1))
		waitFor(t, ctx, "offline", 5*time.Second, func(v view) bool { return v.State == "offline" })
		run(t, ctx, network.EmulateNetworkConditions(false, 0, -1, -1))
		back := time.Now()
		waitFor(t, ctx, "live after the network returned", 10*time.Second, func(v view) bool { return v.State == "live" })
		waitFor(t, ctx, "readings after the network returned", 5*time.Second, func(v view) bool { return v.TS >= back.UnixMilli() })
	})
}

func TestUnitToggleConvertsAndSurvivesReload(t *testing.T) {
	d := startDaemon(t, "")
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	waitFor(t, ctx, "values", 5*time.Second, hasValues)

	fahrenheit := func(v view) bool { return v.Unit == "°F" && v.Temp == tenth(v.Celsius*9/5+32) }
	celsius := func(v view) bool { return v.Unit == "°C" && v.Temp == tenth(v.Celsius) }
	pressed := func() string {
		var s string
		run(t, ctx, chromedp.AttributeValue("#unit-f", "aria-pressed", &s, nil, chromedp.ByQuery))
		return s
	}

	run(t, ctx, chromedp.Click("#unit-f", chromedp.ByQuery))
	v := waitFor(t, ctx, "°F after the click", 2*time.Second, fahrenheit)
	t.Logf("%.1f °C shown as %s %s", v.Celsius, v.Temp, v.Unit)
	if pressed() != "true" {
		t.Error("°F button not aria-pressed after the click")
	}
	var legend string
	run(t, ctx, chromedp.Text("#legend-unit", &legend, chromedp.ByQuery))
	if legend != "°F" {
		t.Errorf("chart legend unit = %q, want °F", legend)
	}

	run(t, ctx, chromedp.Reload())
	v = waitFor(t, ctx, "°F after a reload", 5*time.Second, func(v view) bool { return hasValues(v) && fahrenheit(v) })
	if pressed() != "true" {
		t.Error("°F button not aria-pressed after the reload")
	}
	var stored string
	run(t, ctx, chromedp.Evaluate(`localStorage.getItem('sensord.unit')`, &stored))
	if stored != "F" {
		t.Errorf("localStorage sensord.unit = %q, want F", stored)
	}

	run(t, ctx, chromedp.Click("#unit-c", chromedp.ByQuery))
	waitFor(t, ctx, "°C after clicking back", 2*time.Second, celsius)
	run(t, ctx, chromedp.Reload())
	waitFor(t, ctx, "°C after another reload", 5*time.Second, func(v view) bool { return hasValues(v) && celsius(v) })
}

func TestDashboardWithTokenErrorsAndWarnings(t *testing.T) {
	// A daemon as the appliance may really run: a token, a sensor that
	// fails now and then, and a bad setting reported instead of fatal.
	o := daemonOpts{
		token: "s3cret-tok",
		args:  []string{"-sim-error-rate", "0.2", "-env-errors", "warn"},
		env:   []string{"SENSORD_LOG_LEVEL=loud"},
	}
	d := startDaemonWith(t, "", o)
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	v := waitFor(t, ctx, "live values with the token", 5*time.Second, func(v view) bool { return v.State == "live" && hasValues(v) })
	checkShowsDaemonReading(t, d, v)

	// The last error shows with the health poll that follows it; the
	// rate is the verdict's window, which the watch counts once a second.
	v = waitFor(t, ctx, "sensor errors, a rate below 100 % and the settings warning", 10*time.Second, func(v view) bool {
		return strings.HasPrefix(v.Error, "dht22: ") && v.Warnings != "" && !strings.HasPrefix(v.Rate, "100.0")
	})
	if !strings.Contains(v.Warnings, "SENSORD_LOG_LEVEL") {
		t.Errorf("warnings box shows %q, want the bad SENSORD_LOG_LEVEL", v.Warnings)
	}
	if strings.HasPrefix(v.Rate, "100.0") || !strings.Contains(v.Rate, "%") {
		t.Errorf("success rate = %q, want below 100 %% with a 20 %% error rate", v.Rate)
	}
	if v.Auth {
		t.Error("the missing-token banner shows although the token was given")
	}

	// Once the token was right, the daemon took it out of the address bar
	// (it lives on in the cookie it set): restarted, the daemon lets the
	// page's reconnect and health polls in on that cookie alone.
	var search string
	run(t, ctx, chromedp.Evaluate(`location.search`, &search))
	if strings.Contains(search, "access_token") {
		t.Errorf("the address bar still carries the token: %q", search)
	}
	d.stop()
	waitFor(t, ctx, "reconnecting", 5*time.Second, func(v view) bool { return v.State == "reconnecting" })
	restarted := time.Now()
	startDaemonWith(t, d.addr, o)
	waitFor(t, ctx, "live again with the cookie", 15*time.Second, func(v view) bool {
		return v.State == "live" && v.TS >= restarted.UnixMilli()
	})
	waitFor(t, ctx, "health polled with the token", 8*time.Second, func(v view) bool {
		return !v.Auth && v.Status != "Unreachable" && v.Status != "–"
	})
}

// contrastJS computes the WCAG contrast ratio of each text element against
// the background it is drawn on (the nearest opaque ancestor background).
const contrastJS = `(() => {
  const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c;
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const sel of ['#temp', '#hum', '.value .u', '#updated', '.range', '.card h2', '.legend li', '.stats dt', '.stats dd',
      '.stats dd small', '#conn-text', '.unit button[aria-pressed="true"]', '.unit button[aria-pressed="false"]', 'footer', 'footer a',
      '#chart-svg .ax-t', '#chart-svg .ax-h', '#chart-svg text:not([class])', '.badge']) {
    const el = document.querySelector(sel);
    if (!el) { out[sel] = -1; continue; }
    const cs = getComputedStyle(el);
    const fg = rgb(el instanceof SVGElement ? cs.fill : cs.color);
    const a = lum(fg), b = lum(bg(el));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  out.background = getComputedStyle(document.body).backgroundColor;
  return out;
})()`

func TestDashboardFollowsColorSchemeWithReadableContrast(t *testing.T) {
	d := startDaemon(t, "")
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	waitFor(t, ctx, "live with chart and health", 8*time.Second, func(v view) bool {
		return v.State == "live" && hasValues(v) && v.Points >= 3 && v.Status != "–"
	})
	backgrounds := map[string]string{}
	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			run(t, ctx, emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}))
			var got map[string]any
			run(t, ctx, chromedp.Evaluate(contrastJS, &got))
			backgrounds[scheme], _ = got["background"].(string)
			for sel, r := range got {
				if sel == "background" {
					continue
				}
				ratio, _ := r.(float64)
				if ratio < 4.5 {
					t.Errorf("%s: contrast %.2f:1, want >= 4.5:1 (or the element is missing)", sel, ratio)
				}
			}
		})
	}
	if backgrounds["light"] == backgrounds["dark"] {
		t.Errorf("the background is %s in both schemes", backgrounds["light"])
	}
}

func TestDashboardFitsAPhone(t *testing.T) {
	d := startDaemon(t, "")
	ctx := tab(t)
	run(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile))
	open(t, ctx, d.url("/"))
	waitFor(t, ctx, "values and chart", 5*time.Second, func(v view) bool { return hasValues(v) && v.Points >= 3 })
	var got struct {
		Scroll, Inner, Chart int
		Font                 float64
	}
	run(t, ctx, chromedp.Evaluate(`({
		Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth,
		Chart: Math.round(document.getElementById('chart-svg').getBoundingClientRect().right),
		Font: parseFloat(getComputedStyle(document.querySelector('#chart-svg text')).fontSize)
			* document.getElementById('chart-svg').getBoundingClientRect().width / document.getElementById('chart-svg').viewBox.baseVal.width,
	})`, &got))
	if got.Scroll > got.Inner {
		t.Errorf("page is %d px wide in a %d px viewport: it scrolls sideways", got.Scroll, got.Inner)
	}
	if got.Chart > got.Inner {
		t.Errorf("chart ends at %d px, beyond the %d px viewport", got.Chart, got.Inner)
	}
	if got.Font < 11 {
		t.Errorf("chart labels render at %.1f px, want >= 11 px on a phone", got.Font)
	}
}

func TestDashboardScreenshot(t *testing.T) {
	update := os.Getenv(screenshotEnv) == "1"
	d := startDaemon(t, "")
	ctx := tab(t)
	run(t, ctx, chromedp.EmulateViewport(1200, 900))
	open(t, ctx, d.url("/"))
	// For the README, let the chart fill up and the system stats arrive;
	// otherwise a short chart proves the capture works.
	points, wait := 5, 8*time.Second
	if update {
		points, wait = 300, 90*time.Second
	}
	waitFor(t, ctx, "a chart worth a picture", wait, func(v view) bool {
		return v.State == "live" && hasValues(v) && v.Points >= points && (!update || v.CPU != "–")
	})
	desktop := screenshot(t, ctx, 1200, 0)

	if !update {
		return
	}
	// A phone in dark mode beside the desktop: both layouts, both schemes.
	phone := tab(t)
	run(t, phone,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile),
		emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
	)
	open(t, phone, d.url("/"))
	waitFor(t, phone, "the phone view", 10*time.Second, func(v view) bool {
		return v.State == "live" && hasValues(v) && v.Points >= points && v.Status != "–"
	})
	// A system frame (every 5 s) fills CPU and memory.
	waitFor(t, phone, "the phone's system stats", 15*time.Second, func(v view) bool { return v.CPU != "–" && v.Mem != "–" })
	mobile := screenshot(t, phone, 390, 844) // what the phone's screen shows

	out, err := compose(desktop, mobile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(screenshotFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(screenshotFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", screenshotFile, len(out))
}

// screenshot captures the page at the given CSS width, from the top down
// to height CSS pixels (0: the whole page), and decodes it.
func screenshot(t *testing.T, ctx context.Context, width, height int) image.Image {
	t.Helper()
	var h float64
	run(t, ctx, chromedp.Evaluate(`document.documentElement.scrollHeight`, &h))
	if height > 0 {
		h = math.Min(h, float64(height))
	}
	var buf []byte
	run(t, ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		buf, err = page.CaptureScreenshot().
			WithFormat(page.CaptureScreenshotFormatPng).
			WithCaptureBeyondViewport(true).
			WithFromSurface(true).
			WithClip(&page.Viewport{X: 0, Y: 0, Width: float64(width), Height: h, Scale: 1}).
			Do(ctx)
		return err
	}))
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != int(h) {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, int(h))
	}
	return img
}

// compose puts the desktop shot and the phone shot side by side on a
// neutral backdrop, tops aligned.
func compose(desktop, phone image.Image) ([]byte, error) {
	const pad = 24
	db, pb := desktop.Bounds(), phone.Bounds()
	w := pad + db.Dx() + pad + pb.Dx() + pad
	h := pad + max(db.Dy(), pb.Dy()) + pad
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{0xd5, 0xdb, 0xe1, 0xff}), image.Point{}, draw.Src)
	draw.Draw(out, image.Rect(pad, pad, pad+db.Dx(), pad+db.Dy()), desktop, db.Min, draw.Src)
	px := pad + db.Dx() + pad
	draw.Draw(out, image.Rect(px, pad, px+pb.Dx(), pad+pb.Dy()), phone, pb.Min, draw.Src)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, out); err != nil {
		return nil, errors.New("web: encoding the screenshot: " + err.Error())
	}
	return buf.Bytes(), nil
}

// TestDevicePanelShowsTheCertificateFingerprint: over HTTPS with the
// self-signed certificate, the device panel shows the SHA-256 fingerprint
// of the certificate the browser was served, so a person can compare the
// two before trusting it.
func TestDevicePanelShowsTheCertificateFingerprint(t *testing.T) {
	d := startDaemonWith(t, "", daemonOpts{tls: true})
	res, err := insecure.Get(d.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		TLSFingerprint string `json:"tls_fingerprint"`
	}
	err = json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if err != nil || res.TLS == nil || len(res.TLS.PeerCertificates) == 0 {
		t.Fatalf("healthz over https: %v (tls %v)", err, res.TLS != nil)
	}
	sum := sha256.Sum256(res.TLS.PeerCertificates[0].Raw)
	var want []string
	for _, b := range sum {
		want = append(want, strings.ToUpper(hex.EncodeToString([]byte{b})))
	}
	if served := strings.Join(want, ":"); h.TLSFingerprint != served {
		t.Fatalf("/healthz says %q, the served certificate is %q", h.TLSFingerprint, served)
	}

	ctx := tab(t)
	open(t, ctx, d.url("/"))
	const shown = `(() => { const row = document.getElementById('d-tls-row'); return row.hidden ? '' : document.getElementById('d-tls').firstChild.textContent; })()`
	var got string
	testutil.Until(t, 60*time.Second, func() bool { run(t, ctx, chromedp.Evaluate(shown, &got)); return got == h.TLSFingerprint },
		func() string {
			return fmt.Sprintf("the device panel shows %q, want the certificate's %q", got, h.TLSFingerprint)
		})
}

// TestDevicePanelHidesTheFingerprintWithoutTLS: over plain HTTP there is no
// certificate to compare, and the row stays hidden.
func TestDevicePanelHidesTheFingerprintWithoutTLS(t *testing.T) {
	d := startDaemon(t, "")
	ctx := tab(t)
	open(t, ctx, d.url("/"))
	waitFor(t, ctx, "a reading on the page", 60*time.Second, hasValues)
	var hidden bool
	run(t, ctx, chromedp.Evaluate(`document.getElementById('d-tls-row').hidden`, &hidden))
	if !hidden {
		t.Error("the certificate row shows without TLS")
	}
}
