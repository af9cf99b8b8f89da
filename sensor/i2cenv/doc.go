// Package i2cenv turns periph's I²C temperature and humidity drivers
// (periph.io/x/devices/v3: bmxx80, aht20, am2320) into a sensor.Sensor, so
// the daemon polls a BME280, an AHT20 or an AM2320 exactly as it polls a
// DHT22 and publishes the same sensor_update JSON.
//
// The adapter is deliberately thin: periph does the bus traffic and the
// chip's own compensation; this package picks the chip's address and
// settings, converts physic.Env (nano-kelvin, tenth-micro-%RH) to tenths with
// rounding half away from zero, checks the chip's measuring range, makes
// Read honour its context, and repairs one known defect of the pinned driver
// (am2320 in devices v3.7.4 reads the sign-magnitude temperature as two's
// complement).
//
// # Chips
//
//	chip    address      datasheet                                                  measuring range        Read takes     MinPeriod
//	bme280  0x76, 0x77   Bosch BST-BME280-DS002                                     -40..85 °C, 0..100 %RH ~6 ms (1x)     1 s
//	aht20   0x38         Aosong AHT20 (http://www.aosong.com, "Data Sheet AHT20")   -40..85 °C, 0..100 %RH ≥ 80 ms        1 s
//	am2320  0x5c         https://cdn-shop.adafruit.com/product-files/3721/AM2320.pdf -40..80 °C, 0..99.9 %RH ~2 ms; retries 2 s
//
// BME280: forced mode with temperature and humidity oversampling 1x, pressure
// skipped and the IIR filter off, the datasheet's "humidity sensing"
// recommendation (section 3.5.3), which also sets the rate: one sample per
// second. The measurement itself lasts at most 1.25 + 2.3 + 2.875 ms. New
// tries 0x76 first, then 0x77 (SDO pulled high, as on many breakout
// boards), and rejects a BMP280 (chip id 0x58), which has no humidity sensor.
//
// AHT20: the conversion takes 80 ms after the 0xAC trigger; the datasheet
// gives no minimum interval, so MinPeriod keeps the chip active for under
// 10 % of the time (1 s), where its self-heating stays negligible.
//
// AM2320: the chip sleeps between reads and ignores the bus until woken, so
// New does not probe it; a missing chip shows up at the first Read. Its
// datasheet asks for at least 2 s between reads.
//
// # Driver behaviour worth knowing
//
// periph's am2320 retries a failed or corrupt read up to 10 times, sleeping
// 2 s between tries, and its Sense takes no context. bmxx80 polls the status
// register without a deadline. Read therefore runs the driver's Sense on its
// own goroutine and returns when ctx is done; the abandoned Sense finishes
// in the background (at most about 20 s for am2320) and the next Read or
// Halt waits for it, so two transactions never share the bus.
//
// # Concurrency
//
// Read, String and Halt are safe to call from any goroutine; reads are
// serialised. Set Dev.Now before the first Read.
package i2cenv
