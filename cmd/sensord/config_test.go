package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseConfig(t *testing.T) {
	t.Run("defaults are the appliance's", func(t *testing.T) {
		c, w, err := parseConfig(nil, env(), io.Discard)
		if err != nil || len(w) != 0 {
			t.Fatal(err, w)
		}
		if c.Listen != ":80" || c.Sensor != "dht22" || c.Pin != "GPIO4" || c.Period != 2*time.Second || c.Topic != "sensors/dht22" || c.Mode != "server" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("the environment fills flags not on the command line", func(t *testing.T) {
		c, _, err := parseConfig([]string{"-sensor", "sim"}, env("SENSORD_PERIOD", "50ms", "SENSORD_SIM_JITTER", "5us", "SENSORD_WHOLEMSG", "true"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Period != 50*time.Millisecond || c.SimJitter != 5*time.Microsecond || !c.WholeMsg {
			t.Errorf("%+v", c)
		}
	})
	t.Run("the command line wins over the environment", func(t *testing.T) {
		c, _, err := parseConfig([]string{"-sensor", "sim", "-period", "1s"}, env("SENSORD_PERIOD", "bogus", "SENSORD_SENSOR", "dht22"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Period != time.Second || c.Sensor != "sim" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("each chip's own minimum period applies", func(t *testing.T) {
		if _, _, err := parseConfig([]string{"-sensor", "bme280", "-period", "1s"}, env(), io.Discard); err != nil {
			t.Errorf("bme280 at 1s: %v", err)
		}
		if _, _, err := parseConfig([]string{"-sensor", "am2320", "-period", "1s"}, env(), io.Discard); err == nil {
			t.Error("am2320 at 1s accepted; its datasheet asks for 2s")
		}
	})
	t.Run("a period too short for the sensor from the environment names both", func(t *testing.T) {
		_, _, err := parseConfig(nil, env("SENSORD_PERIOD", "1s"), io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) || ue.Flag != "period" || !strings.Contains(err.Error(), `SENSORD_PERIOD="1s"`) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("under warn every bad environment value falls back to its default", func(t *testing.T) {
		c, w, err := parseConfig(nil, env("SENSORD_ENV_ERRORS", "warn", "SENSORD_PERIOD", "1s", "SENSORD_MODE", "relay", "SENSORD_SIM_JITTER", "lots"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Period != 2*time.Second || c.Mode != "server" || c.SimJitter != 0 {
			t.Errorf("%+v", c)
		}
		if len(w) != 3 {
			t.Errorf("warnings %q, want 3", w)
		}
	})
	t.Run("under warn a bad command-line value still fails", func(t *testing.T) {
		if _, _, err := parseConfig([]string{"-env-errors", "warn", "-mode", "relay"}, env(), io.Discard); err == nil {
			t.Error("no error")
		}
	})
	t.Run("client mode needs a ws URL", func(t *testing.T) {
		if _, _, err := parseConfig([]string{"-sensor", "sim", "-mode", "both", "-url", "ws://node-red.local:1880/ws/in"}, env(), io.Discard); err != nil {
			t.Error(err)
		}
	})
	t.Run("fixed simulation values parse to tenths", func(t *testing.T) {
		c, _, err := parseConfig([]string{"-sensor", "sim", "-sim-temp", "-10.1", "-sim-humidity", "48.2"}, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		sc := c.sensorConfig()
		if *sc.Sim.Temperature != -101 || *sc.Sim.Humidity != 482 {
			t.Errorf("%v %v", *sc.Sim.Temperature, *sc.Sim.Humidity)
		}
	})
	t.Run("help is not an error and prints every flag", func(t *testing.T) {
		var b strings.Builder
		_, _, err := parseConfig([]string{"-help"}, env(), &b)
		if !errors.Is(err, errHelp) || !strings.Contains(b.String(), "-sim-hang-after") {
			t.Errorf("%v %q", err, b.String())
		}
	})
}

func FuzzParseConfigFromEnvironment(f *testing.F) {
	f.Add("2s", "sim", "server", "", "0.5")
	f.Add("10ms", "dht22", "client", "ws://x", "nan")
	f.Fuzz(func(t *testing.T, period, sensorKind, mode, url, rate string) {
		look := env("SENSORD_ENV_ERRORS", "warn", "SENSORD_PERIOD", period, "SENSORD_SENSOR", sensorKind,
			"SENSORD_MODE", mode, "SENSORD_URL", url, "SENSORD_SIM_ERROR_RATE", rate)
		c, _, err := parseConfig(nil, look, io.Discard)
		if err != nil {
			t.Fatalf("warn mode must always come up on defaults, got %v", err)
		}
		if err := c.check(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
	})
}
