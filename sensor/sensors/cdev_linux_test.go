//go:build linux

package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/warthog618/go-gpiocdev"
	"github.com/warthog618/go-gpiocdev/uapi"
	"golang.org/x/sys/unix"

	"sensord/internal/testutil"
	"sensord/sensor/dht22"
)

// The kernel side needs a GPIO chip; these test the hand-over from
// gpiocdev's watcher goroutine to the capture, which does not.

func TestCdevEdgesDropsStaleEventsAndKeepsOrder(t *testing.T) {
	l := &cdevLine{name: "test", events: make(chan gpiocdev.LineEvent, eventBuffer)}
	l.relAt, l.relWall = 1000*time.Microsecond, time.Now()
	l.handle(gpiocdev.LineEvent{Timestamp: 500 * time.Microsecond, Type: gpiocdev.LineEventRisingEdge}) // before the release
	for i := range frameEdges {
		typ := gpiocdev.LineEventFallingEdge
		if i%2 == 1 {
			typ = gpiocdev.LineEventRisingEdge
		}
		l.handle(gpiocdev.LineEvent{Timestamp: l.relAt + time.Duration(30+50*i)*time.Microsecond, Type: typ})
	}
	dst := make([]dht22.Edge, 128)
	start := time.Now()
	n, err := l.Edges(context.Background(), dst, 8*time.Millisecond)
	if err != nil || n != frameEdges {
		t.Fatalf("Edges = %d, %v; want %d", n, err, frameEdges)
	}
	if dst[0].T != l.relAt+30*time.Microsecond || dst[0].Rising || !dst[1].Rising {
		t.Errorf("first edges %+v %+v", dst[0], dst[1])
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v", took)
	}
}

func TestCdevEdgesWaitsForLateEventsThenStops(t *testing.T) {
	// A grace far wider than the 2 ms between the timeout and the late
	// events, so a descheduled goroutine cannot make the test flaky.
	l := &cdevLine{name: "test", events: make(chan gpiocdev.LineEvent, eventBuffer), grace: 500 * time.Millisecond}
	l.relAt, l.relWall = time.Millisecond, time.Now()
	go func() {
		// The watcher hands the events over after the timeout.
		time.Sleep(12 * time.Millisecond)
		for i := range 10 {
			l.handle(gpiocdev.LineEvent{Timestamp: l.relAt + time.Duration(i+1)*time.Microsecond*50, Type: gpiocdev.LineEventFallingEdge + gpiocdev.LineEventType(i%2)})
		}
	}()
	n, err := l.Edges(context.Background(), make([]dht22.Edge, 128), 10*time.Millisecond)
	if err != nil || n != 10 {
		t.Errorf("Edges = %d, %v; want the 10 late events", n, err)
	}
}

func TestCdevEdgesHonoursContext(t *testing.T) {
	l := &cdevLine{name: "test", events: make(chan gpiocdev.LineEvent, eventBuffer)}
	l.relWall = time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Edges(ctx, make([]dht22.Edge, 8), time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestCdevHandleNeverBlocks(t *testing.T) {
	l := &cdevLine{name: "test", events: make(chan gpiocdev.LineEvent, 2)}
	for range 5 {
		l.handle(gpiocdev.LineEvent{})
	}
	if got := l.dropped.Load(); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
}

func TestCdevWatchParsesKernelEvents(t *testing.T) {
	// A pipe stands in for the line request: the watcher reads struct
	// gpio_v2_line_event records (48 bytes: timestamp_ns, id, offset,
	// seqno, line_seqno, padding) and hands each over in order.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	l := &cdevLine{name: "test", fd: p[0], stop: stop, watched: make(chan struct{}), events: make(chan gpiocdev.LineEvent, eventBuffer)}
	go l.watch()
	var rec [2 * eventSize]byte
	binary.NativeEndian.PutUint64(rec[0:], 1234567)
	binary.NativeEndian.PutUint32(rec[8:], uint32(uapi.LineEventFallingEdge))
	binary.NativeEndian.PutUint64(rec[eventSize:], 1234667)
	binary.NativeEndian.PutUint32(rec[eventSize+8:], uint32(uapi.LineEventRisingEdge))
	if _, err := unix.Write(p[1], rec[:]); err != nil {
		t.Fatal(err)
	}
	want := []gpiocdev.LineEvent{
		{Timestamp: 1234567, Type: gpiocdev.LineEventFallingEdge},
		{Timestamp: 1234667, Type: gpiocdev.LineEventRisingEdge},
	}
	for i, w := range want {
		select {
		case got := <-l.events:
			if got.Timestamp != w.Timestamp || got.Type != w.Type {
				t.Errorf("event %d = %+v, want %+v", i, got, w)
			}
		case <-time.After(testutil.Scale(10 * time.Second)):
			t.Fatalf("event %d never handed over", i)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
