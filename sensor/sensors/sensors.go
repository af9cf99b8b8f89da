// Package sensors opens a sensor by name: it is where the host is touched
// (periph's host.Init and gpioreg, GPIO character-device line requests, I²C
// buses) and where the simulation is wired, so cmd/sensord stays thin and the
// drivers below sensor/ stay pure.
//
// Kinds: "dht22" (the default) on a GPIO pin, "sim" (a simulated DHT22 that
// plays the real waveform through the driver's real capture and decode
// code), and the I²C chips "bme280", "aht20" and "am2320" through
// sensor/i2cenv.
//
// Capture strategies for dht22 and sim, logged by name at Open:
//
//   - "cdev": the GPIO character device (/dev/gpiochipN) with kernel edge
//     timestamps; the only way on Debian kernels and on a Pi 5. For sim: the
//     fake edge-event source, robust on a slow (emulated) CPU.
//   - "mmap": periph's memory-mapped bcm283x registers (/dev/gpiomem) timed
//     in a busy loop. For sim: the fake pin and the same busy loop.
//   - "auto": cdev when a /dev/gpiochip* exists, else mmap when /dev/gpiomem
//     exists; if the first fails the other is tried, and the error names the
//     fix (the gpio group, the device node, the pin name).
package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/bcm283x"

	"sensord/sensor"
	"sensord/sensor/dht22"
	"sensord/sensor/dht22/dht22sim"
	"sensord/sensor/i2cenv"
)

// Config says which sensor to open and how.
type Config struct {
	Kind string // "dht22" (default), "sim", "bme280", "aht20", "am2320"
	// Pin is the DHT22's line for dht22 and sim: "GPIO4" (or "BCM4", "4":
	// BCM number 4, offset 4 of the board's header chip), "gpiochipN:OFFSET",
	// or a line name; "" = "GPIO4".
	Pin     string
	Capture string // "auto" (default), "cdev", "mmap" (dht22 and sim)
	Bus     string // I²C bus name; "" = "1"
	// StartPulse is the DHT22 start pulse; 0 = dht22.DefaultStartPulse.
	StartPulse time.Duration
	// PowerPin, for dht22 and sim, is the GPIO that powers the sensor
	// (its VCC wired to it); "" = none. The sensor Open returns is then
	// Powered.
	PowerPin string
	// Sim configures the simulated sensor (Kind "sim"); the zero value is
	// a healthy sensor whose values walk slowly around 21 °C / 45 %RH.
	Sim dht22sim.Config
}

// Kinds lists the sensor kinds Open accepts.
func Kinds() []string { return append([]string{"dht22", "sim"}, i2cenv.Chips()...) }

// Captures lists the capture strategies Open accepts for dht22 and sim.
func Captures() []string { return []string{"auto", "cdev", "mmap"} }

// MinPeriod returns the shortest time between two reads of kind, as the
// chip's own package states it (2 s for a DHT22 or an AM2320, 1 s for a
// BME280 or an AHT20, 10 ms for "sim", which load tests use), or 0 for an
// unknown kind.
func MinPeriod(kind string) time.Duration {
	switch kind {
	case "sim":
		return dht22.SimMinPeriod
	case "dht22":
		return dht22.DefaultMinPeriod
	}
	return i2cenv.MinPeriod(kind)
}

// Open opens the sensor c describes and logs, at info level, which sensor
// and capture strategy it uses. Halt on the result also releases what Open
// acquired (the GPIO line, the I²C bus). Errors start with "sensors:" and say
// what to fix. ctx bounds nothing that blocks today; it is there for buses
// that probe slowly.
func Open(ctx context.Context, c Config, log *slog.Logger) (sensor.Sensor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.Kind == "" {
		c.Kind = "dht22"
	}
	if c.Pin == "" {
		c.Pin = "GPIO4"
	}
	if c.Capture == "" {
		c.Capture = "auto"
	}
	if c.Bus == "" {
		c.Bus = "1"
	}
	if !slices.Contains(Kinds(), c.Kind) {
		return nil, fmt.Errorf("sensors: unknown sensor %q (want one of %s)", c.Kind, strings.Join(Kinds(), ", "))
	}
	if !slices.Contains(Captures(), c.Capture) {
		return nil, fmt.Errorf("sensors: unknown capture %q (want one of %s)", c.Capture, strings.Join(Captures(), ", "))
	}
	switch c.Kind {
	case "sim":
		return openSim(c, log)
	case "dht22":
		s, err := openDHT22(c, log)
		if err != nil {
			return nil, err
		}
		return withPower(s, c, nil, log)
	}
	if c.PowerPin != "" {
		return nil, fmt.Errorf("sensors: a power pin is for a DHT22; %s is powered from 3.3 V", c.Kind)
	}
	return openI2C(c, log)
}

// halter adds the release of what Open acquired to a sensor's Halt.
type halter struct {
	sensor.Sensor
	release func() error
}

func (h *halter) Halt() error {
	return errors.Join(h.Sensor.Halt(), h.release())
}

// hangable makes a sensor over the sim's fake pin block while the sim is
// hung: the busy loop has a hard timeout on every phase and cannot hang by
// itself. (The fake edge source blocks in the capture itself.)
type hangable struct {
	*dht22.Dev
	sim *dht22sim.Sim
}

func (h *hangable) Read(ctx context.Context) (sensor.Reading, error) {
	if err := h.sim.WaitIfHung(ctx); err != nil {
		return sensor.Reading{}, err
	}
	return h.Dev.Read(ctx)
}

func openSim(c Config, log *slog.Logger) (sensor.Sensor, error) {
	sim, err := dht22sim.New(c.Sim)
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	opts := &dht22.Opts{StartPulse: c.StartPulse, MinPeriod: dht22.SimMinPeriod}
	var out sensor.Sensor
	var dev *dht22.Dev
	name := "sim-edge"
	if c.Capture == "mmap" {
		name = "sim-pin"
		dev, err = dht22.New(sim.Pin(c.Pin), opts)
		out = &hangable{Dev: dev, sim: sim}
	} else {
		dev, err = dht22.NewEdge(sim.EdgeLine(c.Pin), opts)
		out = dev
	}
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	log.Info("sensor opened", "kind", "sim", "pin", c.Pin, "capture", name, "strategy", dev.Capture(), "realtime", dev.Realtime(),
		"jitter", c.Sim.Jitter, "error_rate", c.Sim.ErrorRate, "hang_after", c.Sim.HangAfter, "no_response", c.Sim.NoResponse)
	return withPower(out, c, sim, log)
}

func openDHT22(c Config, log *slog.Logger) (sensor.Sensor, error) {
	opts := &dht22.Opts{StartPulse: c.StartPulse}
	hasChip := len(gpioChips()) > 0
	hasMem := exists(gpiomem)
	var order []string
	switch c.Capture {
	case "cdev", "mmap":
		order = []string{c.Capture}
	default:
		if hasChip {
			order = append(order, "cdev")
		}
		if hasMem {
			order = append(order, "mmap")
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("sensors: dht22 on %s: no GPIO access: neither /dev/gpiochip* (GPIO character device, any current kernel) nor %s (Raspberry Pi OS kernels) exists; run on a Raspberry Pi, or use -sensor sim", c.Pin, gpiomem)
	}
	var errs []error
	for _, how := range order {
		var s sensor.Sensor
		var err error
		if how == "cdev" {
			s, err = openCdevDHT22(c.Pin, opts, log)
		} else {
			s, err = openMmapDHT22(c.Pin, opts, log)
		}
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func openCdevDHT22(pin string, opts *dht22.Opts, log *slog.Logger) (sensor.Sensor, error) {
	lineName := "" // the first line's own name (chip:offset, its label, the chip's driver), for the log
	open := func() (*dht22.Dev, func() error, error) {
		line, err := openCdev(pin)
		if err != nil {
			return nil, nil, err
		}
		if lineName == "" {
			lineName = line.String()
		}
		dev, err := dht22.NewEdge(line, opts)
		if err != nil {
			line.Close()
			return nil, nil, fmt.Errorf("sensors: %w", err)
		}
		return dev, line.Close, nil
	}
	dev, release, err := open()
	if errors.Is(err, ErrLineBusy) {
		// Another user of the line must not stop the daemon: it serves
		// and says so, and each read tries to request the line again.
		log.Warn("sensor line busy at start-up; serving, and requesting it again at every read", "kind", "dht22", "pin", pin, "capture", "cdev", "err", err)
		return &reopening{pin: pin, name: "DHT22{" + pin + ", edge-timestamps}", open: open}, nil
	}
	if err != nil {
		return nil, err
	}
	log.Info("sensor opened", "kind", "dht22", "pin", pin, "capture", "cdev", "strategy", dev.Capture(), "line", lineName)
	return &reopening{pin: pin, name: dev.String(), open: open, dev: dev, release: release}, nil
}

// reopening is a DHT22 on a GPIO character-device line that survives its
// chip going away and other users of the line: a read that finds the line
// gone (ENODEV: the chip's driver unbound, its module unloaded, a gpio-sim
// bank removed) releases it, and each later read requests the line again,
// so the sensor comes back with the chip, whatever number the chip gets;
// a line busy at start-up is requested at every read until it is free.
type reopening struct {
	pin  string
	name string // the first line's name, for String
	open func() (*dht22.Dev, func() error, error)

	mu      sync.Mutex // serialises reads and Halt; guards the fields below
	dev     *dht22.Dev // nil while the line is gone
	release func() error
}

// ErrLineGone is returned (wrapped) while the sensor's GPIO chip has gone
// away; sensor.CauseOf such an error is sensor.CauseLineGone.
var ErrLineGone = errors.New("sensors: the GPIO chip went away")

// ErrLineBusy is returned (wrapped) while another program, a driver or a
// sysfs export holds the sensor's line; sensor.CauseOf such an error from
// a read is sensor.CauseLineBusy.
var ErrLineBusy = errors.New("line busy")

func (r *reopening) String() string { return r.name }

func (r *reopening) Read(ctx context.Context) (sensor.Reading, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dev == nil {
		dev, release, err := r.open()
		if errors.Is(err, ErrLineBusy) {
			return sensor.Reading{}, sensor.WithCause(err, sensor.CauseLineBusy)
		}
		if err != nil {
			return sensor.Reading{}, sensor.WithCause(fmt.Errorf("%w (driver unbound or module unloaded): %s cannot be requested again yet: %w", ErrLineGone, r.pin, err), sensor.CauseLineGone)
		}
		r.dev, r.release = dev, release
	}
	rd, err := r.dev.Read(ctx)
	if errors.Is(err, syscall.ENODEV) {
		r.release()
		r.dev = nil
		return rd, sensor.WithCause(fmt.Errorf("%w (driver unbound or module unloaded) under %s; requesting it again at the next read: %w", ErrLineGone, r.pin, err), sensor.CauseLineGone)
	}
	return rd, err
}

func (r *reopening) Halt() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dev == nil {
		return nil
	}
	return errors.Join(r.dev.Halt(), r.release())
}

// gpiomem is the Raspberry Pi OS device node for the GPIO registers.
const gpiomem = "/dev/gpiomem"

func openMmapDHT22(pin string, opts *dht22.Opts, log *slog.Logger) (sensor.Sensor, error) {
	// Check the device node first: periph falls back to slower paths
	// silently, and a busy loop over a syscall per read cannot time a frame.
	f, err := os.OpenFile(gpiomem, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("sensors: mmap capture needs %s, which this kernel does not provide (Raspberry Pi OS kernels have it); use -capture cdev", gpiomem)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("sensors: mmap capture: %s: permission denied; add the service user to the gpio group (usermod -aG gpio sensord) or run as root", gpiomem)
	case err != nil:
		return nil, fmt.Errorf("sensors: mmap capture: %w", err)
	}
	f.Close()
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("sensors: periph host.Init: %w", err)
	}
	p := gpioreg.ByName(pin)
	if p == nil {
		return nil, fmt.Errorf("sensors: no GPIO pin named %q; use a name such as GPIO4 (BCM numbering, not the header pin number)", pin)
	}
	if r, ok := p.(gpio.RealPin); ok {
		p = r.Real()
	}
	if _, ok := p.(*bcm283x.Pin); !ok || !bcm283x.Present() {
		return nil, fmt.Errorf("sensors: mmap capture needs a Broadcom bcm283x GPIO (Pi 1-4, Zero); %s is %T; use -capture cdev", pin, p)
	}
	dev, err := dht22.New(p, opts)
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	// realtime=false means frames can be lost to preemption: the unit
	// should grant LimitRTPRIO= (or CAP_SYS_NICE).
	log.Info("sensor opened", "kind", "dht22", "pin", pin, "capture", "mmap", "strategy", dev.Capture(), "realtime", dev.Realtime())
	return dev, nil
}

func openI2C(c Config, log *slog.Logger) (sensor.Sensor, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("sensors: periph host.Init: %w", err)
	}
	bus, err := i2creg.Open(c.Bus)
	if err != nil {
		return nil, fmt.Errorf("sensors: opening I2C bus %q for %s: %w; enable I2C (dtparam=i2c_arm=on in config.txt) and add the service user to the i2c group", c.Bus, c.Kind, err)
	}
	dev, err := i2cenv.New(bus, c.Kind)
	if err != nil {
		bus.Close()
		return nil, fmt.Errorf("sensors: %w", err)
	}
	log.Info("sensor opened", "kind", c.Kind, "bus", c.Bus, "device", dev.String())
	return &halter{Sensor: dev, release: bus.Close}, nil
}

func gpioChips() []string {
	m, _ := filepath.Glob("/dev/gpiochip*")
	return m
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Power is a sensor's power line (Config.PowerPin): Set(true) powers the
// sensor.
type Power interface {
	Set(on bool) error
	String() string
	Close() error
}

// Powered is implemented by the sensors Open returns when Config.PowerPin
// is set: Power is the line that switches the sensor's supply, on when
// Open returns.
type Powered interface {
	sensor.Sensor
	Power() Power
}

// powered is a sensor with its power line.
type powered struct {
	sensor.Sensor
	power Power
}

func (p *powered) Power() Power { return p.power }

// withPower opens c.PowerPin for s: the sim's fake line for "sim", the
// GPIO character device otherwise.
func withPower(s sensor.Sensor, c Config, sim *dht22sim.Sim, log *slog.Logger) (sensor.Sensor, error) {
	if c.PowerPin == "" {
		return s, nil
	}
	if c.PowerPin == c.Pin {
		return nil, fmt.Errorf("sensors: the power pin %s is the data pin; wire the sensor's VCC to another GPIO", c.PowerPin)
	}
	var p Power
	if sim != nil {
		p = sim.PowerLine(c.PowerPin)
	} else {
		var err error
		if p, err = openPower(c.PowerPin); err != nil {
			return nil, err
		}
	}
	log.Info("sensor power line", "power", p.String())
	return &powered{Sensor: s, power: p}, nil
}
