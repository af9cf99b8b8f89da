//go:build linux

package sensors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"

	"sensord/sensor/dht22"
)

const (
	// eventBuffer is the kernel's event queue for the line: the kernel
	// default is 16, fewer than the 84 edges of a frame.
	eventBuffer = 256
	// lateGrace is how long Edges waits past its timeout for events the
	// kernel already stamped but the watcher goroutine has not handed over.
	lateGrace = 5 * time.Millisecond
	// frameEdges is the number of edges of a complete answer.
	frameEdges = 84
)

// cdevLine is a dht22.EdgeLine over the GPIO character device (uAPI v2),
// through go-gpiocdev. The line is requested once, as an input with the
// pull-up and both-edge detection; a start pulse reconfigures it as an output
// driving low, and the release reconfigures it back. The kernel stamps every
// edge with CLOCK_MONOTONIC in its interrupt handler; gpiocdev's watcher
// goroutine reads the events and hands them to events.
type cdevLine struct {
	name string // "gpiochip0:4 (GPIO4, pinctrl-bcm2835)"
	line *gpiocdev.Line

	// events is written by gpiocdev's watcher goroutine (handle) and read
	// by Edges; dropped counts events that found it full.
	events  chan gpiocdev.LineEvent
	dropped atomic.Uint64

	// Owned by the capture goroutine.
	relAt   time.Duration // CLOCK_MONOTONIC just before the release
	relWall time.Time

	// grace overrides lateGrace when non-zero (tests widen it so that a
	// loaded machine cannot make them flaky).
	grace time.Duration
}

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
		name:   fmt.Sprintf("%s:%d (%s, %s)", chip, offset, pin, c.label),
		events: make(chan gpiocdev.LineEvent, eventBuffer),
	}
	line, err := gpiocdev.RequestLine(chip, offset,
		gpiocdev.WithConsumer("sensord"),
		gpiocdev.WithPullUp,
		gpiocdev.WithBothEdges,
		gpiocdev.WithEventBufferSize(eventBuffer),
		gpiocdev.WithEventHandler(l.handle),
	)
	switch {
	case errors.Is(err, os.ErrPermission) || errors.Is(err, gpiocdev.ErrPermissionDenied):
		return nil, fmt.Errorf("sensors: cdev capture: %s: permission denied; add the service user to the gpio group (usermod -aG gpio sensord)", l.name)
	case errors.Is(err, syscall.EBUSY):
		return nil, fmt.Errorf("sensors: cdev capture: %s is in use by another program or driver (e.g. dtoverlay=dht11 in config.txt); free it or pick another -pin", l.name)
	case errors.Is(err, gpiocdev.ErrInvalidOffset):
		return nil, fmt.Errorf("sensors: cdev capture: %s: no such line on %s; check -pin (BCM numbering, e.g. GPIO4)", l.name, chip)
	case err != nil:
		return nil, fmt.Errorf("sensors: cdev capture: requesting %s: %w (needs Linux 5.10 or later)", l.name, err)
	}
	if line.UapiAbiVersion() < 2 {
		line.Close()
		return nil, fmt.Errorf("sensors: cdev capture: %s: the kernel offers only GPIO uAPI v1; needs Linux 5.10 or later, or use -capture mmap", l.name)
	}
	l.line = line
	return l, nil
}

// handle runs on gpiocdev's watcher goroutine: hand over, never block.
func (l *cdevLine) handle(e gpiocdev.LineEvent) {
	select {
	case l.events <- e:
	default:
		l.dropped.Add(1)
	}
}

func (l *cdevLine) String() string { return l.name }

func (l *cdevLine) DriveLow() error {
	if err := l.line.Reconfigure(gpiocdev.AsOutput(0)); err != nil {
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
	if err := l.line.Reconfigure(gpiocdev.WithBothEdges); err != nil {
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

func (l *cdevLine) Close() error { return l.line.Close() }
