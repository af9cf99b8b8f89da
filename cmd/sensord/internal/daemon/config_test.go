package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sensord/image/settings"
	"sensord/sensor/sensors"
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
		c, w, err := ParseConfig(nil, env(), io.Discard)
		if err != nil || len(w) != 0 {
			t.Fatal(err, w)
		}
		if c.Listen != ":80" || c.Sensor != "dht22" || c.Pin != "GPIO4" || c.Period != 2*time.Second || c.Topic != "sensors/dht22" || c.Mode != "server" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("the environment fills flags not on the command line", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-sensor", "sim"}, env("SENSORD_PERIOD", "50ms", "SENSORD_SIM_JITTER", "5us", "SENSORD_WHOLEMSG", "true"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Period != 50*time.Millisecond || c.SimJitter != 5*time.Microsecond || !c.WholeMsg {
			t.Errorf("%+v", c)
		}
	})
	t.Run("the command line wins over the environment", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-sensor", "sim", "-period", "1s"}, env("SENSORD_PERIOD", "bogus", "SENSORD_SENSOR", "dht22"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Period != time.Second || c.Sensor != "sim" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("each chip's own minimum period applies", func(t *testing.T) {
		if _, _, err := ParseConfig([]string{"-sensor", "bme280", "-period", "1s"}, env(), io.Discard); err != nil {
			t.Errorf("bme280 at 1s: %v", err)
		}
		if _, _, err := ParseConfig([]string{"-sensor", "am2320", "-period", "1s"}, env(), io.Discard); err == nil {
			t.Error("am2320 at 1s accepted; its datasheet asks for 2s")
		}
	})
	t.Run("a period too short for the sensor from the environment names both", func(t *testing.T) {
		_, _, err := ParseConfig(nil, env("SENSORD_PERIOD", "1s"), io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) || ue.Flag != "period" || !strings.Contains(err.Error(), `SENSORD_PERIOD="1s"`) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("under warn every bad environment value falls back to its default", func(t *testing.T) {
		c, w, err := ParseConfig(nil, env("SENSORD_ENV_ERRORS", "warn", "SENSORD_PERIOD", "1s", "SENSORD_MODE", "relay", "SENSORD_SIM_JITTER", "lots"), io.Discard)
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
		if _, _, err := ParseConfig([]string{"-env-errors", "warn", "-mode", "relay"}, env(), io.Discard); err == nil {
			t.Error("no error")
		}
	})
	t.Run("client mode needs a ws URL", func(t *testing.T) {
		if _, _, err := ParseConfig([]string{"-sensor", "sim", "-mode", "both", "-url", "ws://node-red.local:1880/ws/in"}, env(), io.Discard); err != nil {
			t.Error(err)
		}
	})
	t.Run("fixed simulation values parse to tenths", func(t *testing.T) {
		c, _, err := ParseConfig([]string{"-sensor", "sim", "-sim-temp", "-10.1", "-sim-humidity", "48.2"}, env(), io.Discard)
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
		_, _, err := ParseConfig([]string{"-help"}, env(), &b)
		if !errors.Is(err, ErrHelp) || !strings.Contains(b.String(), "-sim-hang-after") {
			t.Errorf("%v %q", err, b.String())
		}
	})
}

// validConfig reports whether c is a configuration parseConfig could have
// made: every value is one its flag's Set accepts, and every rule holds.
func validConfig(c *Config) error {
	var into Config
	s := into.settings()
	into = *c
	for _, f := range s.Flags() {
		if err := f.Value.Set(f.Value.String()); err != nil {
			return fmt.Errorf("-%s=%q: %v", f.Name, f.Value.String(), err)
		}
	}
	for _, rule := range into.rules() {
		if err := rule(); err != nil {
			return err
		}
	}
	return nil
}

// FuzzParseConfigFromEnvironment feeds five strings to the settings of
// each kind (durations, choices, URLs, numbers and tenths): under warn
// sensord always comes up, on values that are valid, and without warn a
// value from the environment and the same value on the command line are
// refused alike.
func FuzzParseConfigFromEnvironment(f *testing.F) {
	f.Add("2s", "sim", "server", "", "0.5")
	f.Add("10ms", "dht22", "client", "ws://x", "nan")
	f.Add("1h", "DHT22", "both", "wss://pi:secret@x/ws", "-10.15")
	f.Add("-1s", "bme280", "warn", "mqtt://broker", "1e1")
	f.Fuzz(func(t *testing.T, period, sensorKind, mode, url, rate string) {
		vars := []string{
			"SENSORD_PERIOD", period, "SENSORD_HISTORY_RETENTION", period, "SENSORD_SIM_JITTER", period,
			"SENSORD_SENSOR", sensorKind, "SENSORD_CAPTURE", sensorKind, "SENSORD_NAME", sensorKind,
			"SENSORD_MODE", mode, "SENSORD_LOG_LEVEL", mode, "SENSORD_TOPIC", mode,
			"SENSORD_URL", url, "SENSORD_URL_CA", url, "SENSORD_MQTT_URL", url, "SENSORD_MQTT_PREFIX", url, "SENSORD_TLS_KEY", url,
			"SENSORD_SIM_ERROR_RATE", rate, "SENSORD_SIM_TEMP", rate, "SENSORD_TEMP_OFFSET", rate, "SENSORD_HUMIDITY_OFFSET", rate,
		}
		c, _, err := ParseConfig(nil, env(append([]string{"SENSORD_ENV_ERRORS", "warn"}, vars...)...), io.Discard)
		if err != nil {
			t.Fatalf("warn mode must always come up on defaults, got %v", err)
		}
		if err := validConfig(c); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		for i := 0; i < len(vars); i += 2 {
			name, v := vars[i], vars[i+1]
			flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "_", "-"))
			_, _, envErr := ParseConfig(nil, env(name, v), io.Discard)
			_, _, argErr := ParseConfig([]string{"-" + flagName + "=" + v}, env(), io.Discard)
			if (envErr == nil) != (argErr == nil) {
				t.Fatalf("%s=%q: from the environment %v, from the command line %v", name, v, envErr, argErr)
			}
			if envErr == nil {
				continue
			}
			var ee, ae *usageError
			if !errors.As(envErr, &ee) || !errors.As(argErr, &ae) || ee.Flag != ae.Flag {
				t.Fatalf("%s=%q: %#v and %#v blame different flags", name, v, envErr, argErr)
			}
			if ee.Flag != flagName {
				continue // a rule blamed another flag, the same from both sides
			}
			// Both say the same after the value: "-period: SENSORD_PERIOD="2" is not ..."
			// and "-period: 2 is not ...".
			_, envWhy, _ := strings.Cut(ee.Msg, strconv.Quote(shownAs(flagName, v))+" ")
			if !strings.HasSuffix(ae.Msg, " "+envWhy) || envWhy == "" {
				t.Fatalf("%s=%q: the environment says %q, the command line %q", name, v, envErr, argErr)
			}
		}
	})
}

// shownAs is how messages show v for flag name.
func shownAs(name, v string) string {
	if show := new(Config).settings().Lookup(name).Show; show != nil {
		return show(v)
	}
	return v
}

// Each kind of setting refuses a bad value with one message, whether the
// value came from the command line or from SENSORD_*; under warn the
// environment's value is reported and the flag keeps its default.
func TestSettingsRefuseAlikeFromTheCommandLineAndTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		flag, in, shown, problem string
	}{
		{"sensor", "dht11", "dht11", "is not one of dht22, sim, bme280, aht20, am2320"},
		{"capture", "gpiomem", "gpiomem", "is not one of auto, cdev, mmap"},
		{"mode", "relay", "relay", "is not one of server, client, both"},
		{"env-errors", "ignore", "ignore", "is not one of exit, warn"},
		{"log-level", "verbose", "verbose", "is not one of debug, info, warn, error"},
		{"period", "2", "2", "is not a duration (a number and a unit, such as 2s, 500ms, 1m30s or 168h)"},
		{"period", "1s", "1s", "is below the dht22 minimum of 2s"},
		{"period", "25h", "25h", "is above the maximum of 24h"},
		{"sim-jitter", "21us", "21us", "is above the maximum of 20µs"},
		{"sim-hang-after", "-1s", "-1s", "is negative"},
		{"history-raw-retention", "1h", "1h", "is below the minimum of 2h"},
		{"history-retention", "24h", "24h", "is below -history-raw-retention (168h)"},
		{"history-commit-interval", "2h", "2h", "is outside 1s..1h"},
		{"sim-error-rate", "lots", "lots", "is not a number"},
		{"sim-error-rate", "2", "2", "is outside 0..1"},
		{"sim-temp", "-40.1", "-40.1", "is outside -40..80 degrees C"},
		{"sim-temp", "warm", "warm", "is not a number within -40..80 degrees C"},
		{"sim-humidity", "100.1", "100.1", "is outside 0..100 %RH"},
		{"temp-offset", "NaN", "NaN", "is not a number within -20..20 degrees C"},
		{"humidity-offset", "-51", "-51", "is outside -50..50 %RH"},
		{"wholemsg", "yes", "yes", "is not true or false"},
		{"listen", "localhost", "localhost", "is not host:port (for example :80 or 127.0.0.1:8080)"},
		{"listen", ":99999", ":99999", `has port "99999"; want a number from 0 to 65535 (for example :80 or 127.0.0.1:8080)`},
		{"listen", ":http-alt", ":http-alt", `has port "http-alt"; want a number from 0 to 65535 (for example :80 or 127.0.0.1:8080)`},
		{"listen", "my_host:80", "my_host:80", `has host "my_host", which is neither an IP address nor a host name (for example :80 or 127.0.0.1:8080)`},
		{"pin", "", `""`, "names no pin; name the GPIO pin, for example GPIO4"},
		{"topic", "sensors/#", "sensors/#", "must be a non-empty topic without the wildcards + and #"},
		{"url", "http://u:pw@x/", "http://REDACTED@x/", "is not a ws:// or wss:// URL"},
		{"allowed-hosts", "a,,b", "a,,b", "has an empty entry"},
		{"frame-ancestors", "x; script-src *", `"x; script-src *"`, "is not a list of origins separated by spaces, such as http://homeassistant.local:8123"},
		{"name", "kitchen.local", "kitchen.local", "must be 1 to 63 letters, digits, - or _ (it names the device in MQTT topics and Home Assistant)"},
		{"mqtt-url", "mqtt://u:pw@broker/x", "mqtt://u:xxxxx@broker/x", "is not a broker URL: a broker URL has no path, query or fragment (for example mqtt://homeassistant.local:1883 or mqtts://broker:8883)"},
		{"mqtt-url", "mqtt://", "mqtt://", "has no host (for example mqtt://homeassistant.local:1883 or mqtts://broker:8883)"},
		{"mqtt-prefix", "/sensors", "/sensors", "must be a non-empty topic without + and # and without a leading or trailing /"},
		{"mqtt-subscribe", "a/#/b", "a/#/b", "is not an MQTT topic filter (+ and # only as whole levels, # last; empty: subscribe nothing)"},
	} {
		t.Run("-"+tc.flag+" "+tc.in, func(t *testing.T) {
			name := envName(tc.flag)
			want := "-" + tc.flag + ": " + tc.shown + " " + tc.problem
			_, _, err := ParseConfig([]string{"-" + tc.flag + "=" + tc.in}, env(), io.Discard)
			if err == nil || err.Error() != want {
				t.Errorf("command line: %v\n                 want %s", err, want)
			}
			shownEnv := tc.shown
			if !strings.HasPrefix(shownEnv, `"`) {
				shownEnv = strconv.Quote(shownEnv)
			}
			wantEnv := "-" + tc.flag + ": " + name + "=" + shownEnv + " " + tc.problem
			_, _, err = ParseConfig(nil, env(name, tc.in), io.Discard)
			if err == nil || err.Error() != wantEnv {
				t.Errorf("environment: %v\n                want %s", err, wantEnv)
			}
			if tc.flag == "env-errors" {
				return // it decides what warn is, so its own mistake always stops
			}
			c, w, err := ParseConfig(nil, env("SENSORD_ENV_ERRORS", "warn", name, tc.in), io.Discard)
			if err != nil || len(w) != 1 || !strings.HasPrefix(w[0], wantEnv+"; using the default ") {
				t.Fatalf("warn: %v, warnings %q", err, w)
			}
			d, _, _ := ParseConfig([]string{"-env-errors=warn"}, env(), io.Discard)
			if !sameConfig(c, d) {
				t.Errorf("warn: %+v, want the defaults %+v", c, d)
			}
		})
	}
}

func sameConfig(a, b *Config) bool {
	return fmt.Sprintf("%+v %v %v", *a, a.SimTemp, a.SimHumidity) == fmt.Sprintf("%+v %v %v", *b, b.SimTemp, b.SimHumidity)
}

// envName is the variable of flag name, as -h shows it.
func envName(name string) string { return new(Config).settings().EnvName(name) }

// Each rule that ties flags together blames the flag a person fixes; under
// warn that flag, from the environment, falls back to its default, whose
// value the rule accepts, and the rest of the settings stay.
func TestRulesBlameOneFlagAndItsDefaultSatisfiesThem(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"a period below the sensor's minimum", []string{"SENSORD_SENSOR", "am2320", "SENSORD_PERIOD", "1s"}, `-period: SENSORD_PERIOD="1s" is below the am2320 minimum of 2s`},
		{"client mode without -url", []string{"SENSORD_MODE", "client"}, `-mode: SENSORD_MODE="client" needs -url, the ws:// or wss:// URL to send readings to`},
		{"a CA for a ws:// URL", []string{"SENSORD_MODE", "client", "SENSORD_URL", "ws://x/", "SENSORD_URL_CA", "ca.pem"}, `-url-ca: SENSORD_URL_CA="ca.pem" is only for a wss:// -url`},
		{"a key without a certificate", []string{"SENSORD_TLS_KEY", "k.pem"}, `-tls-key: SENSORD_TLS_KEY="k.pem" needs its certificate, -tls-cert`},
		{"a certificate without a key", []string{"SENSORD_TLS_CERT", "c.pem"}, `-tls-cert: SENSORD_TLS_CERT="c.pem" needs its key, -tls-key`},
		{"rollups kept less long than readings", []string{"SENSORD_HISTORY_RAW_RETENTION", "48h", "SENSORD_HISTORY_RETENTION", "24h"}, `-history-retention: SENSORD_HISTORY_RETENTION="24h" is below -history-raw-retention (48h)`},
		{"a CA for mqtt://", []string{"SENSORD_MQTT_URL", "mqtt://b", "SENSORD_MQTT_CA", ca}, `-mqtt-ca: SENSORD_MQTT_CA="` + ca + `" is for mqtts:// URLs; -mqtt-url is mqtt://b:1883`},
		{"a CA file that holds none", []string{"SENSORD_MQTT_URL", "mqtts://b", "SENSORD_MQTT_CA", ca}, `-mqtt-ca: SENSORD_MQTT_CA="` + ca + `" is no CA file: ` + ca + ` holds no PEM certificate`},
		{"a -url CA file that holds none", []string{"SENSORD_MODE", "client", "SENSORD_URL", "wss://x/", "SENSORD_URL_CA", ca}, `-url-ca: SENSORD_URL_CA="` + ca + `" is no CA file: ` + ca + ` holds no PEM certificate`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := append([]string{"SENSORD_SENSOR", "sim"}, tc.env...)
			_, _, err := ParseConfig(nil, env(vars...), io.Discard)
			if err == nil || err.Error() != tc.want {
				t.Errorf("exit: %v\n          want %s", err, tc.want)
			}
			c, w, err := ParseConfig(nil, env(append(vars, "SENSORD_ENV_ERRORS", "warn")...), io.Discard)
			if err != nil || len(w) != 1 || !strings.HasPrefix(w[0], tc.want+"; using the default ") {
				t.Fatalf("warn: %v, warnings %q", err, w)
			}
			if err := validConfig(c); err != nil {
				t.Errorf("warn came up invalid: %v", err)
			}
			if c.Sensor != tc.env[1] && tc.env[0] == "SENSORD_SENSOR" {
				t.Errorf("warn reset -sensor too: %+v", c)
			}
		})
	}
	t.Run("the same mistakes on the command line fail under warn", func(t *testing.T) {
		_, _, err := ParseConfig([]string{"-env-errors", "warn", "-mode", "client"}, env(), io.Discard)
		if err == nil || err.Error() != "-mode: client needs -url, the ws:// or wss:// URL to send readings to" {
			t.Errorf("%v", err)
		}
	})
	t.Run("the default period suits every sensor, so a reset one never fails", func(t *testing.T) {
		def, _, _ := ParseConfig(nil, env(), io.Discard)
		for _, k := range sensors.Kinds() {
			if min := sensors.MinPeriod(k); def.Period < min {
				t.Errorf("%s: default period %s is below its minimum %s", k, def.Period, min)
			}
		}
	})
}

func TestHelpListsEveryFlagWithItsDefaultAndVariable(t *testing.T) {
	var b strings.Builder
	if _, _, err := ParseConfig([]string{"-h"}, env(), &b); !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	out := b.String()
	s := new(Config).settings()
	for _, f := range s.Flags() {
		if !strings.Contains(out, "\n  -"+f.Name+" ") || !strings.Contains(out, "("+s.EnvName(f.Name)+")\n") {
			t.Errorf("-h lacks -%s or %s:\n%s", f.Name, s.EnvName(f.Name), out)
		}
	}
	for _, want := range []string{"(default 2s)", `(default "sensors/dht22")`, "(default 168h0m0s)", "(default dht22)"} {
		if !strings.Contains(out, want) {
			t.Errorf("-h lacks %s", want)
		}
	}
}

// The settings file the image ships lists every flag with a default that
// sensord accepts as a SENSORD_* value, all at once, and the boot test's
// settings parse too.
func TestTheImageSettingsFileParses(t *testing.T) {
	var vars []string
	for _, v := range settings.Appliance().Flags() {
		vars = append(vars, v.Name, v.Default)
	}
	c, w, err := ParseConfig(nil, env(vars...), io.Discard)
	if err != nil || len(w) != 0 {
		t.Fatalf("the documented defaults: %v %q", err, w)
	}
	if d, _, _ := ParseConfig(nil, env(), io.Discard); !sameConfig(c, d) {
		t.Errorf("the documented defaults give %+v, sensord's own %+v", c, d)
	}
	vars = nil
	for k, v := range settings.BootTest(100*time.Second, "ssh-ed25519 AAAA k") {
		if strings.HasPrefix(k, envPrefix) {
			vars = append(vars, k, v)
		}
	}
	if _, w, err := ParseConfig([]string{"-env-errors=warn"}, env(vars...), io.Discard); err != nil || len(w) != 0 {
		t.Errorf("the boot test's settings: %v %q", err, w)
	}
}
