package setupap

import (
	"fmt"
	"time"
)

// Timing is when setup mode opens and closes.
type Timing struct {
	// Grace is how long a Pi with no Wi-Fi configured waits for a cable's
	// carrier before it opens the access point: a cable plugged in at
	// power-on takes a few seconds to negotiate.
	Grace time.Duration
	// JoinWait is how long the configured network may stay unjoined, with
	// no cable, before the access point opens: room for a router that
	// reboots after a power cut along with the Pi.
	JoinWait time.Duration
	// SetupWait is how long the access point stays open without anyone
	// setting the Pi up before it retries the configured network (for
	// JoinWait, then opens again: the two alternate).
	SetupWait time.Duration
	// TryWait bounds a try to join a network a person asked for:
	// association, the WPA handshake and a DHCP lease.
	TryWait time.Duration
	// JoinedShow is how long the access point opens again after a
	// successful try, so the person's phone reads where the Pi went.
	JoinedShow time.Duration
}

// DefaultTiming is the appliance's.
var DefaultTiming = Timing{
	Grace:      20 * time.Second,
	JoinWait:   3 * time.Minute,
	SetupWait:  10 * time.Minute,
	TryWait:    90 * time.Second,
	JoinedShow: time.Minute,
}

// Inputs are what the Decider looks at, each time it is asked.
type Inputs struct {
	Now time.Time
	// Radio: the Pi has a Wi-Fi interface.
	Radio bool
	// Cable: a wired interface has a carrier.
	Cable bool
	// Configured: sensord.conf names a Wi-Fi network; Joined: the Pi is
	// associated with it.
	Configured bool
	Joined     bool
}

// Action is what the Decider says to do.
type Action int

// The actions.
const (
	Stay Action = iota
	// OpenSetup: open the access point.
	OpenSetup
	// CloseSetup: close it and use the configured network (or cable).
	CloseSetup
)

func (a Action) String() string {
	switch a {
	case OpenSetup:
		return "open setup"
	case CloseSetup:
		return "close setup"
	}
	return "stay"
}

// Decision is an Action and why, in a person's words.
type Decision struct {
	Action Action
	Reason string
}

// Decider decides when setup mode opens and closes. It is pure: the
// caller passes the time and the network's state, and tells it with
// Tried when a person's try ended. One goroutine owns it.
type Decider struct {
	Timing Timing
	setup  bool
	// since is when the network was last seen missing (in station mode,
	// zero while it is fine) or when the access point opened.
	since time.Time
}

// InSetup reports whether the Decider has setup mode open.
func (d *Decider) InSetup() bool { return d.setup }

// Next is the decision for in.
func (d *Decider) Next(in Inputs) Decision {
	if !d.setup {
		if !in.Radio || in.Cable || in.Configured && in.Joined {
			d.since = time.Time{}
			return Decision{}
		}
		if d.since.IsZero() {
			d.since = in.Now
		}
		wait, why := d.Timing.Grace, "no Wi-Fi network is set up and no cable is connected"
		if in.Configured {
			wait = d.Timing.JoinWait
			why = fmt.Sprintf("the Wi-Fi network set up in sensord.conf was not joined within %s and no cable is connected", wait)
		}
		if in.Now.Sub(d.since) < wait {
			return Decision{}
		}
		d.setup, d.since = true, in.Now
		return Decision{Action: OpenSetup, Reason: why}
	}
	switch {
	case !in.Radio:
		d.setup, d.since = false, time.Time{}
		return Decision{Action: CloseSetup, Reason: "the Wi-Fi interface went away"}
	case in.Cable:
		d.setup, d.since = false, time.Time{}
		return Decision{Action: CloseSetup, Reason: "a network cable was connected"}
	case in.Configured && in.Now.Sub(d.since) >= d.Timing.SetupWait:
		// The network's window starts now: JoinWait to join, then setup again.
		d.setup, d.since = false, in.Now
		return Decision{Action: CloseSetup, Reason: fmt.Sprintf("nobody set the Pi up within %s: trying the configured Wi-Fi network again", d.Timing.SetupWait)}
	}
	return Decision{}
}

// Tried tells the Decider that a person's try ended at now: joined
// (setup mode is over) or not (the access point is open again, and
// SetupWait starts over).
func (d *Decider) Tried(now time.Time, joined bool) {
	if joined {
		d.setup, d.since = false, time.Time{}
		return
	}
	d.setup, d.since = true, now
}
