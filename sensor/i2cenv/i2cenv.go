package i2cenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/aht20"
	"periph.io/x/devices/v3/am2320"
	"periph.io/x/devices/v3/bmxx80"

	"sensord/sensor"
)

// driver is the part of periph's environment drivers Dev uses (aht20.Dev
// has no String method, so not physic.SenseEnv's whole set).
type driver interface {
	Sense(*physic.Env) error
	Halt() error
}

// chipInfo is the per-chip table: addresses to try, measuring range (from
// the datasheet, in tenths) and the minimum read period.
type chipInfo struct {
	addrs      []uint16
	minT, maxT sensor.Deci
	minH, maxH sensor.Deci
	minPeriod  time.Duration
}

// chips is only ever read; a function rather than a package variable keeps
// the package free of mutable globals.
func chips(chip string) (chipInfo, bool) {
	switch chip {
	case "bme280":
		return chipInfo{addrs: []uint16{0x76, 0x77}, minT: -400, maxT: 850, minH: 0, maxH: 1000, minPeriod: time.Second}, true
	case "aht20":
		return chipInfo{addrs: []uint16{0x38}, minT: -400, maxT: 850, minH: 0, maxH: 1000, minPeriod: time.Second}, true
	case "am2320":
		return chipInfo{addrs: []uint16{am2320.SensorAddress}, minT: -400, maxT: 800, minH: 0, maxH: 999, minPeriod: 2 * time.Second}, true
	}
	return chipInfo{}, false
}

// Chips lists the chip names New accepts.
func Chips() []string { return []string{"bme280", "aht20", "am2320"} }

// MinPeriod returns the shortest time between two reads the chip's datasheet
// allows (see the package doc), or 0 for an unknown chip.
func MinPeriod(chip string) time.Duration {
	c, _ := chips(chip)
	return c.minPeriod
}

// Dev is one I²C temperature and humidity chip seen as a sensor.Sensor.
type Dev struct {
	// Now stamps each Reading; nil means time.Now. Set it before the first
	// Read; tests and examples use it to get a fixed timestamp.
	Now func() time.Time

	chip string
	addr uint16
	bus  string
	info chipInfo
	dev  driver

	// busy holds a token while a driver call runs, so a Sense abandoned by
	// a cancelled Read still keeps the next Read (and Halt) off the bus
	// until it returns. Capacity 1.
	busy chan struct{}
}

var _ sensor.Sensor = (*Dev)(nil)

// New opens chip ("bme280", "aht20" or "am2320") on bus at its default
// address. bme280 is looked for at 0x76, then 0x77. Errors start with
// "i2cenv:" and name the chip and the address.
func New(bus i2c.Bus, chip string) (*Dev, error) {
	info, ok := chips(chip)
	if !ok {
		return nil, fmt.Errorf("i2cenv: unknown chip %q (want one of %s)", chip, strings.Join(Chips(), ", "))
	}
	if bus == nil {
		return nil, fmt.Errorf("i2cenv: %s: no I2C bus", chip)
	}
	d := &Dev{chip: chip, bus: bus.String(), info: info, busy: make(chan struct{}, 1)}
	// One line naming every address tried, each cause kept for errors.Is:
	// "i2cenv: bme280 at 0x76: ...; at 0x77: ...".
	format, args := "i2cenv: "+chip, []any{}
	for _, addr := range info.addrs {
		dev, err := open(bus, chip, addr)
		if err == nil {
			d.addr, d.dev = addr, dev
			return d, nil
		}
		format += " at %#x: %w;"
		args = append(args, addr, err)
	}
	return nil, fmt.Errorf(strings.TrimSuffix(format, ";"), args...)
}

// open builds periph's driver for chip at addr.
func open(bus i2c.Bus, chip string, addr uint16) (driver, error) {
	switch chip {
	case "bme280":
		// The datasheet's "humidity sensing" setting (section 3.5.3): forced
		// mode, temperature and humidity 1x, pressure skipped, filter off.
		// Reading has no pressure, and 1x keeps the noise (0.07 %RH, 0.005 °C)
		// far below the tenths we publish.
		dev, err := bmxx80.NewI2C(bus, addr, &bmxx80.Opts{
			Temperature: bmxx80.O1x,
			Pressure:    bmxx80.Off,
			Humidity:    bmxx80.O1x,
		})
		if err != nil {
			// Before it knows the chip's name, bmxx80 prefixes its errors
			// with an empty one (": i2c: ..."); drop that.
			if msg, ok := strings.CutPrefix(err.Error(), ": "); ok {
				err = &retext{msg, err}
			}
			return nil, err
		}
		// bmxx80 also accepts a BMP180 or BMP280 at these addresses; neither
		// measures humidity. Its String starts with the detected name.
		if name, _, _ := strings.Cut(dev.String(), "{"); name != "BME280" {
			return nil, fmt.Errorf("found a %s, which has no humidity sensor", name)
		}
		return dev, nil
	case "aht20":
		// NewI2C reads the status byte and calibrates the chip if needed.
		return aht20.NewI2C(bus, nil)
	case "am2320":
		return am2320.NewI2C(bus, addr)
	}
	return nil, errors.New("unknown chip") // unreachable: New checked chip
}

// retext is err with a tidier message.
type retext struct {
	msg string
	err error
}

func (e *retext) Error() string { return e.msg }
func (e *retext) Unwrap() error { return e.err }

// String names the chip, its address and the bus, e.g. "bme280 at 0x76 on I2C1".
func (d *Dev) String() string {
	return fmt.Sprintf("%s at %#x on %s", d.chip, d.addr, d.bus)
}

// result carries one driver call's outcome back to Read.
type result struct {
	env physic.Env
	at  time.Time
	err error
}

// Read takes one measurement and returns it in tenths, stamped with Now at
// the moment the driver returned. It returns when ctx is done even if the
// driver is still busy on the bus (see the package doc); the error then
// wraps ctx.Err(), and also sensor.ErrTimeout when the deadline passed.
// A value outside the chip's measuring range is sensor.ErrOutOfRange; a
// corrupt AHT20 frame is sensor.ErrChecksum; an AHT20 that does not finish
// converting in time is sensor.ErrTimeout.
func (d *Dev) Read(ctx context.Context) (sensor.Reading, error) {
	if err := ctx.Err(); err != nil {
		return sensor.Reading{}, d.ctxErr("read not started", err)
	}
	select {
	case d.busy <- struct{}{}:
	case <-ctx.Done():
		return sensor.Reading{}, d.ctxErr("previous read still on the bus", ctx.Err())
	}
	done := make(chan result, 1) // buffered: the goroutine never waits for Read
	go func() {
		var r result
		r.err = d.dev.Sense(&r.env)
		r.at = d.now()
		<-d.busy
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return sensor.Reading{}, d.senseErr(r.err)
		}
		return d.reading(r.env, r.at)
	case <-ctx.Done():
		return sensor.Reading{}, d.ctxErr("read abandoned", ctx.Err())
	}
}

// reading converts and validates one measurement.
func (d *Dev) reading(e physic.Env, at time.Time) (sensor.Reading, error) {
	if d.chip == "am2320" {
		e.Temperature = am2320SignMagnitude(e.Temperature)
	}
	r := sensor.Reading{Temperature: tenthsCelsius(e.Temperature), Humidity: tenthsRH(e.Humidity), Time: at}
	if r.Temperature < d.info.minT || r.Temperature > d.info.maxT {
		return sensor.Reading{}, fmt.Errorf("i2cenv: %s at %#x: temperature %s °C outside %s..%s: %w",
			d.chip, d.addr, r.Temperature, d.info.minT, d.info.maxT, sensor.ErrOutOfRange)
	}
	if r.Humidity < d.info.minH || r.Humidity > d.info.maxH {
		return sensor.Reading{}, fmt.Errorf("i2cenv: %s at %#x: humidity %s %%RH outside %s..%s: %w",
			d.chip, d.addr, r.Humidity, d.info.minH, d.info.maxH, sensor.ErrOutOfRange)
	}
	return r, nil
}

// Halt waits for a driver call still on the bus (an abandoned Read), then
// halts periph's driver. Reads after Halt still work, as in periph.
func (d *Dev) Halt() error {
	d.busy <- struct{}{}
	defer func() { <-d.busy }()
	if err := d.dev.Halt(); err != nil {
		return fmt.Errorf("i2cenv: %s at %#x: halt: %w", d.chip, d.addr, err)
	}
	return nil
}

func (d *Dev) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dev) ctxErr(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("i2cenv: %s at %#x: %s: %w: %w", d.chip, d.addr, what, sensor.ErrTimeout, err)
	}
	return fmt.Errorf("i2cenv: %s at %#x: %s: %w", d.chip, d.addr, what, err)
}

// senseErr wraps a driver error, adding the sensor kind where periph's
// driver tells us what went wrong. bmxx80 and am2320 flatten their errors to
// text, so their bus errors count as kind "other".
func (d *Dev) senseErr(err error) error {
	var crc *aht20.DataCorruptionError
	var slow *aht20.ReadTimeoutError
	switch {
	case errors.As(err, &crc):
		return fmt.Errorf("i2cenv: %s at %#x: %w: %w", d.chip, d.addr, sensor.ErrChecksum, err)
	case errors.As(err, &slow):
		return fmt.Errorf("i2cenv: %s at %#x: %w: %w", d.chip, d.addr, sensor.ErrTimeout, err)
	}
	return fmt.Errorf("i2cenv: %s at %#x: %w", d.chip, d.addr, err)
}

// am2320SignMagnitude repairs periph devices v3.7.4's am2320, which builds
// the temperature as ZeroCelsius + int16(word) × 0.1 °C. The AM2320 sends
// sign and magnitude (bit 15 is the sign: 0x8065 is -10.1 °C), so a negative
// word came out as -3266.7 °C. The driver's arithmetic is exact, so the
// original word can be recovered and decoded properly. If periph ever fixes
// its decoder, the -10.1 °C test fails here (it would read -3266.7 °C).
func am2320SignMagnitude(t physic.Temperature) physic.Temperature {
	v := int64(t-physic.ZeroCelsius) / int64(physic.Celsius/10)
	if v >= 0 {
		return t
	}
	word := uint16(int16(v))
	return physic.ZeroCelsius - physic.Temperature(word&0x7fff)*(physic.Celsius/10)
}

// tenthsCelsius converts to tenths of a degree Celsius, rounding half away
// from zero (21.45 -> 21.5, -5.15 -> -5.2).
// Plain integer division would truncate towards zero and turn -5.19 into -5.1.
func tenthsCelsius(t physic.Temperature) sensor.Deci {
	return sensor.Deci(roundDiv(int64(t-physic.ZeroCelsius), int64(physic.Celsius/10)))
}

// tenthsRH converts to tenths of a percent (physic.MilliRH is 0.1 %RH).
func tenthsRH(h physic.RelativeHumidity) sensor.Deci {
	return sensor.Deci(roundDiv(int64(h), int64(physic.MilliRH)))
}

// roundDiv returns n/d rounded half away from zero; d > 0.
func roundDiv(n, d int64) int64 {
	q, r := n/d, n%d
	if r < 0 {
		r = -r
	}
	if 2*r >= d {
		if n < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}
