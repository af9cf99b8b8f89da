package update

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Rules that decide a trial (Decision.Rule, Outcome.Rule); doc.go says
// when each applies.
const (
	RuleAlive          = "alive"            // sensord alive for HealthyFor; the sensor did not read at install, so it does not count
	RuleAliveAndSensor = "alive-and-sensor" // sensord alive for HealthyFor and its sensor reading, as it was at install
	RuleNeverAlive     = "never-alive"      // sensord not alive for HealthyFor without a break within Within
	RuleSensorBroken   = "sensor-broken"    // alive, but the sensor that read at install did not read within Within
	RuleBootEnded      = "boot-ended"       // the trial boot ended before the gate decided (crash, watchdog reset, panic, power cut)
	RuleMarkGood       = "mark-good"        // committed by hand (sensorctl mark-good)
)

// Gate timing on the appliance: a trial is committed after sensord has
// been alive for a minute without a break, and rolled back when that has
// not happened ten minutes after the gate started waiting (room for a
// cold boot on the slowest Pi and under emulation).
const (
	DefaultHealthyFor = time.Minute
	DefaultWithin     = 10 * time.Minute
)

// VerdictInterval is how often sensord rewrites its verdict file;
// VerdictStale is how long a verdict whose Seq does not move still counts:
// a sensord that stopped writing (hung, stopped, restarting) is not alive.
const (
	VerdictInterval = 5 * time.Second
	VerdictStale    = 4 * VerdictInterval
)

// SensorFresh is how recent the last good reading must be for the sensor
// to count as reading: a minute is 30 DHT22 periods, so a sensor that
// fails half its reads still reads, while one that stopped does not.
const SensorFresh = time.Minute

// Verdict is sensord's report on itself: written by sensord (in its
// runtime directory, paths.Verdict) every VerdictInterval while it runs,
// read by the health gate (sensorctl, root). A file rather than an HTTP
// request: it does not depend on -listen, -token, -allowed-hosts,
// -https-redirect or TLS, needs no network, and only root and sensord can
// read or write it.
type Verdict struct {
	// Seq goes up at every write: the gate sees a sensord that stopped.
	Seq     uint64 `json:"seq"`
	Version string `json:"version"`
	// Alive: READY was sent, the HTTP listeners are serving, and the
	// sensor loop and the broadcasters make progress (the watchdog's test).
	Alive   bool   `json:"alive"`
	Problem string `json:"problem,omitempty"`
	// SensorReading: a good reading within SensorFresh.
	SensorReading bool   `json:"sensor_reading"`
	SensorProblem string `json:"sensor_problem,omitempty"`
	// SensorWaiting: no read has finished since sensord started, so the
	// sensor is neither reading nor failing yet.
	SensorWaiting bool `json:"sensor_waiting,omitempty"`
}

// ReadVerdict reads the verdict file at path; stale is true when it was
// last written more than VerdictStale before now (its writer stopped).
func ReadVerdict(path string, now time.Time) (v Verdict, stale bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return v, true, fmt.Errorf("update: sensord's verdict: %w", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, true, fmt.Errorf("update: sensord's verdict %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return v, true, fmt.Errorf("update: sensord's verdict: %w", err)
	}
	return v, now.Sub(fi.ModTime()) > VerdictStale, nil
}

// SensorSettle bounds how long an install waits for a sensord that has
// just started to finish its first read (SensorWaiting): a DHT22 read
// ends within a few seconds, read or failed.
const SensorSettle = 30 * time.Second

// SensorAtInstall is the sensor's state to record at install time, from
// the running sensord's verdict file; waiting is true while sensord has
// not finished its first read (ask again, up to SensorSettle).
func SensorAtInstall(path string, now time.Time) (state string, waiting bool) {
	v, stale, err := ReadVerdict(path, now)
	if err != nil || stale || !v.Alive {
		return SensorNotReading, false
	}
	if v.SensorReading {
		return SensorReading, false
	}
	return SensorNotReading, v.SensorWaiting
}

// Gate decides a trial from a series of verdicts (doc.go, "What commits a
// trial"). Observe it every few seconds with the time and what was read.
type Gate struct {
	HealthyFor, Within time.Duration
	// SensorRequired: the sensor read at install, so the trial must keep
	// it reading.
	SensorRequired bool

	start      time.Time
	aliveSince time.Time // zero while not alive
	seq        uint64
	seqAt      time.Time // when seq last moved
	last       string    // the last observation, in words
}

// Decision is a Gate's answer to one observation.
type Decision struct {
	Done   bool   // false: keep observing
	Commit bool   // with Done: commit (true) or roll back (false)
	Rule   string // with Done: which rule decided
	Reason string // in words: for the journal and the outcome file
}

// Observe takes one reading of the verdict file (v, or the error reading
// it) at now.
func (g *Gate) Observe(now time.Time, v Verdict, err error) Decision {
	if g.start.IsZero() {
		g.start = now
	}
	fresh := false
	switch {
	case err != nil:
		g.last = err.Error()
	case g.seqAt.IsZero() || v.Seq != g.seq:
		g.seq, g.seqAt, fresh = v.Seq, now, true
	default:
		fresh = now.Sub(g.seqAt) <= VerdictStale
		if !fresh {
			g.last = fmt.Sprintf("sensord stopped writing its verdict %s ago", now.Sub(g.seqAt).Round(time.Second))
		}
	}
	alive := fresh && v.Alive
	switch {
	case !alive:
		g.aliveSince = time.Time{}
		if fresh {
			g.last = "sensord not alive: " + v.Problem
		}
	case g.aliveSince.IsZero():
		g.aliveSince = now
	}
	sensor := alive && v.SensorReading
	if alive {
		g.last = "sensord alive"
		if !sensor {
			g.last += ", sensor not reading: " + v.SensorProblem
		}
	}
	long := alive && now.Sub(g.aliveSince) >= g.HealthyFor
	switch {
	case long && !g.SensorRequired:
		return Decision{Done: true, Commit: true, Rule: RuleAlive,
			Reason: fmt.Sprintf("sensord (version %s) alive for %s; the sensor was not reading at install, so it does not count", v.Version, g.HealthyFor)}
	case long && sensor:
		return Decision{Done: true, Commit: true, Rule: RuleAliveAndSensor,
			Reason: fmt.Sprintf("sensord (version %s) alive for %s and the sensor reading, as it was at install", v.Version, g.HealthyFor)}
	case now.Sub(g.start) < g.Within:
		return Decision{}
	case long:
		return Decision{Done: true, Rule: RuleSensorBroken,
			Reason: fmt.Sprintf("the sensor read well at install but not within %s of the trial (%s)", g.Within, g.last)}
	}
	return Decision{Done: true, Rule: RuleNeverAlive,
		Reason: fmt.Sprintf("sensord not alive for %s without a break within %s (last: %s)", g.HealthyFor, g.Within, g.last)}
}
