package sensors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sensord/sensor"
	"sensord/sensor/dht22/dht22sim"
	"sensord/sensor/sensors"
)

func dp(d sensor.Deci) *sensor.Deci { return &d }

func open(t *testing.T, c sensors.Config) (sensor.Sensor, string) {
	t.Helper()
	var buf bytes.Buffer
	s, err := sensors.Open(context.Background(), c, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Halt() })
	return s, buf.String()
}

func TestOpenSimLogsItsCaptureAndReadsTheWaveform(t *testing.T) {
	tests := []struct {
		capture, logged string
	}{
		{"", "capture=sim-edge"},
		{"auto", "capture=sim-edge"},
		{"cdev", "capture=sim-edge"},
		{"mmap", "capture=sim-pin"},
	}
	for _, tt := range tests {
		t.Run("capture "+tt.capture+" uses "+tt.logged, func(t *testing.T) {
			s, log := open(t, sensors.Config{Kind: "sim", Capture: tt.capture, Sim: dht22sim.Config{Temperature: dp(-101), Humidity: dp(652)}})
			if !strings.Contains(log, tt.logged) || !strings.Contains(log, "sensor opened") {
				t.Errorf("log %q does not name %s", log, tt.logged)
			}
			// The busy loop may lose frames on a busy machine (a virtual
			// machine whose host steals the CPU mid-frame); the edge source
			// never does. Either way a success is exact.
			var got sensor.Reading
			var err error
			for range 50 {
				if got, err = s.Read(context.Background()); err == nil {
					break
				}
				if k := sensor.ErrorKind(err); k != "timeout" && k != "short_frame" {
					t.Fatalf("unexpected error: %v", err)
				}
				time.Sleep(sensors.MinPeriod("sim"))
			}
			if err != nil {
				if tt.capture == "mmap" {
					t.Logf("no busy-loop read in 50 succeeded on this machine: %v", err)
					return
				}
				t.Fatalf("no read in 50 succeeded: %v", err)
			}
			if got.Temperature != -101 || got.Humidity != 652 {
				t.Errorf("read %v, want -10.1 °C 65.2 %%RH", got)
			}
		})
	}
}

func TestOpenSimFaults(t *testing.T) {
	tests := []struct {
		name string
		sim  dht22sim.Config
		want error
	}{
		{"no response times out", dht22sim.Config{NoResponse: true}, sensor.ErrTimeout},
		{"an error rate of 1 fails every checksum", dht22sim.Config{ErrorRate: 1}, sensor.ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := open(t, sensors.Config{Kind: "sim", Sim: tt.sim})
			for range 3 {
				if _, err := s.Read(context.Background()); !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
				time.Sleep(sensors.MinPeriod("sim"))
			}
		})
	}
}

// TestHangStopsPollerProgress is the daemon's watchdog story: once the sim
// hangs, Read blocks, and the Poller's Progress stops advancing; cancelling
// the context ends it.
func TestHangStopsPollerProgress(t *testing.T) {
	for _, capture := range []string{"cdev", "mmap"} {
		for _, sim := range []dht22sim.Config{{HangAfter: 150 * time.Millisecond}, {HangAfterReads: 3}} {
			t.Run(fmt.Sprintf("%s %+v", capture, sim), func(t *testing.T) {
				s, _ := open(t, sensors.Config{Kind: "sim", Capture: capture, Sim: sim})
				p, err := sensor.NewPoller(s, &sensor.PollOpts{Period: 10 * time.Millisecond, MinPeriod: sensors.MinPeriod("sim")})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- p.Run(ctx, nil) }()
				// Wait until progress has stalled for 300 ms.
				deadline := time.Now().Add(10 * time.Second)
				for time.Since(p.Progress()) < 300*time.Millisecond || p.Progress().IsZero() {
					if time.Now().After(deadline) {
						t.Fatalf("progress never stalled; stats %+v", p.Stats())
					}
					time.Sleep(10 * time.Millisecond)
				}
				stalled := p.Progress()
				time.Sleep(100 * time.Millisecond)
				if !p.Progress().Equal(stalled) {
					t.Error("progress moved again while the sim was hung")
				}
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run = %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Run did not return after cancel")
				}
				if st := p.Stats(); sim.HangAfterReads > 0 && st.Reads < 3 {
					t.Errorf("only %d reads before the hang", st.Reads)
				}
			})
		}
	}
}

func TestOpenSimRandomWalkMovesThroughThePoller(t *testing.T) {
	s, _ := open(t, sensors.Config{Kind: "sim", Sim: dht22sim.Config{Seed: 9}})
	p, err := sensor.NewPoller(s, &sensor.PollOpts{Period: 10 * time.Millisecond, MinPeriod: sensors.MinPeriod("sim")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]bool{}
	_ = p.Run(ctx, func(r sensor.Derived) {
		seen[r.Temperature.String()+"/"+r.Humidity.String()] = true
		if len(seen) >= 5 {
			cancel()
		}
	})
	if len(seen) < 5 {
		t.Errorf("only %d distinct readings: %v", len(seen), seen)
	}
}

func TestOpenRejectsUnknownNames(t *testing.T) {
	for _, c := range []sensors.Config{{Kind: "dht11"}, {Kind: "sim", Capture: "dma"}} {
		_, err := sensors.Open(context.Background(), c, nil)
		if err == nil || !strings.Contains(err.Error(), "want one of") {
			t.Errorf("%+v: err = %v, want one naming the choices", c, err)
		}
	}
	if _, err := sensors.Open(context.Background(), sensors.Config{Kind: "sim", Sim: dht22sim.Config{ErrorRate: 2}}, nil); err == nil {
		t.Error("an error rate of 2 was accepted")
	}
}

// TestOpenDHT22NamesTheFix runs where there is no GPIO hardware (CI, a
// laptop): the error must say what to do. On a Pi it checks nothing.
func TestOpenDHT22NamesTheFix(t *testing.T) {
	chips, _ := filepath.Glob("/dev/gpiochip*")
	if _, err := os.Stat("/dev/gpiomem"); err == nil || len(chips) > 0 {
		t.Log("GPIO hardware present; the no-hardware message is not exercised here")
		return
	}
	for _, c := range []string{"auto", "cdev", "mmap"} {
		_, err := sensors.Open(context.Background(), sensors.Config{Capture: c}, nil)
		if err == nil {
			t.Fatalf("capture %s: opened a DHT22 without GPIO hardware", c)
		}
		msg := err.Error()
		for _, want := range []string{"sensors:", "/dev/gpio", "sim"} {
			if c == "mmap" && want == "sim" {
				want = "-capture cdev"
			}
			if !strings.Contains(msg, want) {
				t.Errorf("capture %s: %q does not mention %q", c, msg, want)
			}
		}
	}
}

func TestOpenI2CNamesTheFix(t *testing.T) {
	if _, err := os.Stat("/dev/i2c-1"); err == nil {
		t.Log("an I2C bus is present; the missing-bus message is not exercised here")
		return
	}
	_, err := sensors.Open(context.Background(), sensors.Config{Kind: "bme280"}, nil)
	if err == nil || !strings.Contains(err.Error(), "I2C") {
		t.Errorf("err = %v, want one naming the I2C bus and its fix", err)
	}
}

func TestKindsAndMinPeriod(t *testing.T) {
	if got := strings.Join(sensors.Kinds(), ","); got != "dht22,sim,bme280,aht20,am2320" {
		t.Errorf("Kinds() = %s", got)
	}
	for kind, want := range map[string]time.Duration{"dht22": 2 * time.Second, "am2320": 2 * time.Second, "bme280": time.Second, "aht20": time.Second, "sim": 10 * time.Millisecond, "no such chip": 0} {
		if got := sensors.MinPeriod(kind); got != want {
			t.Errorf("MinPeriod(%q) = %v, want %v", kind, got, want)
		}
	}
}

func ExampleOpen() {
	t, h := sensor.Deci(214), sensor.Deci(482)
	s, err := sensors.Open(context.Background(), sensors.Config{
		Kind: "sim",
		Sim:  dht22sim.Config{Temperature: &t, Humidity: &h},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Halt()
	r, err := s.Read(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s, r.Temperature, r.Humidity)
	// Output: DHT22{GPIO4(sim), edge-timestamps} 21.4 48.2
}
