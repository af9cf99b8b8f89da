//go:build linux

package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warthog618/go-gpiocdev"
	"github.com/warthog618/go-gpiocdev/uapi"
	"golang.org/x/sys/unix"

	"sensord/sensor/dht22"
)

const (
	// eventBuffer is the kernel's event queue for the line: the kernel
	// default is 16, fewer than the 84 edges of a frame, and when the
	// queue is full the kernel drops the oldest edge. go-gpiocdev's
	// WithEventBufferSize does not reach the kernel (v0.9.1 leaves the
	// request's field zero), so the line is requested through its uapi
	// package.
	eventBuffer = 256
	// eventSize is the size of struct gpio_v2_line_event.
	eventSize = 48
	// lateGrace is how long Edges waits past its timeout for events the
	// kernel already stamped but the watcher goroutine has not handed over.
	lateGrace = 5 * time.Millisecond
	// frameEdges is the number of edges of a complete answer.
	frameEdges = 84
)

// cdevLine is a dht22.EdgeLine over the GPIO character device (uAPI v2).
// The line is requested once, as an input with the pull-up and both-edge
// detection and an event queue of eventBuffer; a start pulse reconfigures it
// as an output driving low, and the release reconfigures it back. The kernel
// stamps every edge with CLOCK_MONOTONIC in its interrupt handler; the
// watcher goroutine reads the events and hands them to events.
type cdevLine struct {
	name string // "gpiochip0:4 (GPIO4, pinctrl-bcm2835)"
	fd   int    // the line request
	stop int    // eventfd: written by Close to end the watcher
	// watched is closed when the watcher goroutine has returned.
	watched chan struct{}

	// events is written by the watcher goroutine (handle) and read by
	// Edges; dropped counts events that found it full.
	events  chan gpiocdev.LineEvent
	dropped atomic.Uint64

	// Owned by the capture goroutine.
	relAt   time.Duration // CLOCK_MONOTONIC just before the release
	relWall time.Time

	// grace overrides lateGrace when non-zero (tests widen it so that a
	// loaded machine cannot make them flaky).
	grace time.Duration
}

// inputFlags is the line's configuration between start pulses.
const inputFlags = uapi.LineFlagV2Input | uapi.LineFlagV2BiasPullUp | uapi.LineFlagV2EdgeRising | uapi.LineFlagV2EdgeFalling

var _ dht22.EdgeLine = (*cdevLine)(nil)

// cdevInfo asks a chip for its label and line count (GPIO_GET_CHIPINFO).
func cdevInfo(dev string) (string, int, error) {
	c, err := gpiocdev.NewChip(dev)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	return c.Label, c.Lines(), nil
}

// openCdev requests pin's line. Errors name the fix.
func openCdev(pin string) (*cdevLine, error) {
	chips := gpioChips()
	if len(chips) == 0 {
		return nil, errors.New("sensors: cdev capture needs a GPIO character device, but no /dev/gpiochip* exists; use a kernel with CONFIG_GPIO_CDEV, or -sensor sim without hardware")
	}
	for _, c := range chips {
		if f, err := os.Open(c); err != nil {
			if errors.Is(err, os.ErrPermission) {
				return nil, fmt.Errorf("sensors: cdev capture: %s: permission denied; add the service user to the gpio group (usermod -aG gpio sensord) and make sure udev gives /dev/gpiochip* group gpio, mode 0660", c)
			}
		} else {
			f.Close()
		}
	}
	host := gpioHost{root: "/", info: cdevInfo}
	c, offset, err := host.findLine(pin, gpiocdev.FindLine)
	if err != nil {
		return nil, err
	}
	chip := c.name
	l := &cdevLine{
		name:    fmt.Sprintf("%s:%d (%s, %s)", chip, offset, pin, c.label),
		events:  make(chan gpiocdev.LineEvent, eventBuffer),
		watched: make(chan struct{}),
	}
	if c.lines > 0 && offset >= c.lines {
		return nil, fmt.Errorf("sensors: cdev capture: %s: no such line on %s; check -pin (BCM numbering, e.g. GPIO4)", l.name, chip)
	}
	f, err := os.Open("/dev/" + chip)
	if err != nil {
		return nil, fmt.Errorf("sensors: cdev capture: %w", err)
	}
	req := uapi.LineRequest{Lines: 1, EventBufferSize: eventBuffer, Config: uapi.LineConfig{Flags: inputFlags}}
	req.Offsets[0] = uint32(offset)
	copy(req.Consumer[:len(req.Consumer)-1], "sensord")
	err = uapi.GetLine(f.Fd(), &req)
	f.Close()
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("sensors: cdev capture: %s: permission denied; add the service user to the gpio group (usermod -aG gpio sensord)", l.name)
	case errors.Is(err, syscall.EBUSY):
		return nil, busyError(l.name, chip, offset)
	case errors.Is(err, syscall.ENOTTY):
		return nil, fmt.Errorf("sensors: cdev capture: %s: the kernel offers only GPIO uAPI v1; needs Linux 5.10 or later, or use -capture mmap", l.name)
	case err != nil:
		return nil, fmt.Errorf("sensors: cdev capture: requesting %s: %w (needs Linux 5.10 or later)", l.name, err)
	}
	l.fd = int(req.Fd)
	if l.stop, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		unix.Close(l.fd)
		return nil, fmt.Errorf("sensors: cdev capture: eventfd: %w", err)
	}
	go l.watch()
	return l, nil
}

// busyError says who holds the line: the consumer the kernel names for
// it, "sysfs" for a pin exported through /sys/class/gpio.
func busyError(name, chip string, offset int) error {
	consumer := ""
	if c, err := gpiocdev.NewChip(chip); err == nil {
		if info, err := c.LineInfo(offset); err == nil {
			consumer = info.Consumer
		}
		c.Close()
	}
	switch consumer {
	case "sysfs":
		return fmt.Errorf("sensors: cdev capture: %s is exported through /sys/class/gpio (%w); unexport it (echo N > /sys/class/gpio/unexport, N its sysfs number) or stop what exported it", name, ErrLineBusy)
	case "":
		return fmt.Errorf("sensors: cdev capture: %s is in use by another program or driver (%w; e.g. dtoverlay=dht11 in config.txt); free it or pick another -pin", name, ErrLineBusy)
	}
	return fmt.Errorf("sensors: cdev capture: %s is in use by %q, another program or driver (%w); stop it, or pick another -pin", name, consumer, ErrLineBusy)
}

// watch reads the line's events until Close: each read takes what the
// kernel has queued, up to a queue's worth.
func (l *cdevLine) watch() {
	defer close(l.watched)
	buf := make([]byte, eventBuffer*eventSize)
	fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}, {Fd: int32(l.stop), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			if fds[0].Revents != 0 {
				return // the chip went away (POLLERR, POLLHUP)
			}
			continue
		}
		n, err := unix.Read(l.fd, buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return
		}
		for b := buf[:n]; len(b) >= eventSize; b = b[eventSize:] {
			typ := gpiocdev.LineEventFallingEdge
			if uapi.LineEventID(binary.NativeEndian.Uint32(b[8:12])) == uapi.LineEventRisingEdge {
				typ = gpiocdev.LineEventRisingEdge
			}
			l.handle(gpiocdev.LineEvent{Timestamp: time.Duration(binary.NativeEndian.Uint64(b[0:8])), Type: typ})
		}
	}
}

// handle runs on the watcher goroutine: hand over, never block.
func (l *cdevLine) handle(e gpiocdev.LineEvent) {
	select {
	case l.events <- e:
	default:
		l.dropped.Add(1)
	}
}

func (l *cdevLine) String() string { return l.name }

func (l *cdevLine) DriveLow() error {
	cfg := uapi.LineConfig{Flags: uapi.LineFlagV2Output, NumAttrs: 1}
	cfg.Attrs[0] = uapi.LineConfigAttribute{Attr: uapi.OutputValues(0).Encode(), Mask: 1}
	if err := uapi.SetLineConfigV2(uintptr(l.fd), &cfg); err != nil {
		return fmt.Errorf("sensors: %s as output: %w", l.name, err)
	}
	return nil
}

func (l *cdevLine) Release() error {
	// Events from before the release (none are expected while the line is
	// an output) must not mix with this frame.
	for len(l.events) > 0 {
		<-l.events
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sensors: clock_gettime: %w", err)
	}
	l.relAt, l.relWall = time.Duration(ts.Nano()), time.Now()
	if err := uapi.SetLineConfigV2(uintptr(l.fd), &uapi.LineConfig{Flags: inputFlags}); err != nil {
		return fmt.Errorf("sensors: %s as input: %w", l.name, err)
	}
	return nil
}

func (l *cdevLine) Edges(ctx context.Context, dst []dht22.Edge, timeout time.Duration) (int, error) {
	n := 0
	take := func(e gpiocdev.LineEvent) {
		if e.Timestamp < l.relAt || n == len(dst) {
			return // stale, or no room
		}
		dst[n] = dht22.Edge{T: e.Timestamp, Rising: e.Type == gpiocdev.LineEventRisingEdge}
		n++
	}
	t := time.NewTimer(time.Until(l.relWall.Add(timeout)))
	defer t.Stop()
	late := false
	for n < len(dst) {
		select {
		case e := <-l.events:
			take(e)
		case <-t.C:
			if late || n >= frameEdges {
				return n, nil
			}
			// Short so far: the kernel may hold stamped events the watcher
			// has not read yet.
			late = true
			g := lateGrace
			if l.grace > 0 {
				g = l.grace
			}
			t.Reset(g)
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}

var _ dht22.LevelReader = (*cdevLine)(nil)

// Level implements dht22.LevelReader: the line's level now. Driven as an
// output, a Pi's GPIO reads the pad, so a line held high against the
// start pulse reads high.
func (l *cdevLine) Level() (bool, error) {
	v := uapi.LineValues{Mask: 1}
	if err := uapi.GetLineValuesV2(uintptr(l.fd), &v); err != nil {
		return false, fmt.Errorf("sensors: reading %s: %w", l.name, err)
	}
	return v.Get(0) == 1, nil
}

// Close ends the watcher and releases the line.
func (l *cdevLine) Close() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, werr := unix.Write(l.stop, one[:])
	if werr == nil {
		<-l.watched
	}
	return errors.Join(werr, unix.Close(l.stop), unix.Close(l.fd))
}

// cdevPower is a sensor's power line: an output of the GPIO character
// device, requested high.
type cdevPower struct {
	name string
	l    *gpiocdev.Line
}

// openPower requests pin as an output driving high (the sensor powered).
func openPower(pin string) (Power, error) {
	host := gpioHost{root: "/", info: cdevInfo}
	c, offset, err := host.findLine(pin, gpiocdev.FindLine)
	if err != nil {
		return nil, fmt.Errorf("sensors: power pin: %w", err)
	}
	name := fmt.Sprintf("%s:%d (%s)", c.name, offset, pin)
	l, err := gpiocdev.RequestLine(c.name, offset, gpiocdev.AsOutput(1), gpiocdev.WithConsumer("sensord-power"))
	switch {
	case errors.Is(err, syscall.EBUSY):
		return nil, fmt.Errorf("sensors: power pin: %w", busyError(name, c.name, offset))
	case err != nil:
		return nil, fmt.Errorf("sensors: power pin %s: %w", name, err)
	}
	return &cdevPower{name: name, l: l}, nil
}

func (p *cdevPower) Set(on bool) error {
	v := 0
	if on {
		v = 1
	}
	if err := p.l.SetValue(v); err != nil {
		return fmt.Errorf("sensors: power pin %s: %w", p.name, err)
	}
	return nil
}

func (p *cdevPower) String() string { return p.name }
func (p *cdevPower) Close() error   { return p.l.Close() }
