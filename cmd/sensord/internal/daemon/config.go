package daemon

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"sensord/cmd/sensord/internal/flagenv"
	"sensord/sensor"
	"sensord/sensor/dht22/dht22sim"
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

// maxSimStopAfter bounds -sim-stop-after: a day of reads at 2 s.
const maxSimStopAfter = 43200

// Bounds of the simulation's fixed values, in tenths: the DHT22's range.
const (
	minSimTemp, maxSimTemp         sensor.Deci = -400, 800
	minSimHumidity, maxSimHumidity sensor.Deci = 0, 1000
)

// Config is the daemon's whole configuration, as parsed from flags and the
// environment.
type Config struct {
	Listen string
	Sensor string
	Pin    string
	// PowerPin is the GPIO the DHT22's VCC is wired to ("": none).
	PowerPin string
	Capture  string
	Bus      string
	Period   time.Duration
	Topic    string
	WholeMsg bool
	Mode     string
	URL      string
	Token    string
	// OwnerToken is the owner credential every writing request needs
	// ("": writing is off).
	OwnerToken string
	Version    bool
	EnvErrors  string
	LogLevel   string

	AllowedHosts  string
	TLSCert       string
	TLSKey        string
	TLSAuto       string
	URLCA         string
	HTTPSRedirect bool
	// ClockHold holds readings back from history and MQTT until the wall
	// clock can be trusted (clock.go).
	ClockHold bool

	SimJitter    time.Duration
	SimErrorRate float64
	SimHangAfter time.Duration
	SimTemp      *sensor.Deci // nil: a slow random walk
	SimHumidity  *sensor.Deci // nil: a slow random walk
	SimNoResp    bool
	SimStopAfter int

	HistoryDir     string
	HistoryRaw     time.Duration
	HistoryRollup  time.Duration
	HistoryCommit  time.Duration
	TempOffset     sensor.Deci
	HumOffset      sensor.Deci
	FrameAncestors string
	Name           string
	MQTTURL        string
	MQTTUser       string
	MQTTPassword   string
	MQTTCA         string
	MQTTPrefix     string
	MQTTDiscovery  string
	MQTTForm       string
	MQTTSubscribe  string
	alertConfig

	// RuntimeDir is $RUNTIME_DIRECTORY, systemd's RuntimeDirectory=, not a
	// flag: where sensord writes its verdict for the update's health gate
	// (verdict.go).
	RuntimeDir string
	// Environ reads the environment sensord started with, not a flag:
	// the settings page shows sensord.conf's values from it (systemd's
	// EnvironmentFile= passes every line). Nil: none.
	Environ func(string) (string, bool)
	// SetupState is the setup access point's state file (paths.SetupState),
	// not a flag: main sets it on the image (under systemd); "" turns the
	// setup page off (setup.go).
	SetupState string
	// Build is the build's version, main's -ldflags "-X main.version",
	// not a flag: in the log, /metrics, /healthz, the verdict and the
	// device Home Assistant is shown.
	Build string
}

// usageError is a configuration mistake: main prints it as one line and
// exits with status 2, having started nothing.
type usageError = flagenv.Error

func badFlag(name, format string, args ...any) *usageError {
	return &usageError{Flag: name, Msg: fmt.Sprintf(format, args...)}
}

// ErrHelp is returned for -h/-help after the usage text has been written.
var ErrHelp = flag.ErrHelp

// settings defines every flag, each storing into its field of c, which
// then holds the defaults. The flags of the front door, of history and
// calibration, of MQTT and of alerts are defined beside their rules, in
// config_front.go, config_history.go, config_mqtt.go and config_alert.go.
func (c *Config) settings() *flagenv.Set {
	s := flagenv.New(envPrefix)
	s.Var(flagenv.Text{P: &c.Name, Check: checkName}, "name", "the device's name in the dashboard, MQTT topics and Home Assistant: letters, digits, -, _ (default: the hostname)")
	s.Var(flagenv.Choice{P: &c.Sensor, Default: "dht22", Choices: sensors.Kinds()}, "sensor", "the sensor chip (sim: a simulated DHT22, no hardware)")
	s.Var(flagenv.Text{P: &c.Pin, Default: "GPIO4", Check: checkPin}, "pin", "GPIO pin of the DHT22's data line")
	s.Var(flagenv.Text{P: &c.PowerPin}, "power-pin", "GPIO pin the DHT22's VCC is wired to: after a run of failed reads sensord switches it off for a few seconds and on again (empty: none)")
	s.Var(flagenv.Choice{P: &c.Capture, Default: "auto", Choices: sensors.Captures()}, "capture", "DHT22 edge timing: auto, cdev (GPIO character device), mmap (/dev/gpiomem busy loop)")
	s.Var(flagenv.Text{P: &c.Bus}, "i2c-bus", "I2C bus for bme280, aht20, am2320 (default: the first, usually 1)")
	s.Var(flagenv.Duration{P: &c.Period, Default: 2 * time.Second, Max: maxPeriod}, "period", "time between readings, at least the sensor's minimum ("+minPeriods()+")")
	s.Var(flagenv.Text{P: &c.Topic, Default: "sensors/dht22", Check: bounded(checkTopic)}, "topic", "topic of every reading")
	s.Var(flagenv.Bool{P: &c.WholeMsg}, "wholemsg", "send the whole message {topic,payload,_msgid} instead of the payload only")
	s.Var(flagenv.Choice{P: &c.Mode, Default: "server", Choices: []string{"server", "client", "both"}}, "mode", "server (serve /ws/sensors), client (send readings to -url), or both")
	s.Var(flagenv.Text{P: &c.URL, Check: checkWSURL}, "url", "ws:// or wss:// URL to send readings to in client mode").Show = redactURL
	s.Var(flagenv.Bool{P: &c.Version}, "version", "print the version and exit")
	s.Var(flagenv.Choice{P: &c.EnvErrors, Default: "exit", Choices: []string{"exit", "warn"}}, "env-errors", "a bad SENSORD_* value: exit (status 2) or warn (log it, use the default)")
	s.Var(flagenv.Choice{P: &c.LogLevel, Default: "info", Choices: []string{"debug", "info", "warn", "error"}}, "log-level", "the least important log lines written")
	s.Var(flagenv.Text{P: &c.URLCA}, "url-ca", "PEM CA file that -url's wss:// server certificate must chain to (empty: the system's roots)")
	s.Var(flagenv.Duration{P: &c.SimJitter, Max: maxSimJitter}, "sim-jitter", "sim: timing jitter of each waveform edge, e.g. 5us")
	s.Var(flagenv.Float{P: &c.SimErrorRate, Max: 1}, "sim-error-rate", "sim: probability 0..1 that a frame carries a flipped bit")
	s.Var(flagenv.Duration{P: &c.SimHangAfter, Max: flagenv.NoMaximum}, "sim-hang-after", "sim: stop answering after this long, so reads block (proves the watchdog); 0 never")
	s.Var(flagenv.OptionalTenths[sensor.Deci]{P: &c.SimTemp, Min: minSimTemp, Max: maxSimTemp, Unit: "degrees C"}, "sim-temp", "sim: fixed temperature in C, e.g. -10.1 (empty: a slow random walk)")
	s.Var(flagenv.OptionalTenths[sensor.Deci]{P: &c.SimHumidity, Min: minSimHumidity, Max: maxSimHumidity, Unit: "%RH"}, "sim-humidity", "sim: fixed humidity in %RH, e.g. 48.2 (empty: a slow random walk)")
	s.Var(flagenv.Bool{P: &c.SimNoResp}, "sim-no-response", "sim: never answer the start pulse")
	s.Var(flagenv.Int{P: &c.SimStopAfter, Max: maxSimStopAfter}, "sim-stop-after", "sim: stop answering after this many reads until -power-pin cycles the power; 0 never")
	s.Var(flagenv.Bool{P: &c.ClockHold}, "clock-hold", "until the clock is set (NTP, a battery-backed clock, or the owner from the dashboard), keep readings in memory instead of writing them to history and MQTT, then store them with correct times (on for a Pi without a clock; the image sets it)")
	c.frontSettings(s)
	c.historySettings(s)
	c.mqttSettings(s)
	c.alertSettings(s)
	return s
}

// minPeriods lists each sensor's minimum period, as its package states it.
func minPeriods() string {
	var b []string
	for _, k := range sensors.Kinds() {
		b = append(b, k+" "+flagenv.ShortDuration(sensors.MinPeriod(k)))
	}
	return strings.Join(b, ", ")
}

// secret is how messages show a password or a token: never, though
// they say whether there is one.
func secret(v string) string {
	if v == "" {
		return ""
	}
	return "xxxxx"
}

// ParseConfig reads flags from args, then fills every flag not given on the
// command line from SENSORD_<NAME> in the environment (lookup), then checks
// the rules that tie flags together. Command-line mistakes always fail.
// Environment mistakes fail too, unless -env-errors=warn: then the flag
// keeps its default and a warning is returned, so an appliance whose
// settings file has a typo still comes up and says what is wrong.
func ParseConfig(args []string, lookup func(string) (string, bool), usage io.Writer) (*Config, []string, error) {
	c := &Config{}
	s := c.settings()
	if err := s.ParseArgs(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(usage, "usage: sensord [flags]; every flag can also be set as SENSORD_<NAME>")
			s.PrintUsage(usage)
			return nil, nil, ErrHelp
		}
		var ue *usageError
		if errors.As(err, &ue) && ue.Flag == "" {
			ue.Msg += " (sensord -help lists the flags)"
		}
		return nil, nil, err
	}
	if len(s.Args()) > 0 {
		return nil, nil, &usageError{Msg: fmt.Sprintf("unexpected argument %q (sensord takes flags only)", s.Args()[0])}
	}
	// -env-errors decides how the others are treated, so it goes first,
	// and a mistake in it always stops.
	if _, err := s.ApplyEnv(lookup, false, "env-errors"); err != nil {
		return nil, nil, err
	}
	warn := c.EnvErrors == "warn"
	warnings, err := s.ApplyEnv(lookup, warn)
	if err != nil {
		return nil, nil, err
	}
	more, err := s.Check(warn, c.rules()...)
	if err != nil {
		return nil, nil, err
	}
	return c, append(warnings, more...), nil
}

// rules are the checks that tie flags together, run once every flag has
// its value. Each blames the flag that a person fixes, and under
// -env-errors=warn that flag's default satisfies the rule; no rule reads a
// flag that a later rule blames, so a reset never breaks an earlier rule.
func (c *Config) rules() []func() error {
	return []func() error{
		func() error {
			if min := sensors.MinPeriod(c.Sensor); c.Period < min {
				return flagenv.Blame("period", "is below the %s minimum of %s", c.Sensor, flagenv.ShortDuration(min))
			}
			return nil
		},
		func() error {
			if c.Mode != "server" && c.URL == "" {
				// Blame -mode: under -env-errors=warn a mode from the settings
				// file without its -url then falls back to server mode.
				return flagenv.Blame("mode", "needs -url, the ws:// or wss:// URL to send readings to")
			}
			return nil
		},
		func() error {
			if c.URLCA == "" {
				return nil
			}
			if !strings.HasPrefix(c.URL, "wss://") {
				return flagenv.Blame("url-ca", "is only for a wss:// -url")
			}
			if _, err := loadCA(c.URLCA); err != nil {
				return flagenv.Blame("url-ca", "is no CA file: %v", err)
			}
			return nil
		},
		func() error {
			switch {
			case c.TLSCert != "" && c.TLSKey == "":
				return flagenv.Blame("tls-cert", "needs its key, -tls-key")
			case c.TLSKey != "" && c.TLSCert == "":
				return flagenv.Blame("tls-key", "needs its certificate, -tls-cert")
			}
			return nil
		},
		func() error {
			if c.OwnerToken != "" && c.OwnerToken == c.Token {
				return flagenv.Blame("owner-token", "must differ from -token: whoever may read would otherwise also change the appliance")
			}
			return nil
		},
		c.checkHistory,
		c.checkName,
		c.checkMQTT,
		c.checkAlerts,
	}
}

func checkPin(v string) error {
	if v == "" {
		return errors.New("names no pin; name the GPIO pin, for example GPIO4")
	}
	return nil
}

func checkTopic(v string) error {
	if v == "" || strings.ContainsAny(v, "+#") {
		return errors.New("must be a non-empty topic without the wildcards + and #")
	}
	return nil
}

func checkWSURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return errors.New("is not a ws:// or wss:// URL")
	}
	return nil
}

// sensorConfig turns the flags into what sensors.Open takes.
func (c *Config) sensorConfig() sensors.Config {
	return sensors.Config{
		Kind:     c.Sensor,
		Pin:      c.Pin,
		PowerPin: c.PowerPin,
		Capture:  c.Capture,
		Bus:      c.Bus,
		Sim: dht22sim.Config{
			Jitter:         c.SimJitter,
			ErrorRate:      c.SimErrorRate,
			HangAfter:      c.SimHangAfter,
			NoResponse:     c.SimNoResp,
			StopAfterReads: c.SimStopAfter,
			Temperature:    c.SimTemp,
			Humidity:       c.SimHumidity,
		},
	}
}

// loadCA reads a PEM file of CA certificates (-url-ca, -mqtt-ca).
func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// maxNameLen bounds -name: it is a DNS label by default (the hostname), so
// 63 bytes, and a topic level and a Home Assistant device name besides.
const maxNameLen = 63

// nameRE is what -name may hold: safe in a topic, a hostname, a Home
// Assistant id and a URL without escaping.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// defaultName is the hostname's first label, the name a Pi already answers
// to as <name>.local.
func defaultName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	name, _, _ := strings.Cut(h, ".")
	return name
}

func checkName(v string) error {
	if v != "" && (len(v) > maxNameLen || !nameRE.MatchString(v)) {
		return fmt.Errorf("must be 1 to %d letters, digits, - or _ (it names the device in MQTT topics and Home Assistant)", maxNameLen)
	}
	return nil
}

// checkName is the rule that an empty -name takes the hostname's first
// label, which must then be a name too.
func (c *Config) checkName() error {
	if c.Name != "" {
		return nil
	}
	h := defaultName()
	if h == "" || checkName(h) != nil {
		return &usageError{Flag: "name", Msg: fmt.Sprintf("the hostname %q is no name for the device: set -name to 1 to %d letters, digits, - or _", h, maxNameLen)}
	}
	c.Name = h
	return nil
}

// UnknownSettings warns about SENSORD_* variables in environ that name no
// flag (a typo such as SENSORD_PERIDO would otherwise be silently ignored).
func UnknownSettings(environ []string) []string {
	known := map[string]bool{}
	s := new(Config).settings()
	for _, f := range s.Flags() {
		known[s.EnvName(f.Name)] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) || known[k] {
			continue
		}
		msg := k + " is not a sensord setting; it is ignored"
		if near := nearestSetting(k, known); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// nearestSetting returns the known name within two edits of k, if any.
func nearestSetting(k string, known map[string]bool) string {
	best, bestD := "", 3
	for name := range known {
		if d := editDistance(k, name); d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
