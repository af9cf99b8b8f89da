package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sensord/broadcast/mqtt/mosquittotest"
)

// Fleet test sizes: the 50 Pis, each with a short period, on one
// broker, and the window CPU is measured over.
const (
	fleetSize    = 50
	fleetPeriod  = time.Second
	fleetShowBy  = 10 * time.Second // every device on the hub's dashboard within this
	fleetMeasure = 20 * time.Second
)

// TestFleetOfFiftyOnOneBrokerShowsOnOneDashboard runs 50 sensord processes
// (simulated sensors) publishing to one Mosquitto, and one more that
// subscribes sensors/#: every one of the 50 must show on its /ws/dashboard
// within 10 s. It logs the broker's and the subscriber's CPU per message
// (BENCHMARKS.md). Not parallel: the CPU figures want the machine to
// itself as far as this package goes. The processes run a build without
// the race detector, which would multiply their CPU and memory by ten.
func TestFleetOfFiftyOnOneBrokerShowsOnOneDashboard(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sensord")
	if out, err := exec.Command("go", "build", "-o", bin, mainPackage).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	broker := mosquittotest.Start(t, mosquittotest.Opts{})
	status := broker.Watch(t, "sensors/+/status")
	var pubs []*proc
	for i := range fleetSize {
		pubs = append(pubs, startWith(t, bin, nil, "-sensor", "sim", "-period", fleetPeriod.String(),
			"-name", fmt.Sprintf("pi-%02d", i), "-mqtt-url", broker.URL(), "-mqtt-discovery", "", "-mqtt-subscribe", ""))
	}
	online := map[string]bool{}
	for i := 0; len(online) < fleetSize; {
		m, j := status.Next(t, i, fmt.Sprintf("online from all %d (have %d)", fleetSize, len(online)),
			func(m mosquittotest.Msg) bool { return m.Payload == "online" })
		online[m.Topic] = true
		i = j + 1
	}

	begin := time.Now()
	hub := startWith(t, bin, nil, "-sensor", "sim", "-period", "2s",
		"-name", "hub", "-mqtt-url", broker.URL(), "-mqtt-discovery", "")
	c := dial(t, "ws://"+hub.addr+"/ws/dashboard")
	seen := map[string]bool{}
	for len(seen) < fleetSize && time.Since(begin) < fleetShowBy {
		var m struct{ Type, Source, Metric, Value string }
		if err := json.Unmarshal([]byte(readText(t, c, fleetShowBy)), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "mqtt" && strings.HasPrefix(m.Source, "pi-") && m.Metric == "temperature" {
			seen[m.Source] = true
		}
	}
	took := time.Since(begin)
	if len(seen) < fleetSize {
		t.Fatalf("%d of %d devices on the hub's /ws/dashboard after %s", len(seen), fleetSize, took)
	}
	t.Logf("all %d devices on the hub's /ws/dashboard %s after the hub started", fleetSize, took.Round(time.Millisecond))

	// CPU per message over a window: the broker's per message it took in
	// (each is also sent to the hub), the hub's per message it received
	// and passed to its dashboard client, and one publisher's per reading
	// as the baseline.
	go func() { // keep the dashboard client reading, as a browser would
		for {
			c.SetReadDeadline(time.Now().Add(time.Minute))
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	hubMetric := func() float64 {
		return promValue(t, getText(t, "http://"+hub.addr+"/metrics"), "sensord_mqtt_received_total")
	}
	cpu0b, cpu0h, cpu0p := cpuTime(t, broker.PID()), cpuTime(t, hub.cmd.Process.Pid), pubsCPU(t, pubs)
	recv0 := hubMetric()
	t0 := time.Now()
	time.Sleep(fleetMeasure) // the measurement window itself, not a synchronisation
	cpu1b, cpu1h, cpu1p := cpuTime(t, broker.PID()), cpuTime(t, hub.cmd.Process.Pid), pubsCPU(t, pubs)
	recv := hubMetric() - recv0
	window := time.Since(t0)
	if recv == 0 {
		t.Fatal("the hub received nothing in the window")
	}
	readings := fleetSize * window.Seconds() / fleetPeriod.Seconds()
	t.Logf("window %s: hub received %.0f messages (%.0f/s); broker CPU %s (%.1f us/message), hub CPU %s (%.1f us/message), publishers' CPU %s (%.1f us/reading each, baseline)",
		window.Round(time.Millisecond), recv, recv/window.Seconds(),
		cpu1b-cpu0b, float64((cpu1b-cpu0b).Microseconds())/recv,
		cpu1h-cpu0h, float64((cpu1h-cpu0h).Microseconds())/recv,
		cpu1p-cpu0p, float64((cpu1p-cpu0p).Microseconds())/readings)
}

// pubsCPU is the publishers' CPU time together.
func pubsCPU(t *testing.T, ps []*proc) time.Duration {
	var sum time.Duration
	for _, p := range ps {
		sum += cpuTime(t, p.cmd.Process.Pid)
	}
	return sum
}

// cpuTime is a process's user plus system CPU time from /proc.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces), from field 3.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

func promValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
