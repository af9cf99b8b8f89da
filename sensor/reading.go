// Package sensor holds what every sensor driver of sensord shares: the
// validated Reading and its sensor_update JSON, the Sensor interface the
// daemon polls, the error kinds a caller can tell apart, and the Poller that
// reads on a schedule with retries, back-off and a plausibility filter.
//
// Drivers live below it, one package per chip (sensor/dht22, ...), and keep
// integer units inside; only Reading's JSON turns tenths into a decimal.
package sensor

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Deci is a fixed-point value in tenths, the resolution a DHT22 reports:
// 214 is 21.4. Keeping tenths as integers means a reading prints exactly as
// the sensor gave it (21.4, never 21.400000001).
type Deci int32

// Float returns d as a float64 (214 -> 21.4) for arithmetic at the edges.
func (d Deci) Float() float64 { return float64(d) / 10 }

// String formats d with one decimal: 214 -> "21.4", -1 -> "-0.1".
func (d Deci) String() string { return string(d.appendFixed(nil)) }

func (d Deci) appendFixed(b []byte) []byte {
	v := int64(d)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/10, 10)
	return append(b, '.', byte('0'+v%10))
}

// AppendJSON appends d as a JSON number the way JavaScript's JSON.stringify
// prints the same value (Node-RED's reference flow builds the message in
// JavaScript): 214 -> 21.4, 210 -> 21, -1 -> -0.1.
func (d Deci) AppendJSON(b []byte) []byte {
	if d%10 == 0 {
		return strconv.AppendInt(b, int64(d/10), 10)
	}
	return d.appendFixed(b)
}

// MarshalJSON implements json.Marshaler with AppendJSON's format.
func (d Deci) MarshalJSON() ([]byte, error) { return d.AppendJSON(nil), nil }

// Reading is one validated measurement. Only readings that passed the
// driver's checks (checksum, range) and the Poller's plausibility filter
// reach a publisher.
type Reading struct {
	Temperature Deci      // tenths of a degree Celsius
	Humidity    Deci      // tenths of a percent relative humidity
	Time        time.Time // when the frame was captured
}

// Type is the "type" field of every reading on the wire.
const Type = "sensor_update"

// AppendJSON appends the reading in the reference flow's shape,
// {"type":"sensor_update","temperature":21.4,"humidity":48.2,"timestamp":1763856000123},
// with the timestamp in integer milliseconds since the Unix epoch.
func (r Reading) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":"`+Type+`","temperature":`...)
	b = r.Temperature.AppendJSON(b)
	b = append(b, `,"humidity":`...)
	b = r.Humidity.AppendJSON(b)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Time.UnixMilli(), 10)
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON's shape.
func (r Reading) MarshalJSON() ([]byte, error) { return r.AppendJSON(make([]byte, 0, 96)), nil }

// Sensor is what the daemon polls. Read blocks for at most one measurement
// and honours ctx; it returns a Reading only when the driver's checks passed.
type Sensor interface {
	Read(ctx context.Context) (Reading, error)
	String() string
	Halt() error
}

// Error kinds a caller can tell apart with errors.Is. Drivers wrap them with
// the detail (which phase timed out, which bytes failed the checksum).
var (
	// ErrTimeout: the sensor did not answer, or stopped answering in a phase.
	ErrTimeout = errors.New("sensor: timeout")
	// ErrShortFrame: fewer bits than a whole frame arrived.
	ErrShortFrame = errors.New("sensor: short frame")
	// ErrChecksum: the frame's checksum does not match its data.
	ErrChecksum = errors.New("sensor: checksum mismatch")
	// ErrOutOfRange: a decoded value is outside what the chip can measure.
	ErrOutOfRange = errors.New("sensor: value out of range")
	// ErrTooSoon: a read was asked for before the chip's minimum period.
	ErrTooSoon = errors.New("sensor: read too soon")
	// ErrImplausible: the Poller held a reading back because it jumped too
	// far from the recent trend and no second reading has confirmed it yet.
	ErrImplausible = errors.New("sensor: implausible jump")
)

// ErrorKind names err's kind for counters and metrics labels: "timeout",
// "short_frame", "checksum", "out_of_range", "too_soon", "implausible", or
// "other" for anything else (nil gives "").
func ErrorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrShortFrame):
		return "short_frame"
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrOutOfRange):
		return "out_of_range"
	case errors.Is(err, ErrTooSoon):
		return "too_soon"
	case errors.Is(err, ErrImplausible):
		return "implausible"
	}
	return "other"
}

// ErrorKinds lists every value ErrorKind can return for a non-nil error, so a metrics
// page can show zero counters too.
func ErrorKinds() []string {
	return []string{"timeout", "short_frame", "checksum", "out_of_range", "too_soon", "implausible", "other"}
}
