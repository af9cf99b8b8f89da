package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"sensord/broadcast/mqtt/mosquittotest"
	"sensord/image/paths"
	"sensord/image/settings"
	"sensord/internal/testutil"
)

const settingsOwner = "settings-owner-token"

// appliance is sensord run the way the image runs it, in a temporary
// directory: its settings come from a sensord.conf through the
// environment (systemd's EnvironmentFile=), its runtime directory holds
// the settings page's spool, and the real `sensorctl apply-settings`
// stands in for the root path unit; "restarting sensord" starts the
// real binary again with the file as it is then.
type appliance struct {
	t         *testing.T
	dir       string
	conf      string
	run       string // $RUNTIME_DIRECTORY
	addr      string
	sensorctl string
	calls     string // what the helper asked systemctl
	// restartWanted and restartDone are FIFOs: the fake systemctl's
	// `restart sensord.service` writes a line to the first, the test
	// restarts sensord, and a line on the second lets systemctl return.
	restartWanted, restartDone string
	d                          *daemon
}

func newAppliance(t *testing.T, set map[string]string) *appliance {
	t.Helper()
	a := &appliance{t: t, dir: t.TempDir()}
	a.conf = filepath.Join(a.dir, "sensord.conf")
	var b strings.Builder
	if err := settings.Render(&b, settings.Appliance(), set); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	a.run = filepath.Join(a.dir, "run", "sensord")
	if err := os.MkdirAll(a.run, 0o700); err != nil {
		t.Fatal(err)
	}
	a.calls = filepath.Join(a.dir, "systemctl.log")
	a.restartWanted, a.restartDone = filepath.Join(a.dir, "restart-wanted"), filepath.Join(a.dir, "restart-done")
	for _, fifo := range []string{a.restartWanted, a.restartDone} {
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// systemctl records each call; its restart of sensord returns once
	// the test has the new sensord listening, as systemd's returns once
	// the new one is ready (Type=notify).
	rec := filepath.Join(a.dir, "systemctl")
	script := "#!/bin/sh\necho \"$*\" >> " + a.calls + "\n" +
		"[ \"$*\" = \"restart sensord.service\" ] || exit 0\n" +
		"echo restart > " + a.restartWanted + "\nread ok < " + a.restartDone + "\n"
	if err := os.WriteFile(rec, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := testutil.Build(shared.dir, "sensord/cmd/sensorctl", "sensorctl", false)
	if err != nil {
		t.Fatal(err)
	}
	a.sensorctl = bin
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = l.Addr().String()
	l.Close()
	a.start()
	return a
}

// values are the file's active settings.
func (a *appliance) values() map[string]string {
	a.t.Helper()
	b, err := os.ReadFile(a.conf)
	if err != nil {
		a.t.Fatal(err)
	}
	v, err := settings.Parse(b, settings.Appliance())
	if err != nil {
		a.t.Fatal(err)
	}
	return v
}

func (a *appliance) start() {
	a.t.Helper()
	env := []string{"RUNTIME_DIRECTORY=" + a.run}
	for k, v := range a.values() {
		env = append(env, k+"="+v)
	}
	a.d = startDaemonWith(a.t, a.addr, daemonOpts{env: env})
}

// spool is the request the page left for the root helper.
func (a *appliance) spool() string { return filepath.Join(a.run, paths.SettingsRequestName) }

// applyAndRestart waits for the page's request and runs the root helper
// on it as the path unit would. At the helper's restart of sensord it
// starts sensord again with the file as the helper wrote it, then calls
// during (when not nil) while that restart is still under way, so before
// the helper writes the outcome. The helper's last systemctl call must be
// sensord's restart.
func (a *appliance) applyAndRestart(during func()) {
	a.t.Helper()
	testutil.Until(a.t, 10*time.Second, func() bool { _, err := os.Lstat(a.spool()); return err == nil },
		func() string { return "the page's change never reached the spool" })
	os.Remove(a.calls)
	// Opened for reading and writing, the FIFO opens at once, and a read
	// blocks until systemctl writes its line.
	wanted, err := os.OpenFile(a.restartWanted, os.O_RDWR, 0)
	if err != nil {
		a.t.Fatal(err)
	}
	defer wanted.Close()
	var out bytes.Buffer
	helper := exec.Command(a.sensorctl, "apply-settings", "-conf", a.conf, "-state-dir", filepath.Join(a.dir, "run", "sensord-settings"),
		"-systemctl", filepath.Join(a.dir, "systemctl"), a.spool())
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		a.t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- helper.Wait() }()
	restart := make(chan struct{})
	go func() {
		if _, err := wanted.Read(make([]byte, 16)); err == nil {
			close(restart)
		}
	}()
	select {
	case err := <-ended:
		a.t.Fatalf("sensorctl apply-settings ended without restarting sensord: %v\n%s", err, out.String())
	case <-restart:
	}
	a.d.stop()
	a.start()
	if during != nil {
		during()
	}
	if err := os.WriteFile(a.restartDone, []byte("ok\n"), 0); err != nil {
		a.t.Fatal(err)
	}
	if err := <-ended; err != nil {
		a.t.Fatalf("sensorctl apply-settings: %v\n%s", err, out.String())
	}
	calls, _ := os.ReadFile(a.calls)
	if !strings.HasSuffix(string(calls), "restart sensord.service\n") {
		a.t.Fatalf("the helper asked systemctl %q, want sensord restarted", calls)
	}
}

func (a *appliance) getJSON(path string, v any) {
	a.t.Helper()
	res, err := http.Get("http://" + a.addr + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		a.t.Fatal(err)
	}
}

// settingsView is what the settings page shows.
type settingsView struct {
	Loaded   bool   `json:"loaded"`
	ReadOnly bool   `json:"readonly"`
	Mode     string `json:"mode"`
	Name     string `json:"name"`
	NameOff  bool   `json:"nameOff"`
	SaveShow bool   `json:"saveShown"`
	Status   string `json:"status"`
	Result   string `json:"result"`
	Last     string `json:"last"`
	Outcome  string `json:"outcome"`
	Imager   string `json:"imager"`
	Offset   string `json:"offset"`
	MQTT     string `json:"mqtt"`
}

const settingsJS = `(() => {
  const $ = (id) => document.getElementById(id);
  const f = $('settings-form'), n = $('s-SENSORD_NAME');
  return {
    loaded: !!f && f.dataset.loaded === 'yes', readonly: !!f && f.dataset.readonly === 'yes',
    mode: $('settings-mode') ? $('settings-mode').textContent : '',
    name: n ? n.value : '', nameOff: n ? n.disabled : true,
    saveShown: $('settings-save') ? !$('settings-save').hidden : false,
    status: $('settings-status') ? $('settings-status').textContent : '',
    result: $('settings-status') ? ($('settings-status').dataset.result || '') : '',
    last: $('settings-last') ? $('settings-last').textContent : '',
    outcome: $('settings-last') ? ($('settings-last').dataset.outcome || '') : '',
    imager: $('settings-imager') ? $('settings-imager').textContent : '',
    offset: $('s-SENSORD_TEMP_OFFSET') ? $('s-SENSORD_TEMP_OFFSET').value : '',
    mqtt: $('s-SENSORD_MQTT_URL') ? $('s-SENSORD_MQTT_URL').value : '',
  };
})()`

func waitSettings(t *testing.T, ctx context.Context, what string, cond func(settingsView) bool) settingsView {
	t.Helper()
	var v settingsView
	testutil.Until(t, 20*time.Second, func() bool {
		if err := chromedp.Run(ctx, chromedp.Evaluate(settingsJS, &v)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return cond(v)
	}, func() string { return fmt.Sprintf("%s: the settings page shows %+v", what, v) })
	return v
}

// setField replaces an input's value as typing would.
func setField(id, value string) chromedp.Action {
	return chromedp.SetValue("#"+id, value, chromedp.ByQuery)
}

// startupError is the one line sensord itself prints when it starts with
// env (and -env-errors=exit): the words the page must show.
func startupError(t *testing.T, env ...string) string {
	t.Helper()
	cmd := exec.Command(daemonBinary(t), "-listen", "127.0.0.1:0")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "SENSORD_SENSOR=sim"}, env...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("sensord started with %v", env)
	}
	return strings.TrimSpace(string(out))
}

func TestSettingsPageChangesResetsAndRestoresTheRealDaemon(t *testing.T) {
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	a := newAppliance(t, map[string]string{
		"SENSORD_SENSOR": "sim", "SENSORD_PERIOD": simPeriod, "SENSORD_SIM_TEMP": "20.0",
		"SENSORD_NAME": "kitchen", "SENSORD_OWNER_TOKEN": settingsOwner, "WIFI_SSID": "Home", "WIFI_PASSPHRASE": "correct horse battery",
	})
	ctx := tab(t)
	open(t, ctx, a.d.url("/"))

	// Without the owner's credential the page is read-only.
	v := waitSettings(t, ctx, "the settings loaded", func(v settingsView) bool { return v.Loaded && v.Name == "kitchen" })
	if !v.ReadOnly || !v.NameOff || v.SaveShow || !strings.Contains(v.Mode, "Read-only") {
		t.Errorf("without the owner token the page is not read-only: %+v", v)
	}
	if !strings.Contains(v.Imager, "user name and password are not used") {
		t.Errorf("the page does not say Imager's user and password are not used: %q", v.Imager)
	}
	run(t, ctx, setField("settings-owner", settingsOwner), chromedp.Click("#settings-unlock", chromedp.ByQuery))
	waitSettings(t, ctx, "unlocked", func(v settingsView) bool { return !v.ReadOnly && !v.NameOff && v.SaveShow })

	// A bad value is refused with sensord's own words, and nothing is
	// written.
	before, _ := os.ReadFile(a.conf)
	want := startupError(t, `SENSORD_TEMP_OFFSET=warm`)
	run(t, ctx, setField("s-SENSORD_TEMP_OFFSET", "warm"), chromedp.Click("#settings-save", chromedp.ByQuery))
	v = waitSettings(t, ctx, "the refusal", func(v settingsView) bool { return v.Result == "refused" })
	if v.Status != want {
		t.Errorf("the page says %q, want sensord's own %q", v.Status, want)
	}
	if _, err := os.Lstat(a.spool()); err == nil {
		t.Error("a refused change was spooled")
	}
	if after, _ := os.ReadFile(a.conf); string(after) != string(before) {
		t.Error("a refused change was written")
	}

	// The owner changes the name, the MQTT URL and a calibration offset;
	// after the restart the daemon uses them.
	own := broker.Watch(t, "sensors/attic/temperature")
	run(t, ctx, setField("s-SENSORD_NAME", "attic"), setField("s-SENSORD_MQTT_URL", broker.URL()), setField("s-SENSORD_TEMP_OFFSET", "-0.5"),
		chromedp.Click("#settings-save", chromedp.ByQuery))
	waitSettings(t, ctx, "accepted", func(v settingsView) bool { return v.Result == "accepted" })
	a.applyAndRestart(nil)
	if got := a.values(); got["SENSORD_NAME"] != "attic" || got["SENSORD_MQTT_URL"] != broker.URL() || got["SENSORD_TEMP_OFFSET"] != "-0.5" || got["WIFI_PASSPHRASE"] != "correct horse battery" {
		t.Errorf("sensord.conf holds %v", got)
	}
	v = waitSettings(t, ctx, "applied, the new values shown", func(v settingsView) bool {
		return v.Outcome == "applied" && v.Name == "attic" && v.Offset == "-0.5" && v.MQTT == broker.URL()
	})
	if !strings.HasPrefix(v.Status, "Applied") {
		t.Errorf("status %q", v.Status)
	}
	var latest struct {
		Temperature float64 `json:"temperature"`
	}
	a.getJSON("/api/latest", &latest)
	if latest.Temperature != 19.5 {
		t.Errorf("the reading is %v, want the fixed 20.0 with the -0.5 offset", latest.Temperature)
	}
	m, _ := own.Next(t, 0, "a reading published under the new name", func(mosquittotest.Msg) bool { return true })
	if m.Payload != "19.5" {
		t.Errorf("MQTT carries %q, want 19.5", m.Payload)
	}

	// Download and upload round-trip: the file the page links restores
	// the same settings, secrets (left out of it) kept.
	var href string
	run(t, ctx, chromedp.AttributeValue("#settings-download", "href", &href, nil, chromedp.ByQuery))
	res, err := http.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(file), "correct horse") || strings.Contains(string(file), settingsOwner) {
		t.Error("the download without secrets holds a secret")
	}
	saved := a.values()
	// Change something first, so the restore has something to undo.
	run(t, ctx, setField("s-SENSORD_NAME", "shed"), chromedp.Click("#settings-save", chromedp.ByQuery))
	waitSettings(t, ctx, "accepted", func(v settingsView) bool { return v.Result == "accepted" })
	a.applyAndRestart(nil)
	waitSettings(t, ctx, "renamed", func(v settingsView) bool { return v.Result == "applied" && v.Name == "shed" })
	upload := filepath.Join(t.TempDir(), "sensord-no-secrets.conf")
	os.WriteFile(upload, file, 0o600)
	run(t, ctx, chromedp.SetUploadFiles("#settings-upload", []string{upload}, chromedp.ByQuery), chromedp.Click("#settings-restore", chromedp.ByQuery))
	waitSettings(t, ctx, "restore accepted", func(v settingsView) bool { return v.Result == "accepted" })
	a.applyAndRestart(nil)
	got := a.values()
	for k, want := range saved {
		if got[k] != want {
			t.Errorf("after the round trip %s=%q, want %q", k, got[k], want)
		}
	}
	waitSettings(t, ctx, "restored", func(v settingsView) bool { return v.Result == "applied" && v.Name == "attic" })

	// Reset restores the defaults, keeping the network and the owner.
	run(t, ctx, chromedp.Click("#settings-reset", chromedp.ByQuery))
	waitSettings(t, ctx, "the reset armed", func(v settingsView) bool { return strings.Contains(v.Status, "again") })
	run(t, ctx, chromedp.Click("#settings-reset", chromedp.ByQuery))
	waitSettings(t, ctx, "reset accepted", func(v settingsView) bool { return v.Result == "accepted" })
	a.applyAndRestart(nil)
	got = a.values()
	for _, k := range []string{"SENSORD_NAME", "SENSORD_MQTT_URL", "SENSORD_TEMP_OFFSET", "SENSORD_SIM_TEMP"} {
		if _, set := got[k]; set {
			t.Errorf("after the reset %s is still set", k)
		}
	}
	if got["SENSORD_OWNER_TOKEN"] != settingsOwner || got["WIFI_SSID"] != "Home" {
		t.Errorf("the reset took the owner token or the network: %v", got)
	}
	v = waitSettings(t, ctx, "the defaults shown", func(v settingsView) bool { return v.Outcome == "applied" && v.Name == "" && v.Offset == "" })
	var health struct {
		Name string `json:"name"`
	}
	a.getJSON("/healthz", &health)
	if health.Name == "attic" {
		t.Error("after the reset sensord still uses the name attic")
	}
}

// Until its own change's outcome is in, the page does not say it
// applied: sensord may show an earlier change's outcome meanwhile, here
// one made over HTTP from elsewhere that the page had not seen yet.
func TestSettingsPageWaitsForItsOwnChangesOutcome(t *testing.T) {
	a := newAppliance(t, map[string]string{
		"SENSORD_SENSOR": "sim", "SENSORD_PERIOD": simPeriod, "SENSORD_NAME": "kitchen", "SENSORD_OWNER_TOKEN": settingsOwner,
	})
	ctx := tab(t)
	// Every answer to the page's polls, to know when the sensord started
	// with the change has answered it.
	var answers atomic.Int64
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.HasSuffix(e.Response.URL, "/api/settings") && e.Response.Status == http.StatusOK {
			answers.Add(1)
		}
	})
	run(t, ctx, network.Enable())
	open(t, ctx, a.d.url("/"))
	waitSettings(t, ctx, "the settings loaded", func(v settingsView) bool { return v.Loaded && v.Name == "kitchen" && v.Last == "" })
	run(t, ctx, setField("settings-owner", settingsOwner), chromedp.Click("#settings-unlock", chromedp.ByQuery))
	waitSettings(t, ctx, "unlocked", func(v settingsView) bool { return !v.ReadOnly && v.SaveShow })

	// Another client changes the calibration; the page polls seldom and has
	// not seen it.
	a.d.postAsOwner(t, "/api/settings", settingsOwner, `{"set":{"SENSORD_TEMP_OFFSET":"0.3"}}`, http.StatusAccepted)
	a.applyAndRestart(nil)

	run(t, ctx, setField("s-SENSORD_NAME", "attic"), chromedp.Click("#settings-save", chromedp.ByQuery))
	waitSettings(t, ctx, "accepted", func(v settingsView) bool { return v.Result == "accepted" })
	a.applyAndRestart(func() {
		// sensord runs with the change and the helper has not written
		// its outcome: sensord shows the other client's. The page polls
		// every APPLY_POLL; the third answer from now comes from this
		// sensord after another one from it was shown (a page that stops
		// waiting stops polling fast).
		from := answers.Load()
		v := waitSettings(t, ctx, "the page polled the new sensord", func(v settingsView) bool {
			n := answers.Load() - from
			return n >= 3 || n >= 1 && v.Result != "accepted"
		})
		if !strings.Contains(v.Last, "SENSORD_TEMP_OFFSET") {
			t.Errorf("the page shows %q as the last change, want the other client's", v.Last)
		}
		if v.Result != "accepted" {
			t.Errorf("before its outcome was recorded the page says %q (%s): it took the other client's outcome for its own", v.Status, v.Result)
		}
	})
	v := waitSettings(t, ctx, "applied", func(v settingsView) bool { return v.Result == "applied" && v.Outcome == "applied" })
	if v.Name != "attic" || v.Offset != "0.3" || !strings.Contains(v.Last, "SENSORD_NAME") {
		t.Errorf("after its outcome the page shows %+v, want the name attic, the other client's offset and its own change last", v)
	}
}
