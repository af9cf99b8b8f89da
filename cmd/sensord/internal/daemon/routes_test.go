package daemon

// The HTTP surface in-process: the daemon built as Run builds it, on
// the simulated sensor (the same capture and decode code as the binary),
// its routes mounted on an httptest server, real HTTP and WebSocket
// clients over loopback, and the health window's clock in the test's
// hand. main_test.go keeps what only the real binary shows: flags and
// exit codes, signals, systemd, listeners, TLS.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
	"sensord/sensor/sensors"
)

// shiftClock is the wall clock moved on by what the test advances it:
// the poller stamps readings with the real time, the health window reads
// them on this clock, so advancing it ages every reading at once.
type shiftClock struct{ off atomic.Int64 }

func (c *shiftClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *shiftClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// inproc is one daemon under test.
type inproc struct {
	d     *daemon
	srv   *httptest.Server
	clock *shiftClock
	log   *testutil.Buffer
	ctx   context.Context
	wg    sync.WaitGroup
}

// newInproc builds a daemon on the simulated sensor at -period 100ms
// plus args, and serves its routes. Nothing runs until the test starts
// the loops it needs (runPoller, runBridge).
func newInproc(t *testing.T, args ...string) *inproc {
	t.Helper()
	cfg, warnings, err := ParseConfig(append([]string{"-sensor", "sim", "-period", "100ms"}, args...),
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Build = "dev"
	p := &inproc{clock: &shiftClock{}, log: &testutil.Buffer{}}
	log := slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx = ctx
	dev, err := sensors.Open(ctx, cfg.sensorConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	p.d, err = newDaemon(cfg, dev, warnings, log, p.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewServer(p.d.routes())
	t.Cleanup(func() {
		cancel()
		p.wg.Wait()
		shut, done := context.WithTimeout(context.Background(), testutil.Scale(10*time.Second))
		defer done()
		p.d.close(shut)
		p.srv.Close()
		dev.Halt()
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.log.String())
		}
	})
	return p
}

// runPoller starts the sensor loop and its watch, as the daemon runs
// them; they end with the test.
func (p *inproc) runPoller() {
	p.wg.Go(func() { p.d.poller.Run(p.ctx, p.d.publish) })
	p.wg.Go(func() { p.d.watch.Run(p.ctx) })
}

// judge has the sensor watch judge once a read returned after now: a
// test that moved the clock on gets the verdict on a live sensor loop, not
// on one whose last read seems to have hung for the time it skipped.
func (p *inproc) judge(t *testing.T) {
	t.Helper()
	at := p.clock.now()
	testutil.Until(t, 30*time.Second, func() bool { return !p.d.poller.Progress().Before(at) },
		func() string { return fmt.Sprintf("no read returned since %s (last %s)", at, p.d.poller.Progress()) })
	p.d.watch.Check()
}

func (p *inproc) url(path string) string { return p.srv.URL + path }
func (p *inproc) ws(path string) string  { return "ws" + strings.TrimPrefix(p.srv.URL, "http") + path }

// healthz is /healthz's status and report.
func (p *inproc) healthz(t *testing.T) (int, health.Report) {
	t.Helper()
	var h health.Report
	code := getJSON(t, p.url("/healthz"), &h)
	return code, h
}

// waitReadings waits until the poller has made n good readings.
func (p *inproc) waitReadings(t *testing.T, n uint64) {
	t.Helper()
	testutil.Until(t, 30*time.Second, func() bool { return p.d.poller.Stats().Successes >= n },
		func() string { return fmt.Sprintf("%d good readings, want %d", p.d.poller.Stats().Successes, n) })
}

func TestHealthzFollowsTheSensorsVerdict(t *testing.T) {
	t.Parallel()
	t.Run("a fresh daemon is starting, not ok, until a reading comes", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t)
		if code, h := p.healthz(t); code != http.StatusOK || h.Status != health.StatusStarting || h.Reason != "no good reading yet" || h.Sensor.State != "waiting" {
			t.Errorf("/healthz %d %q %q sensor %q", code, h.Status, h.Reason, h.Sensor.State)
		}
	})
	t.Run("readings make it ok", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t)
		p.runPoller()
		p.waitReadings(t, 2)
		p.judge(t)
		if code, h := p.healthz(t); code != http.StatusOK || h.Status != health.StatusOK || h.Sensor.State != health.SensorOK ||
			h.Sensor.Successes < 2 || h.Sensor.LastSuccess == 0 {
			t.Fatalf("/healthz with readings: %d %+v", code, h)
		}
	})
	t.Run("a sensor that never answered is a 503 past the start-up grace, in the verdict's words", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t, "-sim-no-response")
		p.runPoller()
		testutil.Until(t, 30*time.Second, func() bool { return p.d.poller.Stats().Errors["timeout"] > 0 },
			func() string { return fmt.Sprintf("no timeout counted: %+v", p.d.poller.Stats()) })
		p.clock.advance(2 * time.Second)
		p.judge(t)
		code, h := p.healthz(t)
		if code != http.StatusServiceUnavailable || h.Status != health.StatusUnhealthy || h.Sensor.State != health.SensorFailing ||
			h.Reason != h.Sensor.Summary || !strings.HasPrefix(h.Reason, "failing: no good reading for ") || h.Sensor.Errors["timeout"] == 0 {
			t.Errorf("/healthz %d %+v", code, h)
		}
	})
	t.Run("a sensor that stops answering is degraded, then a 503 once the verdict is failing", func(t *testing.T) {
		t.Parallel()
		p := newInproc(t, "-sim-stop-after", "3")
		p.runPoller()
		testutil.Until(t, 30*time.Second, func() bool { st := p.d.poller.Stats(); return st.Successes >= 3 && st.Reads > st.Successes },
			func() string { return fmt.Sprintf("no failed read after 3 good ones: %+v", p.d.poller.Stats()) })
		p.clock.advance(10 * time.Second)
		p.judge(t)
		code, h := p.healthz(t)
		if code != http.StatusOK || h.Status != health.StatusDegraded || h.Sensor.State != health.SensorDegraded ||
			h.Reason != h.Sensor.Summary || !strings.HasPrefix(h.Reason, "degraded: no good reading for ") {
			t.Errorf("/healthz 10 s after the last good reading: %d %q %q (sensor %q)", code, h.Status, h.Reason, h.Sensor.State)
		}
		p.clock.advance(3 * time.Minute)
		p.judge(t)
		code, h = p.healthz(t)
		if code != http.StatusServiceUnavailable || h.Status != health.StatusUnhealthy || h.Sensor.State != health.SensorFailing ||
			h.Reason != h.Sensor.Summary || !strings.HasPrefix(h.Reason, "failing: no good reading for 3m") {
			t.Errorf("/healthz over 3 minutes after the last good reading: %d %q %q (sensor %q)", code, h.Status, h.Reason, h.Sensor.State)
		}
	})
}

// halfFailingReads is how many reads TestHealthzHoldsOneStatusWhileHalfTheReadsFail
// watches: at -period 100ms and a 50 % error rate, three periods and a
// second without a good reading (the window) come about once in 20 reads.
const halfFailingReads = 150

// TestHealthzHoldsOneStatusWhileHalfTheReadsFail polls /healthz while the
// sensor fails half its reads: the status code must not flip to 503 and
// back whenever a few reads in a row fail, as the verdict, the banner and
// the journal do not.
func TestHealthzHoldsOneStatusWhileHalfTheReadsFail(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-sim-error-rate", "0.5")
	p.runPoller()
	p.waitReadings(t, 1)
	codes := map[int]int{}
	var worst health.Report
	longest := time.Duration(0)
	testutil.Until(t, 120*time.Second, func() bool {
		code, h := p.healthz(t)
		codes[code]++
		if code != http.StatusOK {
			worst = h
		}
		if h.Sensor.LastSuccess > 0 {
			longest = max(longest, time.Duration(time.Now().UnixMilli()-h.Sensor.LastSuccess)*time.Millisecond)
		}
		return p.d.poller.Stats().Reads >= halfFailingReads
	}, func() string { return fmt.Sprintf("%d reads, want %d", p.d.poller.Stats().Reads, halfFailingReads) })
	t.Logf("/healthz codes over %d reads: %v; longest wait for a good reading seen %s", p.d.poller.Stats().Reads, codes, longest)
	if len(codes) != 1 || codes[http.StatusOK] == 0 {
		t.Errorf("/healthz answered %v, want 200 only; a non-200: %q %q (sensor %q)", codes, worst.Status, worst.Reason, worst.Sensor.State)
	}
}

func TestHealthzIsDegradedNotFailedWhileTheBrokerIsDown(t *testing.T) {
	t.Parallel()
	// Nothing listens on a port just closed: every connect is refused.
	p := newInproc(t, "-name", "cellar", "-mqtt-url", "mqtt://"+freeAddr(t))
	p.runPoller()
	p.wg.Go(func() { p.d.bridge.Run(p.ctx) })
	p.waitReadings(t, 1)
	p.judge(t)
	var code int
	var h health.Report
	testutil.Until(t, 30*time.Second, func() bool {
		code, h = p.healthz(t)
		return h.MQTT != nil && h.MQTT.State == "disconnected"
	}, func() string { return fmt.Sprintf("mqtt %+v", h.MQTT) })
	if code != http.StatusOK || h.Status != health.StatusDegraded || !strings.HasPrefix(h.Reason, "mqtt disconnected: ") || h.Name != "cellar" {
		t.Errorf("/healthz %d %q %q name %q", code, h.Status, h.Reason, h.Name)
	}
	// The watchdog's gate ignores the broker: a dead one never gets the
	// daemon restarted.
	if err := p.d.healthy(); err != nil {
		t.Errorf("healthy() = %v with the broker down", err)
	}
}

func TestRoutesForScriptsAndMonitors(t *testing.T) {
	t.Parallel()
	p := newInproc(t)
	if code := getJSON(t, p.url("/api/latest"), &map[string]any{}); code != http.StatusNotFound {
		t.Errorf("/api/latest before a reading: %d, want 404", code)
	}
	p.runPoller()
	p.waitReadings(t, 3)

	var latest map[string]any
	if code := getJSON(t, p.url("/api/latest"), &latest); code != 200 || latest["type"] != "sensor_update" || latest["absolute_humidity"] == nil {
		t.Errorf("/api/latest %d %v", code, latest)
	}
	var hist []struct{ Timestamp int64 }
	if code := getJSON(t, p.url("/api/history"), &hist); code != 200 || len(hist) < 3 {
		t.Fatalf("/api/history %d with %d readings", code, len(hist))
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].Timestamp <= hist[i-1].Timestamp {
			t.Errorf("history not oldest first at %d: %d then %d", i, hist[i-1].Timestamp, hist[i].Timestamp)
		}
	}
	var bad map[string]string
	if code := getJSON(t, p.url("/api/history?step=soon"), &bad); code != http.StatusBadRequest || !strings.Contains(bad["error"], "step") {
		t.Errorf("/api/history?step=soon: %d %v", code, bad)
	}

	resp, body := get(t, nil, p.url("/metrics"))
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/metrics Content-Type %q Cache-Control %q", ct, resp.Header.Get("Cache-Control"))
	}
	for _, want := range []string{
		"sensord_sensor_reads_total ", `sensord_sensor_errors_total{kind="checksum"} `,
		`sensord_clients{path="/ws/sensors"} `, `sensord_messages_sent_total{path="/ws/sensors"} `,
		`sensord_messages_lost_total{path="/ws/dashboard"} `, `sensord_write_stalls_total{path="/ws/sensors"} `,
		"sensord_temperature_celsius ", "sensord_history_requests_refused_total 1\n", `sensord_build_info{version="dev"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^sensord_uptime_seconds \d`).MatchString(body) {
		t.Errorf("/metrics lacks the uptime")
	}

	resp, page := get(t, nil, p.url("/"))
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(page), "<!doctype html") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("/ answered %d %.80q", resp.StatusCode, page)
	}
	if resp, _ := get(t, nil, p.url("/nope")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", p.url("/healthz"), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %v %v, want 405", err, resp)
	} else {
		resp.Body.Close()
	}
}

func TestTokenGuardsEveryRoute(t *testing.T) {
	t.Parallel()
	const tok = `s3;"c\rét`
	p := newInproc(t, "-token", tok)
	p.runPoller()
	for _, path := range []string{"/healthz", "/api/latest", "/api/history", "/metrics", "/", "/app.js"} {
		if resp, body := get(t, nil, p.url(path)); resp.StatusCode != http.StatusUnauthorized ||
			resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error"`) {
			t.Errorf("%s without the token: %d %s %q, want a JSON 401", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER \t " + tok + "  "} {
			if resp, _ := get(t, nil, p.url(path), "Authorization", h); resp.StatusCode == http.StatusUnauthorized {
				t.Errorf("%s with %q: 401", path, h)
			}
		}
		if resp, _ := get(t, nil, p.url(path), "Authorization", "Bearer wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/ws/sensors", "/ws/api", "/ws/dashboard"} {
		if _, resp, err := websocket.DefaultDialer.Dial(p.ws(path), nil); err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("%s without the token: %v, want 401", path, err)
		}
		c, _, err := websocket.DefaultDialer.Dial(p.ws(path), http.Header{"Authorization": {"bearer " + tok}})
		if err != nil {
			t.Errorf("%s with the bearer token: %v", path, err)
			continue
		}
		c.Close()
	}
	c := dial(t, p.ws("/ws/sensors?access_token="+strings.NewReplacer(";", "%3B", `"`, "%22", `\`, "%5C", "é", "%C3%A9").Replace(tok)))
	if f := readText(t, c, 10*time.Second); !readingRE.MatchString(f) {
		t.Errorf("with ?access_token: %q", f)
	}

	// The browser's path: ?access_token= sets a cookie that then opens
	// the assets and the WebSockets, whatever characters the token has.
	resp, _ := get(t, nil, p.url("/?access_token="+strings.NewReplacer(";", "%3B", `"`, "%22", `\`, "%5C", "é", "%C3%A9").Replace(tok)))
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 {
		t.Fatalf("page with ?access_token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	ck := resp.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Errorf("cookie %+v, want HttpOnly, SameSite=Strict, Path=/", ck)
	}
	cookie := ck.Name + "=" + ck.Value
	if resp, body := get(t, nil, p.url("/healthz"), "Cookie", cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with the cookie: %d %s", resp.StatusCode, body)
	}
	ws, _, err := websocket.DefaultDialer.Dial(p.ws("/ws/sensors"), http.Header{"Cookie": {cookie}})
	if err != nil {
		t.Fatalf("/ws/sensors with the cookie: %v", err)
	}
	ws.Close()

	// Without it a browser gets a page with a field for the token.
	resp, body := get(t, nil, p.url("/"), "Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `name="access_token"`) || resp.Header.Get("WWW-Authenticate") != `Bearer realm="sensord"` {
		t.Errorf("browser without token: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestAllowedHostsShutsOutOtherHostNames(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-allowed-hosts", "sensord.local,127.0.0.1")
	addr := strings.TrimPrefix(p.srv.URL, "http://")
	for host, want := range map[string]int{
		addr:                      http.StatusOK,
		"SENSORD.local.":          http.StatusOK,
		"rebind.attacker.example": http.StatusMisdirectedRequest,
		"rebind.attacker.example:" + strings.Split(addr, ":")[1]: http.StatusMisdirectedRequest,
	} {
		if resp, body := get(t, nil, p.url("/api/history"), "Host", host); resp.StatusCode != want {
			t.Errorf("Host %q: %d %s, want %d", host, resp.StatusCode, body, want)
		}
	}
	_, body := get(t, nil, p.url("/metrics"))
	if !strings.Contains(body, "sensord_hosts_refused_total 2\n") {
		t.Errorf("metrics do not count the 2 refused hosts:\n%s", body)
	}
}

func TestAPIAnswersOnlyTheAskingClientAndKeepsItOpen(t *testing.T) {
	t.Parallel()
	p := newInproc(t)
	p.runPoller()
	asker := dial(t, p.ws("/ws/api"))
	other := dial(t, p.ws("/ws/api"))

	send := func(s string) string {
		t.Helper()
		if err := asker.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
		return readText(t, asker, 10*time.Second)
	}
	var st struct {
		Status string   `json:"status"`
		Uptime *float64 `json:"uptime"`
		Memory *uint64  `json:"memory"`
	}
	if got := send(`{"action":"get_status"}`); json.Unmarshal([]byte(got), &st) != nil || st.Status != "online" || st.Uptime == nil || st.Memory == nil || *st.Memory == 0 {
		t.Errorf("get_status: %q", got)
	}
	p.waitReadings(t, 1)
	if got := send(`{"action":"get_latest"}`); !readingRE.MatchString(got) {
		t.Errorf("get_latest: %q", got)
	}
	for _, req := range []string{`{"action":"reboot"}`, `not json`, `{"no":"action"}`, `[1,2]`} {
		var e struct{ Error string }
		if got := send(req); json.Unmarshal([]byte(got), &e) != nil || e.Error == "" {
			t.Errorf("%s: got %q, want {\"error\":...}", req, got)
		}
	}
	// A burst sent before reading any reply: every request is answered,
	// in order, none overflows the reply queue.
	const burst = 100
	for range burst {
		if err := asker.WriteMessage(websocket.TextMessage, []byte(`{"action":"get_status"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		if f := readText(t, asker, 10*time.Second); !strings.Contains(f, `"status":"online"`) {
			t.Fatalf("reply %d of the burst: %q", i, f)
		}
	}
	// The other client was asked nothing, so whatever it reads first
	// must not be a reply: a ping the test sends itself comes back
	// first, proving the connection was read past any reply.
	other.SetPongHandler(func(string) error { return errPong })
	if err := other.WriteControl(websocket.PingMessage, nil, time.Now().Add(testutil.Scale(5*time.Second))); err != nil {
		t.Fatal(err)
	}
	other.SetReadDeadline(time.Now().Add(testutil.Scale(10 * time.Second)))
	if _, b, err := other.ReadMessage(); err != errPong {
		t.Errorf("the client that did not ask read %q (%v), want only the pong", b, err)
	}
}

// errPong ends a read when the pong arrives.
var errPong = errors.New("pong")

func TestWholeMsgSendsTopicPayloadAndMsgidButNeverTheSession(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-wholemsg", "-topic", "lab/dht22")
	p.runPoller()
	c := dial(t, p.ws("/ws/sensors"))
	f := readText(t, c, 10*time.Second)
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(f), &m); err != nil {
		t.Fatalf("%q: %v", f, err)
	}
	if string(m["topic"]) != `"lab/dht22"` {
		t.Errorf("topic %s, want lab/dht22", m["topic"])
	}
	if !readingRE.Match(m["payload"]) {
		t.Errorf("payload %s is not a sensor_update", m["payload"])
	}
	if len(m["_msgid"]) < 3 {
		t.Errorf("no _msgid in %q", f)
	}
	if _, ok := m["_session"]; ok {
		t.Errorf("wholemsg frame leaks the session: %q", f)
	}
}

func TestHandshakeErrorsSayWhy(t *testing.T) {
	t.Parallel()
	p := newInproc(t)
	addr := strings.TrimPrefix(p.srv.URL, "http://")
	t.Run("an unsupported version learns 13", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, "GET /ws/sensors HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", addr)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Fatalf("%s, Sec-WebSocket-Version %q; want 400 and 13", resp.Status, resp.Header.Get("Sec-WebSocket-Version"))
		}
	})
	for name, q := range map[string]string{
		"too many filters":            strings.Repeat("topic=sensors/%23&", 33),
		"a query that does not parse": "topic=sensors/%23;x",
		"a bad escape":                "topic=%zz",
	} {
		t.Run(name+" is refused with the reason", func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(p.ws("/ws/sensors?"+q), nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("dial: %v %v, want 400", err, resp)
			}
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "broadcast: ") {
				t.Errorf("no reason in %q", b)
			}
		})
	}
}

func TestClientModeServesNoSensorsStream(t *testing.T) {
	t.Parallel()
	p := newInproc(t, "-mode", "client", "-url", "ws://127.0.0.1:1/ws/in")
	if _, resp, err := websocket.DefaultDialer.Dial(p.ws("/ws/sensors"), nil); err == nil || resp == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		t.Errorf("/ws/sensors in client mode: %v %v, want refused", err, resp)
	}
	_, h := p.healthz(t)
	if h.Client == nil || h.Client.URL == "" {
		t.Errorf("/healthz in client mode lacks the client's state: %+v", h.Client)
	}
}
