// Package health decides what sensord's /healthz says: the sensor's health
// window, the watchdog's gate, the links that may degrade the daemon but
// never fail it, and the JSON that carries the verdict beside the daemon's
// state.
//
// The verdict, by what holds at the moment of the check (the first row
// that matches wins):
//
//	loops stuck (Alive fails)                 503 unhealthy  Alive's error
//	the sensor's verdict is failing or stuck  503 unhealthy  the verdict's summary
//	the sensor's verdict is waiting           200 starting   no good reading yet
//	a Degraded part down                      200 degraded   that part's reason
//	the sensor's verdict is degraded          200 degraded   the verdict's summary
//	a part Describe described is down         200 degraded   its reason
//	otherwise                                 200 ok
//
// The sensor's part is the steady verdict of package sensorwatch, not a
// look at the last reading's age: a sensor failing half its reads misses
// three periods in a row now and then, and a status that followed those
// gaps would flip between 200 and 503 while the banner, the journal and
// sensor.state all say "degraded"; the status says so too, with a 200.
//
// A degraded part (the MQTT broker) never gets a 503: the watchdog's gate
// does not look at it either, so a dead broker cannot get the daemon
// restarted or taken out of a load balancer.
//
// # Concurrency
//
// A Checker is read-only once built; Check and ServeHTTP may be called
// from any number of goroutines, as long as its funcs may.
package health

import (
	"math"
	"net/http"
	"time"

	"sensord/cmd/sensord/internal/httpjson"
	"sensord/cmd/sensord/internal/sysstat"
	"sensord/internal/link"
	"sensord/sensor"
)

// The statuses a Report may carry.
const (
	StatusOK        = "ok"
	StatusStarting  = "starting"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
)

// windowSlack is added to the three periods of the window: a read itself
// takes a while (up to a DHT22's timeout), and a reading that is due is
// not yet late.
const windowSlack = time.Second

// Window is how long the sensor may go without a good reading before its
// verdict is no longer ok (package sensorwatch): three periods, so one or
// two failed reads (which a DHT22 has now and then) do not count, and a
// second. A fresh daemon gets the same grace from its start.
type Window struct {
	Period time.Duration
}

// Length is the window's span.
func (w Window) Length() time.Duration { return 3*w.Period + windowSlack }

// Overdue reports how long ago the last good reading was (measured from
// started while there has been none) and whether that is past the window.
func (w Window) Overdue(now, lastSuccess, started time.Time) (age time.Duration, over bool) {
	since := lastSuccess
	if since.IsZero() {
		since = started
	}
	age = now.Sub(since)
	return age, age > w.Length()
}

// Uptime is the seconds from started to now, to the millisecond, as
// /healthz, get_status and /metrics report it (like Node.js's
// process.uptime()).
func Uptime(started, now time.Time) float64 {
	return math.Round(now.Sub(started).Seconds()*1000) / 1000
}

// Checker checks the daemon's health. Every func field but Describe is
// required.
type Checker struct {
	// Now is the clock the window is measured with.
	Now func() time.Time
	// Started is when the daemon started: the window's start until a good
	// reading comes, and uptime's zero.
	Started time.Time
	// Window's period is reported as the sensor's.
	Window Window
	// Version is the firmware's version, reported as is.
	Version string
	// Sensor returns the poller's counters.
	Sensor func() sensor.Stats
	// Verdict returns the sensor's steady verdict (package sensorwatch):
	// failing or stuck make the daemon unhealthy, waiting is starting,
	// degraded degrades it.
	Verdict func() SensorState
	// Alive is the watchdog's gate: nil while the loops make progress,
	// otherwise which one is stuck.
	Alive func() error
	// Degraded are the parts that may be down without the daemon being
	// unhealthy: each returns "" while its part works, else why not. The
	// first reason reported wins.
	Degraded []func() string
	// Describe fills the report's other parts (names, clients, the
	// outputs, the device) and returns why a part it described degrades
	// the daemon ("" when none does), weighed after Degraded. It sees the
	// sensor's counters and verdict already filled in.
	Describe func(*Report) (degraded string)
}

// Check returns the HTTP status and the report.
func (c *Checker) Check() (int, Report) {
	now := c.Now()
	st := c.Sensor()
	r := Report{
		Status:  StatusOK,
		Version: c.Version,
		Uptime:  Uptime(c.Started, now),
		Sensor: Sensor{
			Period:    c.Window.Period.Seconds(),
			Reads:     st.Reads,
			Successes: st.Successes,
			Held:      st.Held,
			Errors:    st.Errors,
			LastError: st.LastError,
		},
	}
	if st.Reads > 0 {
		r.Sensor.SuccessRate = math.Round(float64(st.Successes)/float64(st.Reads)*10000) / 10000
	}
	if !st.LastErrorTime.IsZero() {
		r.Sensor.LastErrorTime = st.LastErrorTime.UnixMilli()
	}
	if !st.LastSuccess.IsZero() {
		r.Sensor.LastSuccess = st.LastSuccess.UnixMilli()
	}
	// The report carries the same verdict the status is decided by.
	verdict := c.Verdict()
	r.Sensor.SensorState = verdict
	described := ""
	if c.Describe != nil {
		described = c.Describe(&r)
	}
	if r.Clients == nil {
		r.Clients = map[string]int{}
	}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}

	alive := c.Alive()
	switch verdict.State {
	case SensorFailing, SensorStuck:
		r.Status, r.Reason = StatusUnhealthy, verdict.Summary
	case SensorWaiting:
		// Within the start-up grace, but nothing proves the sensor works.
		r.Status, r.Reason = StatusStarting, "no good reading yet"
	}
	if alive != nil {
		r.Status, r.Reason = StatusUnhealthy, alive.Error()
	}
	if r.Status == StatusOK {
		for _, down := range c.Degraded {
			if why := down(); why != "" {
				r.Status, r.Reason = StatusDegraded, why
				break
			}
		}
		if r.Status == StatusOK && verdict.State == SensorDegraded {
			r.Status, r.Reason = StatusDegraded, verdict.Summary
		}
		if r.Status == StatusOK && described != "" {
			r.Status, r.Reason = StatusDegraded, described
		}
	}
	if r.Status == StatusUnhealthy {
		return http.StatusServiceUnavailable, r
	}
	return http.StatusOK, r
}

// ServeHTTP answers GET /healthz with Check's status and report.
func (c *Checker) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	code, r := c.Check()
	httpjson.Write(w, code, r)
}

// Report is /healthz's body. The field order is the JSON's, which scripts
// may have been written against.
type Report struct {
	Status  string         `json:"status"`
	Reason  string         `json:"reason,omitempty"`
	Version string         `json:"version"`
	Uptime  float64        `json:"uptime"`
	Sensor  Sensor         `json:"sensor"`
	Clients map[string]int `json:"clients"` // by WebSocket path, without /ws/
	Client  *Client        `json:"client,omitempty"`
	// TLSFingerprint is the SHA-256 of the served certificate, to compare
	// with what a browser shows for a self-signed one.
	TLSFingerprint string   `json:"tls_fingerprint,omitempty"`
	Name           string   `json:"name"`
	MQTT           *MQTT    `json:"mqtt,omitempty"`
	Warnings       []string `json:"warnings"`
	Extra          Extra    `json:"extra"`
	// Clock is the wall clock's state (absent where Describe gives none).
	Clock *Clock `json:"clock,omitempty"`
}

// Sensor is the sensor's part: its counters and its state in words.
type Sensor struct {
	Name          string            `json:"name"`
	Period        float64           `json:"period"` // seconds
	Reads         uint64            `json:"reads"`
	Successes     uint64            `json:"successes"`
	Held          uint64            `json:"held"`
	SuccessRate   float64           `json:"success_rate"`
	Errors        map[string]uint64 `json:"errors"`
	LastError     string            `json:"last_error,omitempty"`
	LastErrorTime int64             `json:"last_error_time,omitempty"` // ms since the epoch
	LastSuccess   int64             `json:"last_success,omitempty"`    // ms since the epoch
	SensorState
}

// SensorCondition is the sensor's verdict, one word.
type SensorCondition string

// The sensor's verdicts (package sensorwatch decides which holds).
const (
	SensorWaiting  SensorCondition = "waiting"  // no read has finished yet
	SensorOK       SensorCondition = "ok"       // reads succeed
	SensorDegraded SensorCondition = "degraded" // readings come, but many reads fail
	SensorFailing  SensorCondition = "failing"  // no good reading for a long while
	SensorStuck    SensorCondition = "stuck"    // a read has not returned
)

// SensorState is the sensor's health in words and numbers, for the
// dashboard's banner, /healthz, get_status and the journal: all show these
// same figures.
type SensorState struct {
	State SensorCondition `json:"state"`
	// Summary is the verdict in one sentence, e.g. "degraded: 55 % of
	// reads failed in the last 10 minutes (66 of 120)".
	Summary string `json:"summary,omitempty"`
	Problem string `json:"problem,omitempty"`
	Fix     string `json:"fix,omitempty"`
	// Cause is the likely cause of most failed reads in the window
	// (sensor.Cause's names); absent when none was told.
	Cause       string `json:"cause,omitempty"`
	Since       int64  `json:"since,omitempty"` // ms: when this verdict began (not ok)
	FailedReads uint64 `json:"failed_reads,omitempty"`
	// WindowReads and WindowFailed count the reads that ended within the
	// last WindowSeconds, the span the verdict is about.
	WindowReads   uint64  `json:"window_reads"`
	WindowFailed  uint64  `json:"window_failed"`
	WindowSeconds float64 `json:"window_seconds"`
}

// Clock is the wall clock's state: whether it can be trusted and, with
// -clock-hold, the readings held until it can.
type Clock struct {
	Trusted bool   `json:"trusted"`
	By      string `json:"by,omitempty"`    // what set it: timesyncd, kernel-ntp, rtc, owner
	Since   int64  `json:"since,omitempty"` // ms: when it became trusted
	Hold    bool   `json:"hold"`            // -clock-hold
	Held    int    `json:"held"`            // readings waiting for it
	Dropped uint64 `json:"dropped"`         // held readings dropped beyond the bound
	Problem string `json:"problem,omitempty"`
	Fix     string `json:"fix,omitempty"`
}

// Client is client mode's link to -url.
type Client struct {
	URL      string     `json:"url"` // without its password
	State    link.State `json:"state"`
	Reason   string     `json:"reason,omitempty"`
	Attempts int        `json:"attempts"`
	Dropped  uint64     `json:"dropped"`
	// Backfilled: of what was dropped, the readings sent again from
	// history once the remote was back.
	Backfilled uint64 `json:"backfilled"`
}

// MQTT is the broker link: never the password.
type MQTT struct {
	Broker    string     `json:"broker"`
	User      string     `json:"user,omitempty"`
	State     link.State `json:"state"`
	Reason    string     `json:"reason,omitempty"`
	Since     int64      `json:"since"`
	Attempts  int        `json:"attempts"`
	Topics    string     `json:"topics"`
	Discovery string     `json:"discovery"`
	Subscribe string     `json:"subscribe"`
	Queued    int        `json:"queued"`
	Dropped   uint64     `json:"dropped"`
}

// Extra is what the dashboard shows besides: the calibration in force,
// the history store's state and the device itself. The device's name is
// Health.Name, its one place.
type Extra struct {
	Calibration Calibration    `json:"calibration"`
	History     History        `json:"history"`
	Device      sysstat.Device `json:"device"`
}

// Calibration is the offsets added to every reading.
type Calibration struct {
	TemperatureOffset float64 `json:"temperature_offset"`
	HumidityOffset    float64 `json:"humidity_offset"`
}

// History is the history store's state.
type History struct {
	Enabled   bool   `json:"enabled"`
	Path      string `json:"path,omitempty"` // "" in memory
	Error     string `json:"error,omitempty"`
	Queued    int    `json:"queued"`
	Written   uint64 `json:"written"`
	Dropped   uint64 `json:"dropped"`
	LastWrite int64  `json:"last_write,omitempty"` // ms since the epoch
	// FailingSince is when commits began to fail (ms), Fix what to do.
	FailingSince int64  `json:"failing_since,omitempty"`
	Fix          string `json:"fix,omitempty"`
	// Start is the oldest reading held (ms): where the history begins.
	Start int64 `json:"start,omitempty"`
}
