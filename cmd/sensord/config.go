package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"sensord/sensor"
	"sensord/sensor/dht22/dht22sim"
	"sensord/sensor/history"
	"sensord/sensor/sensors"
)

// envPrefix starts the environment name of every flag: -sim-jitter is also
// SENSORD_SIM_JITTER, so a systemd EnvironmentFile= can carry any setting.
const envPrefix = "SENSORD_"

// maxPeriod bounds -period: beyond a day a "live" appliance is no longer
// live, and such a value is far more likely a typo (2h for 2s) than a wish.
const maxPeriod = 24 * time.Hour

// maxSimJitter is the simulation's limit: beyond 20 us a 0 bit (26 us high)
// and a 1 bit (70 us) overlap and no decoder can tell them apart.
const maxSimJitter = 20 * time.Microsecond

// config is the daemon's whole configuration, as parsed from flags and the
// environment.
type config struct {
	Listen    string
	Sensor    string
	Pin       string
	Capture   string
	Bus       string
	Period    time.Duration
	Topic     string
	WholeMsg  bool
	Mode      string
	URL       string
	Token     string
	Version   bool
	EnvErrors string
	LogLevel  string

	AllowedHosts  string
	TLSCert       string
	TLSKey        string
	TLSAuto       string
	URLCA         string
	HTTPSRedirect bool

	SimJitter    time.Duration
	SimErrorRate float64
	SimHangAfter time.Duration
	SimTemp      string
	SimHumidity  string
	SimNoResp    bool

	HistoryDir     string
	HistoryRaw     time.Duration
	HistoryRollup  time.Duration
	HistoryCommit  time.Duration
	TempOffset     float64
	HumOffset      float64
	FrameAncestors string
	Name           string
	MQTTURL        string
	MQTTUser       string
	MQTTPassword   string
	MQTTCA         string
	MQTTPrefix     string
	MQTTDiscovery  string
	MQTTSubscribe  string
}

// usageError is a configuration mistake: main prints it as one line and
// exits with status 2, having started nothing.
type usageError struct {
	Flag string // without the dash; "" when no single flag is to blame
	Msg  string
}

func (e *usageError) Error() string {
	if e.Flag == "" {
		return e.Msg
	}
	return "-" + e.Flag + ": " + e.Msg
}

func badFlag(name, format string, args ...any) *usageError {
	return &usageError{Flag: name, Msg: fmt.Sprintf(format, args...)}
}

// errHelp is returned for -h/-help after the usage text has been written.
var errHelp = flag.ErrHelp

func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("sensord", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", ":80", "HTTP and WebSocket listen address (ignored when systemd passes a socket)")
	fs.StringVar(&c.Sensor, "sensor", "dht22", "sensor: "+strings.Join(sensors.Kinds(), ", "))
	fs.StringVar(&c.Pin, "pin", "GPIO4", "GPIO pin of the DHT22's data line")
	fs.StringVar(&c.Capture, "capture", "auto", "DHT22 edge timing: auto, cdev (GPIO character device), mmap (/dev/gpiomem busy loop)")
	fs.StringVar(&c.Bus, "i2c-bus", "", "I2C bus for bme280, aht20, am2320 (default: the first, usually 1)")
	fs.DurationVar(&c.Period, "period", 2*time.Second, "time between readings (at least the sensor's minimum: 2s for dht22 and am2320, 1s for bme280 and aht20, 10ms for sim)")
	fs.StringVar(&c.Topic, "topic", "sensors/dht22", "topic of every reading")
	fs.BoolVar(&c.WholeMsg, "wholemsg", false, "send the whole message {topic,payload,_msgid} instead of the payload only")
	fs.StringVar(&c.Mode, "mode", "server", "server (serve /ws/sensors), client (send readings to -url), or both")
	fs.StringVar(&c.URL, "url", "", "ws:// or wss:// URL to send readings to in client mode")
	fs.StringVar(&c.Token, "token", "", "bearer token every endpoint requires (empty: none)")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	fs.StringVar(&c.EnvErrors, "env-errors", "exit", "a bad SENSORD_* value: exit (status 2) or warn (log it, use the default)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.AllowedHosts, "allowed-hosts", "", "comma-separated host names (and addresses) the Host header may carry, against DNS rebinding (empty: any)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS and wss:// (with -tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of -tls-cert")
	fs.StringVar(&c.TLSAuto, "tls-auto", "", "without -tls-cert: serve HTTPS with a self-signed certificate for <hostname>.local kept in this directory (made at first start)")
	fs.StringVar(&c.URLCA, "url-ca", "", "PEM CA file that -url's wss:// server certificate must chain to (empty: the system's roots)")
	fs.BoolVar(&c.HTTPSRedirect, "https-redirect", false, "with -tls-cert and a second (plain) listener: answer plain HTTP with a redirect to https")
	fs.DurationVar(&c.SimJitter, "sim-jitter", 0, "sim: timing jitter of each waveform edge, e.g. 5us")
	fs.Float64Var(&c.SimErrorRate, "sim-error-rate", 0, "sim: probability 0..1 that a frame carries a flipped bit")
	fs.DurationVar(&c.SimHangAfter, "sim-hang-after", 0, "sim: stop answering after this long, so reads block (proves the watchdog); 0 never")
	fs.StringVar(&c.SimTemp, "sim-temp", "", "sim: fixed temperature in C, e.g. -10.1 (empty: a slow random walk)")
	fs.StringVar(&c.SimHumidity, "sim-humidity", "", "sim: fixed humidity in %RH, e.g. 48.2 (empty: a slow random walk)")
	fs.BoolVar(&c.SimNoResp, "sim-no-response", false, "sim: never answer the start pulse")
	fs.StringVar(&c.HistoryDir, "history-dir", "", "directory of the history database (empty: history in memory only, lost at restart)")
	fs.DurationVar(&c.HistoryRaw, "history-raw-retention", history.DefaultRawRetention, "how long every reading is kept")
	fs.DurationVar(&c.HistoryRollup, "history-retention", history.DefaultRollupRetention, "how long per-minute min/mean/max are kept")
	fs.DurationVar(&c.HistoryCommit, "history-commit-interval", history.DefaultCommitInterval, "time between two writes to the history database (a power cut loses at most this much)")
	fs.Float64Var(&c.TempOffset, "temp-offset", 0, "calibration: degrees C added to every temperature reading, e.g. -0.5")
	fs.Float64Var(&c.HumOffset, "humidity-offset", 0, "calibration: %RH added to every humidity reading (the result stays within 0..100)")
	fs.StringVar(&c.FrameAncestors, "frame-ancestors", "", "origins allowed to embed the dashboard in a frame, e.g. http://homeassistant.local:8123 (empty: none)")
	fs.StringVar(&c.Name, "name", "", "the device's name in the dashboard, MQTT topics and Home Assistant: letters, digits, -, _ (default: the hostname)")
	fs.StringVar(&c.MQTTURL, "mqtt-url", "", "MQTT broker, mqtt://host:1883 or mqtts://host:8883 (empty: MQTT off)")
	fs.StringVar(&c.MQTTUser, "mqtt-user", "", "MQTT user name")
	fs.StringVar(&c.MQTTPassword, "mqtt-password", "", "MQTT password (never logged or shown)")
	fs.StringVar(&c.MQTTCA, "mqtt-ca", "", "PEM file of the CA that signed an mqtts:// broker's certificate (default: the system's roots)")
	fs.StringVar(&c.MQTTPrefix, "mqtt-prefix", "sensors", "first level of the topics readings go to: <prefix>/<name>/temperature")
	fs.StringVar(&c.MQTTDiscovery, "mqtt-discovery", "homeassistant", "Home Assistant's discovery prefix (empty: no discovery)")
	fs.StringVar(&c.MQTTSubscribe, "mqtt-subscribe", "sensors/#", "MQTT topic filter passed to /ws/dashboard (empty: subscribe nothing)")
	return fs
}

// envName is the environment variable that can carry flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseConfig reads flags from args, then fills every flag not given on the
// command line from SENSORD_<NAME> in the environment (lookup), then checks
// the values together. Command-line mistakes always fail. Environment
// mistakes fail too, unless -env-errors=warn: then the value is replaced by
// the flag's default and a warning is returned, so an appliance whose
// settings file has a typo still comes up and says what is wrong.
func parseConfig(args []string, lookup func(string) (string, bool), usage io.Writer) (*config, []string, error) {
	c := &config{}
	fs := newFlagSet(c)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintln(usage, "usage: sensord [flags]; every flag can also be set as SENSORD_<NAME>")
			fs.PrintDefaults()
			return nil, nil, errHelp
		}
		return nil, nil, &usageError{Msg: err.Error() + durationHintFor(fs, err) + " (sensord -help lists the flags)"}
	}
	if fs.NArg() > 0 {
		return nil, nil, &usageError{Msg: fmt.Sprintf("unexpected argument %q (sensord takes flags only)", fs.Arg(0))}
	}
	fromCmd := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromCmd[f.Name] = true })

	// -env-errors decides how the others are treated, so it goes first.
	if !fromCmd["env-errors"] {
		if v, ok := lookup(envName("env-errors")); ok {
			if err := fs.Set("env-errors", v); err != nil {
				return nil, nil, badFlag("env-errors", "%s=%q: %v", envName("env-errors"), v, err)
			}
		}
	}
	if c.EnvErrors != "exit" && c.EnvErrors != "warn" {
		return nil, nil, badFlag("env-errors", "%q is not one of exit, warn", c.EnvErrors)
	}
	warn := c.EnvErrors == "warn"

	var warnings []string
	fromEnv := map[string]string{}
	var setErr error
	fs.VisitAll(func(f *flag.Flag) {
		if setErr != nil || fromCmd[f.Name] || f.Name == "env-errors" {
			return
		}
		v, ok := lookup(envName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			e := badFlag(f.Name, "%s=%q: %v", envName(f.Name), v, unwrapFlagErr(err)+durationHint(f))
			if !warn {
				setErr = e
				return
			}
			_ = f.Value.Set(f.DefValue)
			warnings = append(warnings, e.Error()+"; using the default "+strconv.Quote(f.DefValue))
			return
		}
		fromEnv[f.Name] = v
	})
	if setErr != nil {
		return nil, nil, setErr
	}

	// Check the values together. A value from the environment that fails is
	// reset to its default under -env-errors=warn and the check runs again;
	// each round resets one flag, so this ends.
	for range fs.NFlag() + len(fromEnv) + 1 {
		err := c.check()
		if err == nil {
			return c, warnings, nil
		}
		var ue *usageError
		if !errors.As(err, &ue) {
			return nil, nil, err
		}
		v, env := fromEnv[ue.Flag]
		if !warn || !env {
			if env {
				ue.Msg = fmt.Sprintf("%s=%q: %s", envName(ue.Flag), shownValue(ue.Flag, v), ue.Msg)
			}
			return nil, nil, ue
		}
		f := fs.Lookup(ue.Flag)
		_ = f.Value.Set(f.DefValue)
		delete(fromEnv, ue.Flag)
		warnings = append(warnings, fmt.Sprintf("-%s: %s=%q: %s; using the default %q", ue.Flag, envName(ue.Flag), shownValue(ue.Flag, v), ue.Msg, f.DefValue))
	}
	return nil, nil, &usageError{Msg: "settings do not converge on valid values"}
}

// unwrapFlagErr drops the flag package's "parse error" wording, which names
// strconv's function rather than what the user typed.
func unwrapFlagErr(err error) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return "not a valid " + kindOf(ne.Func)
	}
	s := err.Error()
	if strings.HasPrefix(s, "parse error") {
		return "not a valid value"
	}
	return s
}

func kindOf(fn string) string {
	switch fn {
	case "ParseBool":
		return "boolean (true or false)"
	case "ParseFloat":
		return "number"
	}
	return "value"
}

// check validates the values and how they fit together. Each error names
// the flag to blame and what is allowed.
func (c *config) check() error {
	if !slices.Contains(sensors.Kinds(), c.Sensor) {
		return badFlag("sensor", "%q is not one of %s", c.Sensor, strings.Join(sensors.Kinds(), ", "))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return badFlag("listen", "%q is not host:port (for example :80 or 127.0.0.1:8080)", c.Listen)
	}
	switch c.Capture {
	case "auto", "cdev", "mmap":
	default:
		return badFlag("capture", "%q is not one of auto, cdev, mmap", c.Capture)
	}
	if c.Pin == "" {
		return badFlag("pin", "empty; name the GPIO pin, for example GPIO4")
	}
	if min := sensors.MinPeriod(c.Sensor); c.Period < min {
		return badFlag("period", "%s is below the %s minimum of %s", c.Period, c.Sensor, min)
	}
	if c.Period > maxPeriod {
		return badFlag("period", "%s is above the maximum of %s", c.Period, maxPeriod)
	}
	if c.Topic == "" || strings.ContainsAny(c.Topic, "+#") {
		return badFlag("topic", "%q must be a non-empty topic without the wildcards + and #", c.Topic)
	}
	switch c.Mode {
	case "server":
	case "client", "both":
		if c.URL == "" {
			// Blame -mode: under -env-errors=warn a mode from the settings
			// file without its -url then falls back to server mode.
			return badFlag("mode", "%s mode needs -url, the ws:// or wss:// URL to send readings to", c.Mode)
		}
	default:
		return badFlag("mode", "%q is not one of server, client, both", c.Mode)
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return badFlag("url", "%q is not a ws:// or wss:// URL", redactURL(c.URL))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return badFlag("tls-cert", "-tls-cert and -tls-key go together (one of them is empty)")
	}
	if c.URLCA != "" && !strings.HasPrefix(c.URL, "wss://") {
		return badFlag("url-ca", "only for a wss:// -url")
	}
	for _, h := range strings.Split(c.AllowedHosts, ",") {
		if c.AllowedHosts != "" && strings.TrimSpace(h) == "" {
			return badFlag("allowed-hosts", "%q has an empty entry", c.AllowedHosts)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return badFlag("log-level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.SimJitter < 0 || c.SimJitter > maxSimJitter {
		return badFlag("sim-jitter", "%s is outside 0..%s", c.SimJitter, maxSimJitter)
	}
	if math.IsNaN(c.SimErrorRate) || c.SimErrorRate < 0 || c.SimErrorRate > 1 {
		return badFlag("sim-error-rate", "%v is outside 0..1", c.SimErrorRate)
	}
	if c.SimHangAfter < 0 {
		return badFlag("sim-hang-after", "%s is negative", c.SimHangAfter)
	}
	if err := c.checkHistory(); err != nil {
		return err
	}
	if _, err := simDeci(c.SimTemp, -400, 800); err != nil {
		return badFlag("sim-temp", "%q: %v (a number of degrees C, -40..80)", c.SimTemp, err)
	}
	if _, err := simDeci(c.SimHumidity, 0, 1000); err != nil {
		return badFlag("sim-humidity", "%q: %v (a number of %%RH, 0..100)", c.SimHumidity, err)
	}
	if err := c.checkMQTT(); err != nil {
		return err
	}
	return nil
}

// simDeci parses an optional fixed simulation value within [lo, hi] tenths.
func simDeci(s string, lo, hi sensor.Deci) (*sensor.Deci, error) {
	if s == "" {
		return nil, nil
	}
	d, err := sensor.ParseDeci(s)
	if err != nil {
		return nil, errors.New("not a number")
	}
	if d < lo || d > hi {
		return nil, errors.New("out of range")
	}
	return &d, nil
}

// sensorConfig turns the flags into what sensors.Open takes.
func (c *config) sensorConfig() sensors.Config {
	t, _ := simDeci(c.SimTemp, -400, 800)
	h, _ := simDeci(c.SimHumidity, 0, 1000)
	return sensors.Config{
		Kind:    c.Sensor,
		Pin:     c.Pin,
		Capture: c.Capture,
		Bus:     c.Bus,
		Sim: dht22sim.Config{
			Jitter:      c.SimJitter,
			ErrorRate:   c.SimErrorRate,
			HangAfter:   c.SimHangAfter,
			NoResponse:  c.SimNoResp,
			Temperature: t,
			Humidity:    h,
		},
	}
}
