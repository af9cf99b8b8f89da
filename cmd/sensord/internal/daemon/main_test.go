package daemon

// These tests run the real sensord binary, built once in TestMain with the
// race detector, against real WebSocket clients, a real notify socket and a
// real inherited listener: what only a process shows (flags and exit
// codes, signals, systemd, listeners). The answers of the routes are
// tested in-process, in routes_test.go. The sensor is the simulation,
// which plays the DHT22 waveform through the same capture and decode code
// as the hardware.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sensord/cmd/sensord/internal/health"
	"sensord/internal/testutil"
	"sensord/sensor"
)

// mainPackage is the command these tests build and run: package main
// wires this package.
const mainPackage = "sensord/cmd/sensord"

var binary string

func TestMain(m *testing.M) {
	// The in-process daemons of routes_test.go must not notify the
	// systemd that may run this test; the binaries get their own
	// environment.
	os.Unsetenv("NOTIFY_SOCKET")
	dir, err := os.MkdirTemp("", "sensord-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = testutil.Build(dir, mainPackage, "sensord", true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// readingRE is the exact sensor_update shape, key order included: programs
// written against Node-RED's reference flow may compare strings.
var readingRE = regexp.MustCompile(`^\{"type":"sensor_update","temperature":-?\d+(\.\d)?,"humidity":\d+(\.\d)?,"timestamp":\d{13}\}$`)

// proc is one sensord process started by a test: its command, the address
// it listens on and what it wrote to stderr.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr testutil.Buffer // stdout too
	done   chan struct{}
	err    error
}

func (p *proc) logs() string { return p.stderr.String() }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs sensord with the simulated sensor on a free loopback port plus
// args, and waits until it answers HTTP. env entries are added to a clean
// environment (no NOTIFY_SOCKET or SENSORD_* leaks in from the test runner).
//
// freeAddr's port is free when it is picked, not when sensord binds it:
// another test may take it in between. A start that loses that race is
// tried again on a new port, up to startTries times.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startWith(t, binary, env, append([]string{"-sensor", "sim", "-period", "100ms"}, args...)...)
}

// startWith runs bin with args and -listen on a free loopback port, and
// waits until it answers HTTP.
func startWith(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	for try := 1; ; try++ {
		addr := freeAddr(t)
		p := startCmd(t, exec.Command(bin, append(args, "-listen", addr)...), env)
		p.addr = addr
		exited := p.waitUp(t)
		if exited && try < startTries && strings.Contains(p.logs(), "address already in use") {
			continue
		}
		if exited {
			t.Fatalf("sensord exited early: %v\n%s", p.err, p.logs())
		}
		return p
	}
}

// startTries bounds start's tries at a free port.
const startTries = 3

func startCmd(t *testing.T, cmd *exec.Cmd, env []string) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stderr = &p.stderr
	cmd.Stdout = &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("sensord output:\n%s", p.logs())
		}
	})
	return p
}

func (p *proc) waitHTTP(t *testing.T) {
	t.Helper()
	if p.waitUp(t) {
		t.Fatalf("sensord exited early: %v\n%s", p.err, p.logs())
	}
}

// waitUp waits until p answers HTTP or exits, and reports whether it
// exited.
func (p *proc) waitUp(t *testing.T) (exited bool) {
	t.Helper()
	testutil.Until(t, 30*time.Second, func() bool {
		select {
		case <-p.done:
			exited = true
			return true
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, func() string { return fmt.Sprintf("sensord did not answer on %s\n%s", p.addr, p.logs()) })
	return exited
}

// waitReadings waits until the daemon retains at least n readings.
func (p *proc) waitReadings(t *testing.T, n int) {
	t.Helper()
	var hist []json.RawMessage
	testutil.Until(t, 30*time.Second, func() bool {
		hist = nil
		getJSON(t, "http://"+p.addr+"/api/history", &hist)
		return len(hist) >= n
	}, func() string { return fmt.Sprintf("%d readings, want %d\n%s", len(hist), n, p.logs()) })
}

// stop signals the process and returns its exit code (-1 when killed).
func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(testutil.Scale(10 * time.Second)):
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("sensord ignored %v for 10 s", sig)
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readText reads one text frame within (scaled: see testutil.Scale).
func readText(t *testing.T, c *websocket.Conn, within time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testutil.Scale(within)))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("frame type %d, want text", typ)
	}
	return string(b)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, body := get(t, http.DefaultClient, url)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, body)
	}
	return resp.StatusCode
}

func TestBadFlagsExitTwoWithOneLineNamingTheFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"an unknown sensor", []string{"-sensor", "dht11"}, nil, "-sensor"},
		{"a dht22 period below 2 s", []string{"-sensor", "dht22", "-period", "1s"}, nil, "-period"},
		{"a sim period below 10 ms", []string{"-sensor", "sim", "-period", "5ms"}, nil, "-period"},
		{"a period that is not a duration", []string{"-period", "fast"}, nil, "-period"},
		{"client mode without a URL", []string{"-sensor", "sim", "-mode", "client"}, nil, "-url"},
		{"an http URL for client mode", []string{"-sensor", "sim", "-mode", "client", "-url", "http://x/"}, nil, "-url"},
		{"an unknown mode", []string{"-mode", "relay"}, nil, "-mode"},
		{"a listen address without a port", []string{"-sensor", "sim", "-listen", "localhost"}, nil, "-listen"},
		{"an error rate above one", []string{"-sensor", "sim", "-sim-error-rate", "2"}, nil, "-sim-error-rate"},
		{"a topic with a wildcard", []string{"-sensor", "sim", "-topic", "sensors/#"}, nil, "-topic"},
		{"an unknown flag", []string{"-colour", "red"}, nil, "-colour"},
		{"a bad value from the environment", nil, []string{"SENSORD_PERIOD=soon"}, "SENSORD_PERIOD"},
		{"a bad sensor from the environment", nil, []string{"SENSORD_SENSOR=thermo"}, "SENSORD_SENSOR"},
		{"a bad -env-errors", []string{"-env-errors", "ignore"}, nil, "-env-errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, tt.args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; stderr %q", err, stderr.String())
			}
			out := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(out, "\n") || !strings.HasPrefix(out, "sensord: ") || !strings.Contains(out, tt.want) {
				t.Errorf("stderr %q, want one line starting sensord: and naming %s", out, tt.want)
			}
		})
	}
}

func TestVersionPrintsAndExits(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "-version").Output()
	if err != nil || !strings.HasPrefix(string(out), "sensord ") {
		t.Fatalf("-version: %q, %v", out, err)
	}
}

func TestSensorsStreamBroadcastsEveryReadingToEveryClient(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	a := dial(t, "ws://"+p.addr+"/ws/sensors")
	b := dial(t, "ws://"+p.addr+"/ws/sensors")
	// The late joiner's replay may differ between a and b; after it, both
	// follow the same ring, so their timestamps agree from some frame on.
	seen := map[string]int{}
	for range 8 {
		for _, c := range []*websocket.Conn{a, b} {
			f := readText(t, c, 3*time.Second)
			if !readingRE.MatchString(f) {
				t.Fatalf("frame %q is not a sensor_update", f)
			}
			seen[f]++
		}
	}
	both := 0
	for _, n := range seen {
		if n == 2 {
			both++
		}
	}
	if both < 6 {
		t.Errorf("only %d of 8 readings reached both clients: %v", both, seen)
	}
}

// hubReadingRE is a reading on /ws/dashboard: the sensor_update keys, then
// the values derived from it, so the page computes none.
var hubReadingRE = regexp.MustCompile(`^\{"type":"sensor_update","temperature":-?\d+(\.\d)?,"humidity":\d+(\.\d)?,"timestamp":\d{13},"dew_point":(-?\d+(\.\d)?|null),"absolute_humidity":\d+(\.\d)?\}$`)

// checkDerived checks a hub reading's derived values against sensor's.
func checkDerived(t *testing.T, frame string) {
	t.Helper()
	var f struct {
		Temperature, Humidity float64
		DewPoint              *float64 `json:"dew_point"`
		AbsoluteHumidity      float64  `json:"absolute_humidity"`
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatalf("%s: %v", frame, err)
	}
	deci := func(v float64) sensor.Deci { return sensor.Deci(math.Round(v * 10)) }
	temp, hum := deci(f.Temperature), deci(f.Humidity)
	dp, ok := sensor.DewPoint(temp, hum)
	ah := sensor.AbsoluteHumidity(temp, hum)
	if ok != (f.DewPoint != nil) || (ok && deci(*f.DewPoint) != dp) || deci(f.AbsoluteHumidity) != ah {
		t.Errorf("%s: want dew point %s (exists: %v), absolute humidity %s", frame, dp, ok, ah)
	}
}

func TestDashboardHubCarriesReadingsAndSystemStats(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	c := dial(t, "ws://"+p.addr+"/ws/dashboard")
	var readings, system int
	deadline := time.Now().Add(2*systemInterval + 2*time.Second)
	for system == 0 && time.Now().Before(deadline) {
		f := readText(t, c, time.Until(deadline))
		switch {
		case hubReadingRE.MatchString(f):
			checkDerived(t, f)
			readings++
		case strings.HasPrefix(f, `{"type":"system"`):
			var s systemMsg
			if err := json.Unmarshal([]byte(f), &s); err != nil || s.Memory <= 0 || s.Memory > 100 || s.CPU < 0 || s.Timestamp < 1e12 {
				t.Errorf("system message %q", f)
			}
			system++
		default:
			t.Errorf("unexpected frame %q", f)
		}
	}
	if readings == 0 || system == 0 {
		t.Errorf("got %d readings and %d system messages", readings, system)
	}
}

func TestSIGTERMSendsGoingAwayToEveryClientAndExitsZero(t *testing.T) {
	t.Parallel()
	p := start(t, nil)
	var conns []*websocket.Conn
	for _, path := range []string{"/ws/sensors", "/ws/sensors", "/ws/api", "/ws/dashboard"} {
		conns = append(conns, dial(t, "ws://"+p.addr+path))
	}
	readText(t, conns[0], 3*time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(testutil.Scale(5 * time.Second)))
		var err error
		for err == nil {
			_, _, err = c.ReadMessage()
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client %d: %v, want close 1001", i, err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatal("sensord did not exit after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func TestBadSettingsFromTheEnvironmentAreReportedAndDefaultedUnderWarn(t *testing.T) {
	t.Parallel()
	p := start(t, []string{"SENSORD_ENV_ERRORS=warn", "SENSORD_SIM_ERROR_RATE=lots", "SENSORD_TOPIC=a/#"})
	var h health.Report
	getJSON(t, "http://"+p.addr+"/healthz", &h)
	joined := strings.Join(h.Warnings, "\n")
	for _, want := range []string{"SENSORD_SIM_ERROR_RATE", "SENSORD_TOPIC"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings %q lack %s", h.Warnings, want)
		}
	}
	c := dial(t, "ws://"+p.addr+"/ws/sensors?topic=sensors/dht22")
	if f := readText(t, c, 3*time.Second); !readingRE.MatchString(f) {
		t.Errorf("the default topic does not stream: %q", f)
	}
	if !strings.Contains(p.logs(), "SENSORD_TOPIC") {
		t.Errorf("the log does not name the bad setting:\n%s", p.logs())
	}
}

// collector is a WebSocket server that hands every message it reads to got,
// dropping what got has no room for: the remote end of client mode.
func collector(got chan<- string) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			select {
			case got <- string(b):
			default:
			}
		}
	})
}

func TestClientModeSendsReadingsToTheRemoteURL(t *testing.T) {
	t.Parallel()
	got := make(chan string, 16)
	remote := httptest.NewServer(collector(got))
	defer remote.Close()
	start(t, nil, "-mode", "client", "-url", "ws"+strings.TrimPrefix(remote.URL, "http")+"/ws/in")
	for range 3 {
		select {
		case f := <-got:
			if !readingRE.MatchString(f) {
				t.Errorf("remote got %q", f)
			}
		case <-time.After(testutil.Scale(5 * time.Second)):
			t.Fatal("the remote got no reading")
		}
	}
}

func TestSystemdNotifyReadyWatchdogUntilHangAndStopping(t *testing.T) {
	t.Parallel()
	sock, notes := testutil.NotifySocket(t)
	// The hang counts from the sensor's opening, before READY: long
	// enough that a race-built binary starting slowly on a busy machine
	// still pings a few times first.
	const hang = 6 * time.Second
	begin := time.Now()
	p := start(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000"}, "-sim-hang-after", hang.String())

	var ready bool
	var pings []time.Time
	var status string
	deadline := time.After(hang + 10*time.Second)
collect:
	for {
		select {
		case n := <-notes:
			switch {
			case n.Text == "READY=1":
				ready = true
			case n.Text == "WATCHDOG=1":
				pings = append(pings, n.At)
			case strings.HasPrefix(n.Text, "STATUS="):
				status = n.Text
			}
		case <-deadline:
			break collect
		}
	}
	if !ready {
		t.Error("no READY=1")
	}
	if !strings.Contains(status, "clients") {
		t.Errorf("STATUS %q lacks the client count", status)
	}
	if len(pings) < 4 {
		t.Fatalf("only %d watchdog pings", len(pings))
	}
	// WATCHDOG_USEC=1s: pings every 500 ms while healthy.
	span := pings[len(pings)-1].Sub(pings[0])
	if avg := span / time.Duration(len(pings)-1); avg < 350*time.Millisecond || avg > 700*time.Millisecond {
		t.Errorf("pings every %v on average, want about 500ms", avg)
	}
	// The sim hangs 6 s after it opens; the daemon calls the loop stuck
	// 2.7 s after the last read returned (back-off 500 ms + 2 periods +
	// 2 s), so pings stop within a few seconds of the hang and stay
	// stopped. The slack covers a slow start of the race-built binary.
	last := pings[len(pings)-1].Sub(begin)
	if last < hang || last > hang+6*time.Second {
		t.Errorf("last ping %v after start, want between %v and %v", last, hang, hang+6*time.Second)
	}
	if tail := time.Since(pings[len(pings)-1]); tail < 3*time.Second {
		t.Errorf("pings resumed: the last one was only %v ago", tail)
	}
	if !strings.Contains(p.logs(), "stuck") {
		t.Errorf("no log line says why pings stopped:\n%s", p.logs())
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	timeout := time.After(shutdownTimeout + 2*time.Second)
	for {
		select {
		case n := <-notes:
			if n.Text == "STOPPING=1" {
				select {
				case <-p.done:
				case <-time.After(shutdownTimeout + 2*time.Second):
					t.Fatal("no exit after STOPPING=1")
				}
				if code := p.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("exit %d after SIGTERM, want 0", code)
				}
				return
			}
		case <-timeout:
			t.Fatal("no STOPPING=1 after SIGTERM")
		}
	}
}

func TestSocketActivationServesOnTheInheritedListener(t *testing.T) {
	t.Parallel()
	f, addr := inherit(t)
	// LISTEN_PID must be the daemon's own pid: the shell sets it to its own
	// and execs, keeping the pid. -listen names a port nobody listens on.
	unused := freeAddr(t)
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`,
		binary, "-sensor", "sim", "-period", "100ms", "-listen", unused)
	cmd.ExtraFiles = []*os.File{f}
	p := startCmd(t, cmd, nil)
	p.addr = addr
	p.waitHTTP(t)
	c := dial(t, "ws://"+p.addr+"/ws/sensors")
	if fr := readText(t, c, 3*time.Second); !readingRE.MatchString(fr) {
		t.Errorf("%q", fr)
	}
	if _, err := net.DialTimeout("tcp", unused, time.Second); err == nil {
		t.Errorf("sensord also bound -listen %s despite socket activation", unused)
	}
	sc := bufio.NewScanner(strings.NewReader(p.logs()))
	activated := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "socket_activated=true") {
			activated = true
		}
	}
	if !activated {
		t.Errorf("the log does not say the socket was inherited:\n%s", p.logs())
	}
}
