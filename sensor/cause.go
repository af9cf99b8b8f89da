package sensor

import "errors"

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
	return []Cause{CauseUnknown, CauseNoAnswer, CauseBadSignal, CauseWrongModel, CauseStuckLow, CauseStuckHigh, CauseNoise, CauseLineBusy, CauseLineGone}
}

// String names the cause for metrics labels and JSON: "unknown",
// "no_answer", "bad_signal", "wrong_model", "stuck_low", "stuck_high",
// "noise", "line_busy", "line_gone".
func (c Cause) String() string {
	switch c {
	case CauseLineBusy:
		return "line_busy"
	case CauseLineGone:
		return "line_gone"
	case CauseNoAnswer:
		return "no_answer"
	case CauseBadSignal:
		return "bad_signal"
	case CauseWrongModel:
		return "wrong_model"
	case CauseStuckLow:
		return "stuck_low"
	case CauseStuckHigh:
		return "stuck_high"
	case CauseNoise:
		return "noise"
	}
	return "unknown"
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (c Cause) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Problem says in a person's words what the line showed; where names the
// line ("on GPIO4").
func (c Cause) Problem(where string) string {
	switch c {
	case CauseNoAnswer:
		return "the sensor " + where + " does not answer at all"
	case CauseBadSignal:
		return "the sensor " + where + " answers, but with edges missing or too slow to read"
	case CauseWrongModel:
		return "the sensor " + where + " answers in another model's format (a DHT11, or a clone that differs from the DHT22)"
	case CauseStuckLow:
		return "the data line " + where + " is stuck low"
	case CauseStuckHigh:
		return "the data line " + where + " is stuck high, even while sensord drives it low"
	case CauseNoise:
		return "the sensor's answers " + where + " arrive garbled (checksum errors)"
	case CauseLineBusy:
		return "the data line " + where + " is in use by another program, a driver or a sysfs export"
	case CauseLineGone:
		return "the GPIO chip of the line " + where + " went away (its driver unbound or its module unloaded)"
	}
	return "reads of the sensor " + where + " fail"
}

// Fix says what usually helps; wiring is the sensor's own wiring advice
// (which pin, which pull-up), used where the cause points at the wiring.
func (c Cause) Fix(wiring string) string {
	switch c {
	case CauseNoAnswer:
		return "check that the sensor has power (3.3 V and GND), that its data pin is wired to this pin and that -pin names it (BCM numbering: GPIO4 is header pin 7), and the pull-up resistor (4.7-10 kΩ from data to 3.3 V)"
	case CauseBadSignal:
		return "check the pull-up resistor (4.7-10 kΩ from data to 3.3 V; missing or too weak makes edges slow), shorten the cable or use a shielded one, and keep it away from mains and motors"
	case CauseWrongModel:
		return "check which sensor is wired: a DHT11 (blue, whole numbers only) is not a DHT22/AM2302 (white); use -sensor for the chip you have"
	case CauseStuckLow:
		return "look for a short between data and GND or a broken sensor, and check that no other device or overlay (dtoverlay=dht11, w1-gpio) drives this pin"
	case CauseStuckHigh:
		return "look for a short between data and 3.3 V, and check that no other device or overlay drives this pin"
	case CauseNoise:
		return "check for a loose wire, a long or unshielded cable, or a missing pull-up resistor; a few garbled answers a day are normal"
	case CauseLineBusy:
		return "the last error names who holds it (gpioinfo shows it too): stop that program, unexport the pin (echo N > /sys/class/gpio/unexport) or remove the overlay (dtoverlay=dht11); sensord takes the line as soon as it is free"
	case CauseLineGone:
		return "load the GPIO driver again (modprobe) or re-add the chip; sensord requests the line again by itself once the chip is back"
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
