// Package alert turns readings into alerts: rules on a reading's values
// ("hot: temperature > 30 for 5m clear 29"), and two built-in rules on the
// sensor itself (it is failing; no reading has come for a while), each
// raised and cleared as an Event the daemon sends to its outputs.
//
// A rule raises once its metric has been past the threshold on every
// reading for its hold time, and clears once the metric has been back at
// or past its clear value, which lies on the other side of the threshold
// (hysteresis), for as long. Rules judge fresh readings only: while no
// reading comes they keep their state, and the built-in rules speak.
// Active alerts are kept in a Store (FileStore: a small JSON file written
// atomically), so a restart neither raises them again nor forgets to
// clear them. A Webhook POSTs every event to one URL, in order, retried
// with back-off from a bounded queue.
//
// # Concurrency
//
// An Engine's methods are safe from any goroutine; each event is returned
// to exactly one caller, in the order the engine decided them. A
// Webhook's Send is safe from any goroutine, its Run belongs to one.
package alert

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"sensord/sensor"
)

// Transition is what happened to an alert: raised or cleared.
type Transition string

// The transitions an Event carries (as "state" in its JSON).
const (
	Raised  Transition = "raised"
	Cleared Transition = "cleared"
)

// The built-in rules' names.
const (
	// SensorFailing is raised when the sensor's reads fail (as the
	// daemon's sensor watch decides it) and cleared once the sensor has
	// read well for SensorFailingClearAfter.
	SensorFailing = "sensor_failing"
	// NoReading is raised when no good reading has come for longer than
	// NoReadingAfter, failing or not (a read that blocks), and cleared by
	// the next good reading.
	NoReading = "no_reading"
)

// NoReadingPeriods is the gap in the readings, in periods, that makes a
// rule forget a pending hold.
const NoReadingPeriods = 5

// NoReadingFailures is how many failed reads in a row, retried with the
// poller's back-off (sensor.PeriodicOpts), NoReading waits out: a DHT22
// that fails one read in two runs into five in a row about once in 32
// runs, and an alert raised and cleared at each such run would flap.
// Home Assistant's expire_after waits out as many (broadcast/mqtt).
const NoReadingFailures = 5

// MinNoReading is the shortest wait before NoReading is raised, however
// short the period: a first read after start-up, a read's own timeout
// and the poller's retry back-off take seconds, and a fast period must
// not raise it at every start.
const MinNoReading = 10 * time.Second

// NoReadingAfter is how long without a good reading raises NoReading for
// a sensor read every period: longer than the poller's retries of
// NoReadingFailures failed reads take, plus one period for the reads
// themselves, and at least MinNoReading.
func NoReadingAfter(period time.Duration) time.Duration {
	return max(sensor.PeriodicOpts(period).Silence(NoReadingFailures)+period, MinNoReading)
}

// IsBuiltin reports whether name is a built-in rule's.
func IsBuiltin(name string) bool { return name == SensorFailing || name == NoReading }

// Type is the "type" field of an alert message.
const Type = "alert"

// Event is one alert raised or cleared.
type Event struct {
	Name      string
	State     Transition
	Metric    Metric
	Value     sensor.Deci // tenths of the metric's unit, at the transition
	Threshold sensor.Deci // tenths: the threshold when raised, the clear value when cleared
	Time      time.Time   // when it was raised or cleared
}

// AppendJSON appends e as the alert message,
// {"type":"alert","name":"hot","state":"raised","metric":"temperature","value":30.4,"threshold":30,"timestamp":1763856000123}.
func (e Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":"`+Type+`","name":`...)
	b = strconv.AppendQuote(b, e.Name) // names are ASCII letters, digits, - and _
	b = append(b, `,"state":"`...)
	b = append(b, e.State...)
	b = append(b, `","metric":"`...)
	b = append(b, e.Metric...)
	b = append(b, `","value":`...)
	b = e.Value.AppendJSON(b)
	b = append(b, `,"threshold":`...)
	b = e.Threshold.AppendJSON(b)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, e.Time.UnixMilli(), 10)
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON's shape.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(make([]byte, 0, 160)), nil }

// Health is what the built-in rules judge, as the daemon sees the sensor.
type Health struct {
	Failing  bool      // the sensor watch says the sensor is failing
	LastGood time.Time // the last good reading (zero: none yet)
	Started  time.Time // the daemon's start, the reference before the first reading
}

// Options configure an Engine.
type Options struct {
	Rules []Rule
	// Period is the sensor's; NoReading is raised after
	// NoReadingAfter(Period), and rules forget a pending hold over a gap
	// of NoReadingPeriods periods.
	Period time.Duration
	// FailingAfter is how long without a good reading the sensor watch
	// takes to call a failing sensor failing (SensorFailing's threshold).
	FailingAfter time.Duration
	// Store keeps the active alerts across a restart; nil keeps them in
	// memory only.
	Store Store
	// Now is the clock of the built-in rules; nil is time.Now.
	Now func() time.Time
}

// Stats are an engine's counters.
type Stats struct {
	Raised, Cleared uint64 // transitions since New
	SaveErrors      uint64 // Store.Save calls that failed
	Active          []Event
}

// Engine judges readings against its rules. See the package doc.
type Engine struct {
	o       Options
	rules   []Rule // o.Rules and the built-ins
	builtin map[string]Rule

	mu       sync.Mutex // guards the fields below
	states   map[string]*ruleState
	lastSeen time.Time // the newest reading Observe judged
	stats    Stats
}

// ruleState is one rule's state between readings.
type ruleState struct {
	active  bool
	raised  Event     // the raise, while active
	pending time.Time // first reading of the current run towards the other state; zero: none
}

// New returns an engine on o's rules, with the active alerts o.Store
// kept. A store that cannot be read is an error beside a working engine
// that starts with none active.
func New(o Options) (*Engine, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &Engine{o: o, states: map[string]*ruleState{}, builtin: map[string]Rule{
		SensorFailing: {Name: SensorFailing, Metric: ReadingAge, Above: true, Threshold: seconds(o.FailingAfter)},
		NoReading:     {Name: NoReading, Metric: ReadingAge, Above: true, Threshold: seconds(NoReadingAfter(o.Period))},
	}}
	e.rules = append(slices.Clone(o.Rules), e.builtin[SensorFailing], e.builtin[NoReading])
	for _, r := range e.rules {
		e.states[r.Name] = &ruleState{}
	}
	if o.Store == nil {
		return e, nil
	}
	saved, err := o.Store.Load()
	for _, ev := range saved {
		if st, ok := e.states[ev.Name]; ok && e.rule(ev.Name).Metric == ev.Metric && ev.State == Raised {
			st.active, st.raised = true, ev
		}
	}
	return e, err
}

// rule returns the rule called name.
func (e *Engine) rule(name string) Rule {
	for _, r := range e.rules {
		if r.Name == name {
			return r
		}
	}
	return Rule{}
}

// Rules returns the rules, the built-in ones last.
func (e *Engine) Rules() []Rule { return slices.Clone(e.rules) }

// seconds is d in tenths of a second.
func seconds(d time.Duration) sensor.Deci { return sensor.Deci(d / (100 * time.Millisecond)) }

// Observe judges a good reading against every rule and returns the alerts
// it raised or cleared, and the Store's error if saving them failed. It
// is the built-in rules' good reading too. Its derived values are the
// ones the dew point and absolute humidity rules judge.
func (e *Engine) Observe(rd sensor.Derived) ([]Event, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A gap in the readings is a gap in the evidence: a hold that began
	// before it does not count the gap as held.
	if gap := rd.Time.Sub(e.lastSeen); !e.lastSeen.IsZero() && gap > NoReadingPeriods*e.o.Period {
		for _, st := range e.states {
			st.pending = time.Time{}
		}
	}
	e.lastSeen = rd.Time
	var out []Event
	for _, r := range e.o.Rules {
		v, ok := r.value(rd)
		if !ok {
			continue
		}
		st := e.states[r.Name]
		toward := r.fired(v)
		if st.active {
			toward = r.cleared(v)
		}
		if !toward {
			st.pending = time.Time{}
			continue
		}
		if st.pending.IsZero() {
			st.pending = rd.Time
		}
		if rd.Time.Sub(st.pending) < r.Hold {
			continue
		}
		out = append(out, e.flip(r, st, v, rd.Time))
	}
	return out, e.save(out)
}

// Check judges the sensor's health with the built-in rules.
func (e *Engine) Check(h Health) ([]Event, error) {
	now := e.o.Now()
	ref := h.LastGood
	if ref.IsZero() {
		ref = h.Started
	}
	age := seconds(now.Sub(ref))
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, name := range []string{SensorFailing, NoReading} {
		r, st := e.builtin[name], e.states[name]
		bad, hold := age > r.Threshold, time.Duration(0)
		if name == SensorFailing {
			bad, hold = h.Failing, SensorFailingClearAfter(e.o.Period)
		}
		switch {
		case bad && !st.active:
			out = append(out, e.flip(r, st, age, now))
		case bad:
			st.pending = time.Time{}
		// Only a good reading after the raise clears it: a sensor watch
		// that has not looked yet (after a restart) says nothing.
		case st.active && h.LastGood.After(st.raised.Time):
			if st.pending.IsZero() {
				st.pending = now
			}
			if now.Sub(st.pending) >= hold {
				out = append(out, e.flip(r, st, age, now))
			}
		}
	}
	return out, e.save(out)
}

// SensorFailingClearAfter is how long the sensor must read without being
// called failing before SensorFailing clears: as long as NoReading waits.
// The watch calls a sensor failing after a couple of failed reads and
// well at the next good one, so a sensor that fails now and then would
// otherwise raise and clear it at every run of failures; this way it is
// one alert while the sensor keeps failing now and then.
func SensorFailingClearAfter(period time.Duration) time.Duration { return NoReadingAfter(period) }

// flip moves st to the other state and returns the event. e.mu is held.
func (e *Engine) flip(r Rule, st *ruleState, v sensor.Deci, at time.Time) Event {
	st.pending = time.Time{}
	ev := Event{Name: r.Name, Metric: r.Metric, Value: v, Time: at}
	if st.active {
		st.active = false
		ev.State, ev.Threshold = Cleared, r.Clear
		if r.Metric == ReadingAge {
			ev.Threshold = r.Threshold
		}
		e.stats.Cleared++
		return ev
	}
	st.active = true
	ev.State, ev.Threshold = Raised, r.Threshold
	st.raised = ev
	e.stats.Raised++
	return ev
}

// save hands the active alerts to the Store after a transition. e.mu is
// held.
func (e *Engine) save(changed []Event) error {
	if len(changed) == 0 || e.o.Store == nil {
		return nil
	}
	if err := e.o.Store.Save(e.active()); err != nil {
		e.stats.SaveErrors++
		return fmt.Errorf("alert: keeping the active alerts: %w", err)
	}
	return nil
}

// Active returns the raise of every active alert, oldest first: what a
// client that connects now must be told.
func (e *Engine) Active() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active()
}

func (e *Engine) active() []Event {
	var out []Event
	for _, r := range e.rules {
		if st := e.states[r.Name]; st.active {
			out = append(out, st.raised)
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out
}

// Stats returns the counters and the active alerts.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Active = e.active()
	return s
}
