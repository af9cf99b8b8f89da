package link

import "time"

// RepeatEvery bounds the "still down" lines while a link stays down: one a
// minute keeps the journal readable.
const RepeatEvery = time.Minute

// News is what a change in a link deserves in the journal.
type News int

// The news an Outage tells.
const (
	Quiet     News = iota // nothing worth a line
	First                 // the link's first success
	Down                  // the link went down, or is down for another cause
	StillDown             // it stays down, and RepeatEvery passed since its last line
	Back                  // an outage ended
)

// Outage times one link's outages for its journal lines: one when the link
// goes down (or its cause changes), at most one a RepeatEvery while it
// stays down, one when it is back. The lines' words are its owner's.
//
// The zero value is a link that has not been tried. Its owner guards it.
type Outage struct {
	worked   bool      // Up was called at least once
	down     bool      // an outage is under way
	cause    string    // what the outage was last reported as
	since    time.Time // when the outage began
	reported time.Time // its last line
	failures int       // Fail calls since it began
}

// Fail records a failure at now, of the kind cause ("" where the kind does
// not matter), and tells whether it is news: Down when the link was up or
// the cause changed (the outage goes on from its start), StillDown when
// the outage has gone RepeatEvery without a line, Quiet otherwise.
func (o *Outage) Fail(now time.Time, cause string) News {
	switch {
	case !o.down:
		o.down, o.cause, o.since, o.reported, o.failures = true, cause, now, now, 1
		return Down
	case cause != o.cause:
		o.cause, o.reported = cause, now
		o.failures++
		return Down
	case now.Sub(o.reported) >= RepeatEvery:
		o.reported = now
		o.failures++
		return StillDown
	}
	o.failures++
	return Quiet
}

// Backdate moves the start of the outage under way to since: a failure
// noticed late (no good reading since the last one) began before it was
// noticed.
func (o *Outage) Backdate(since time.Time) {
	if o.down {
		o.since = since
	}
}

// Up records that the link works and tells whether it is news: Back when
// it ends an outage (Since and Failures still describe that outage), First
// at the link's first success, Quiet otherwise.
func (o *Outage) Up() News {
	news := Quiet
	switch {
	case o.down:
		news = Back
	case !o.worked:
		news = First
	}
	o.worked, o.down = true, false
	return news
}

// IsDown reports whether an outage is under way.
func (o *Outage) IsDown() bool { return o.down }

// Since is when the last outage began (zero before the first).
func (o *Outage) Since() time.Time { return o.since }

// Failures counts the failures of the last outage.
func (o *Outage) Failures() int { return o.failures }
