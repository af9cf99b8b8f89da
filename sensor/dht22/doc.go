// Package dht22 drives a DHT22 (AM2302) temperature and humidity sensor on
// one GPIO line, in periph's driver style: New or NewEdge return a *Dev that
// implements physic.SenseEnv and sensor.Sensor.
//
// The driver takes the line it is given; it never calls host.Init or looks
// pins up by name (package sensor/sensors does that). Capture (line → edge
// timestamps) is kept apart from decoding (edges → bits → bytes → values):
// DecodeFrame, Frame.Check and Decode are pure, allocation-free, table-tested
// and fuzzed, and the simulation in dht22sim drives the same capture code.
//
// # Datasheet
//
// Aosong AM2302 / DHT22, "Digital-output relative humidity & temperature
// sensor/module". One wire, open drain with a pull-up; idle high.
//
//	phase                      who     level  min     typ     max     driver
//	start pulse (Tbe)          host    low    1 ms    1 ms    20 ms   1.1 ms default, Opts.StartPulse
//	release to answer (Tgo)    sensor  high   20 µs   30 µs   200 µs  no response after 500 µs
//	response low (Trel)        sensor  low    75 µs   80 µs   85 µs   -
//	response high (Treh)       sensor  high   75 µs   80 µs   85 µs   the "preamble" before bit 0
//	bit low (Tlow)             sensor  low    48 µs   50 µs   55 µs   the clock reference of the cut
//	bit 0 high (TH0)           sensor  high   22 µs   26 µs   30 µs   -
//	bit 1 high (TH1)           sensor  high   68 µs   70 µs   75 µs   -
//	end low (Ten)              sensor  low    45 µs   50 µs   55 µs   then the sensor releases the line
//	whole frame (all ones)     -       -      -       ~5 ms   -       frame timeout 8 ms
//	between two reads          host    -      2 s     -       -       Opts.MinPeriod, sensor.ErrTooSoon
//
// A clean answer has 84 edges: the response's fall, rise and fall, two per
// bit, and the final rise. The 40 bits are, most significant first: humidity
// (16 bits, tenths of %RH), temperature (16 bits, tenths of °C, bit 15 the
// sign — sign and magnitude, not two's complement: 0x8065 is -10.1 °C), and
// a checksum, the low 8 bits of the sum of the first four bytes. Range
// -40..80 °C, 0..100 %RH.
//
// The Linux dht11 IIO driver, which also reads the DHT22, stamps edges in its
// interrupt handler and splits 0 from 1 at a fixed 49 µs. This decoder learns
// the cut from each frame instead (the mean bit low, refined to the midpoint
// of the 0 and 1 highs), so a sensor whose clock runs slow or fast still
// decodes; see DecodeFrame.
//
// # Capture strategies
//
// NewEdge: the GPIO character device. The kernel stamps each edge in its
// interrupt handler, so Go's scheduler and garbage collector cannot blur the
// widths; the line switches from output to input after the start pulse, which
// may lose the answer's first edge, and DecodeFrame copes.
//
// New: a busy loop polling a fast gpio.PinIO (periph's memory-mapped bcm283x
// pins, /dev/gpiomem) against the monotonic clock, on a goroutine locked to
// its OS thread with the garbage collector held off for the frame, with a
// hard timeout on every phase. It needs the CPU to itself for ~6 ms: another
// thread preempting it for more than ~20 µs costs that frame.
//
// # Errors
//
// Every error a read returns wraps one of the sensor package's kinds, for
// errors.Is and sensor.ErrorKind: ErrTimeout (no response, a line stuck low, an
// overlong frame), ErrShortFrame (fewer than 40 bits, no start of frame),
// ErrChecksum, ErrOutOfRange, ErrTooSoon.
//
// Beware periph's own newer dht22 package: it drops the tenths, forgets the
// 0 °C offset of physic.Temperature and reads the sign as two's complement.
// Sense here fills physic.ZeroCelsius + tenths×100 m°C.
package dht22
