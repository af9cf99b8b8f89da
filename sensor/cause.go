package sensor

import (
	"errors"
	"fmt"
)

// Cause is the likely cause of a failed read, told from how the line
// behaved: a driver that can tell (package dht22, from the edge timings)
// attaches one to its errors, and CauseOf finds it. Each cause carries a
// person's words for what is wrong and what to do.
type Cause uint8

// The causes, in the order a person would check them.
const (
	// CauseUnknown: the driver could not tell, or did not try.
	CauseUnknown Cause = iota
	// CauseNoAnswer: no edge at all after the start pulse, the line
	// resting high (its pull-up): nothing answers on this pin.
	CauseNoAnswer
	// CauseBadSignal: an answer came, but with edges missing or too slow
	// for its bits to be told apart.
	CauseBadSignal
	// CauseWrongModel: a whole, well-formed answer in another chip's
	// format or bit timing (a DHT11, or a clone that differs).
	CauseWrongModel
	// CauseStuckLow: the line stays low where the sensor should let it
	// rise.
	CauseStuckLow
	// CauseStuckHigh: the line stays high even while the host drives it
	// low.
	CauseStuckHigh
	// CauseNoise: whole answers whose checksum does not match.
	CauseNoise
	// CauseLineBusy: another program, driver or a sysfs export holds the
	// line, so sensord cannot request it.
	CauseLineBusy
	// CauseLineGone: the line's GPIO chip went away (its driver unbound,
	// its module unloaded).
	CauseLineGone
)

// NumCauses is the number of causes, for arrays indexed by Cause.
const NumCauses = int(CauseLineGone) + 1

// Causes lists every cause, CauseUnknown first, for counters that show
// zeros too.
func Causes() []Cause {
	cs := make([]Cause, NumCauses)
	for i := range cs {
		cs[i] = Cause(i)
	}
	return cs
}

// causeWords is a cause's name and a person's words for it. In problem,
// %s is where the line is ("on GPIO4"); a cause without a fix of its own
// points at the sensor's wiring.
type causeWords struct{ name, problem, fix string }

// causes holds every cause's words, by Cause.
var causes = [NumCauses]causeWords{
	CauseUnknown: {"unknown", "reads of the sensor %s fail", ""},
	CauseNoAnswer: {"no_answer", "the sensor %s does not answer at all",
		"check that the sensor has power (3.3 V and GND), that its data pin is wired to this pin and that -pin names it (BCM numbering: GPIO4 is header pin 7), and the pull-up resistor (4.7-10 kΩ from data to 3.3 V)"},
	CauseBadSignal: {"bad_signal", "the sensor %s answers, but with edges missing or too slow to read",
		"check the pull-up resistor (4.7-10 kΩ from data to 3.3 V; missing or too weak makes edges slow), shorten the cable or use a shielded one, and keep it away from mains and motors"},
	CauseWrongModel: {"wrong_model", "the sensor %s answers in another model's format (a DHT11, or a clone that differs from the DHT22)",
		"check which sensor is wired: a DHT11 (blue, whole numbers only) is not a DHT22/AM2302 (white); use -sensor for the chip you have"},
	CauseStuckLow: {"stuck_low", "the data line %s is stuck low",
		"look for a short between data and GND or a broken sensor, and check that no other device or overlay (dtoverlay=dht11, w1-gpio) drives this pin"},
	CauseStuckHigh: {"stuck_high", "the data line %s is stuck high, even while sensord drives it low",
		"look for a short between data and 3.3 V, and check that no other device or overlay drives this pin"},
	CauseNoise: {"noise", "the sensor's answers %s arrive garbled (checksum errors)",
		"check for a loose wire, a long or unshielded cable, or a missing pull-up resistor; a few garbled answers a day are normal"},
	CauseLineBusy: {"line_busy", "the data line %s is in use by another program, a driver or a sysfs export",
		"the last error names who holds it (gpioinfo shows it too): stop that program, unexport the pin (echo N > /sys/class/gpio/unexport) or remove the overlay (dtoverlay=dht11); sensord takes the line as soon as it is free"},
	CauseLineGone: {"line_gone", "the GPIO chip of the line %s went away (its driver unbound or its module unloaded)",
		"load the GPIO driver again (modprobe) or re-add the chip; sensord requests the line again by itself once the chip is back"},
}

// words is c's words; a value past the last cause is unknown.
func (c Cause) words() causeWords {
	if int(c) >= NumCauses {
		return causes[CauseUnknown]
	}
	return causes[c]
}

// String names the cause for metrics labels and JSON: "unknown",
// "no_answer", "bad_signal", "wrong_model", "stuck_low", "stuck_high",
// "noise", "line_busy", "line_gone".
func (c Cause) String() string { return c.words().name }

// MarshalText implements encoding.TextMarshaler with String's names.
func (c Cause) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Problem says in a person's words what the line showed; where names the
// line ("on GPIO4").
func (c Cause) Problem(where string) string { return fmt.Sprintf(c.words().problem, where) }

// Fix says what usually helps; wiring is the sensor's own wiring advice
// (which pin, which pull-up), used where the cause points at the wiring.
func (c Cause) Fix(wiring string) string {
	if f := c.words().fix; f != "" {
		return f
	}
	return wiring
}

// causer is implemented by errors that know their likely cause.
type causer interface{ Cause() Cause }

// CauseOf returns the cause a driver attached to err, CauseUnknown when
// none did (or err is nil).
func CauseOf(err error) Cause {
	var c causer
	if errors.As(err, &c) {
		return c.Cause()
	}
	return CauseUnknown
}

// WithCause returns err annotated with c: errors.Is and errors.As still see
// err, CauseOf sees c, and the text is err's.
func WithCause(err error, c Cause) error {
	if err == nil {
		return nil
	}
	return &causeError{err: err, cause: c}
}

type causeError struct {
	err   error
	cause Cause
}

func (e *causeError) Error() string { return e.err.Error() }
func (e *causeError) Unwrap() error { return e.err }
func (e *causeError) Cause() Cause  { return e.cause }
